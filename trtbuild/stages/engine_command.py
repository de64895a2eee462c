"""Plan → the ``trtllm-build`` command line (a pure function: no I/O, nothing imported from TensorRT-LLM).

Only flags of TensorRT-LLM 1.2 with valid values are emitted (``--kv_cache_type``, never the deprecated
``--paged_kv_cache``); every engine setting the plan resolved appears explicitly, so the command does not
depend on the tool's defaults. The contract tests check every command the planner can produce against
the ``trtllm_build_flags`` contract fixture (trtbuild/contracts/trtllm_1_2/).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import EngineError
from trtbuild.formats import weight_format

if TYPE_CHECKING:
    from trtbuild.plan.planner import BuildPlan

PROGRAM = "trtllm-build"


def _onoff(value: bool) -> str:
    return "enable" if value else "disable"


def engine_params(plan: BuildPlan) -> dict[str, Any]:
    """The engine stage's resolved settings; EngineError for a plan that has no engine (the CPU reference)."""
    stage = plan.stage("engine")
    if stage is None:
        raise EngineError(f"the plan for {plan.target.get('name')} has no engine stage "
                          "(the CPU reference target serves the HF checkpoint; nothing to build)")
    return dict(stage.params)


def build_command(plan: BuildPlan, checkpoint_dir: Path, output_dir: Path, *,
                  timing_cache: Path | None) -> list[str]:
    """The ``trtllm-build`` argv for ``plan``'s engine. ``timing_cache`` (when the plan reuses one) is both
    read and written, so builds of the same target share TensorRT's kernel timings."""
    p = engine_params(plan)
    weights = plan.settings.quantization.weights
    kv = p["kv_cache"]
    argv = [
        PROGRAM,
        "--checkpoint_dir", str(checkpoint_dir),
        "--output_dir", str(output_dir),
        "--max_batch_size", str(p["max_batch_size"]),
        "--max_input_len", str(p["max_input_len"]),
        "--max_seq_len", str(p["max_seq_len"]),
        "--max_num_tokens", str(p["max_num_tokens"]),
        "--max_beam_width", str(p["max_beam_width"]),
    ]
    if p.get("opt_num_tokens") is not None:
        argv += ["--opt_num_tokens", str(p["opt_num_tokens"])]
    argv += [
        "--kv_cache_type", kv["type"],
        "--tokens_per_block", str(kv["tokens_per_block"]),
        "--use_paged_context_fmha", _onoff(p["paged_context_fmha"]),
    ]
    if weight_format(weights).fp8_context_fmha:  # only the FP8 family takes the flag
        argv += ["--use_fp8_context_fmha", _onoff(bool(p["fp8_context_fmha"]))]
    argv += [
        "--gemm_plugin", p["gemm_plugin"],
        "--multiple_profiles", _onoff(p["multiple_profiles"]),
        "--use_fused_mlp", _onoff(p["use_fused_mlp"]),
        "--reduce_fusion", _onoff(p["reduce_fusion"]),
        "--logits_dtype", p["logits_dtype"],
        "--workers", str(p["workers"]),
    ]
    if p["gather_context_logits"]:
        argv.append("--gather_context_logits")
    if p["strip_plan"]:
        argv.append("--strip_plan")
    if p["weight_streaming"]:
        argv.append("--weight_streaming")
    if p["timing_cache"] and timing_cache is not None:
        argv += ["--input_timing_cache", str(timing_cache), "--output_timing_cache", str(timing_cache)]
    return argv


def timing_cache_name(plan: BuildPlan) -> str:
    """One timing cache per target GPU and SM. TensorRT timings are also specific to the TensorRT version:
    the engine stage keeps a sidecar recording the toolchain and drops a cache written by another one."""
    target = plan.target
    return f"{target['key']}-sm{target['sm']}.cache"


def timing_cache_path(cache_root: Path, plan: BuildPlan) -> Path | None:
    """Where ``plan``'s builds keep their timing cache under ``cache_root``; None when the plan opts out."""
    if not engine_params(plan).get("timing_cache", False):
        return None
    return Path(cache_root) / "timing-cache" / timing_cache_name(plan)
