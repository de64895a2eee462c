"""Settings every Python-model backend (vLLM, LLM API) decides from the plan, whatever its own mapping."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from trtbuild.plan.planner import PlanDiagnostic


class ServedSettings(BaseModel):
    """What the Triton side of a Python-model backend's repository is rendered from; each backend's settings
    add its own engine's arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    max_batch_size: int
    """Triton's max_batch_size of the served model (= the engine's batch limit)."""
    max_input_len: int
    """Longest prompt in tokens (checked before a request reaches the engine, as for the TensorRT-LLM engine)."""
    max_seq_len: int
    """Longest prompt + output in tokens."""
    decoupled: bool
    """runtime.streaming: responses stream (decoupled transaction policy)."""
    exclude_input_in_output: bool
    """Default of the request input of the same name."""
    max_queue_delay_us: int
    max_queue_size: int
    findings: tuple[PlanDiagnostic, ...] = ()
    """What the mapping could not carry over (rule ids `<backend>.*`); errors make the target unservable."""

    @property
    def errors(self) -> list[PlanDiagnostic]:
        return [f for f in self.findings if f.severity == "error"]
