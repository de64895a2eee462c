"""Checks around the engine build: the checkpoint before it, the engine directory after it.

* :func:`check_checkpoint`: the TensorRT-LLM checkpoint's ``config.json`` (architecture, dtype, mapping,
  quantization) and rank files agree with the plan — before any GPU time is spent.
* :func:`expected_build_config`: what a correct engine records for the plan, i.e. the plan's settings after
  trtllm-build's own rewrites (:mod:`trtbuild.toolchain.semantics`), and :func:`plan_conflicts`, the
  rewrites that would silently break what the plan promises at run time (KV reuse, chunked context).
* :func:`engine_problems`: the built ``config.json`` parses, its ``version`` is the toolchain's, its
  ``pretrained_config`` and ``build_config`` match, and there is one ``rank{r}.engine`` per rank.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import EngineError
from trtbuild.formats import kv_algo, quant_algo, weight_format
from trtbuild.stages.engine_command import engine_params
from trtbuild.toolchain.semantics import Adjustment, adjust

if TYPE_CHECKING:
    from trtbuild.plan.planner import BuildPlan

_RANK_ENGINE = re.compile(r"^rank(\d+)\.engine$")
STRICT_BUILD_FIELDS = ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens", "max_beam_width",
                       "gather_context_logits", "weight_streaming", "use_strip_plan")
STRICT_PLUGIN_FIELDS = ("tokens_per_block", "use_paged_context_fmha", "use_fp8_context_fmha", "gemm_plugin",
                        "multiple_profiles", "reduce_fusion")


def read_json(path: Path, what: str) -> dict[str, Any]:
    """Parse ``path`` as a JSON object or raise EngineError naming the file."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EngineError(f"{path}: missing ({what})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise EngineError(f"{path}: cannot parse {what}: {exc}") from None
    if not isinstance(data, dict):
        raise EngineError(f"{path}: {what} is not a JSON object")
    return data


def world_of(mapping: dict[str, Any]) -> tuple[int, int, int]:
    """(tp, pp, world_size) of a checkpoint/engine ``mapping`` (world_size defaults to tp × pp × cp)."""
    tp, pp, cp = (int(mapping.get(k) or 1) for k in ("tp_size", "pp_size", "cp_size"))
    return tp, pp, int(mapping.get("world_size") or tp * pp * cp)


def checkpoint_problems(config: dict[str, Any], plan: BuildPlan) -> list[str]:
    """How a checkpoint ``config.json`` disagrees with the plan (empty when it agrees)."""
    s = plan.settings
    tp, pp = s.parallelism.tp, s.parallelism.pp
    problems = []
    arch = plan.model.get("trtllm_architecture")
    if config.get("architecture") != arch:
        problems.append(f"architecture is {config.get('architecture')!r}, the plan builds {arch!r}")
    if config.get("dtype") != s.dtype:
        problems.append(f"dtype is {config.get('dtype')!r}, the plan has {s.dtype!r}")
    mapping = config.get("mapping")
    if not isinstance(mapping, dict):
        problems.append("has no mapping (tp_size, pp_size, world_size)")
    else:
        c_tp, c_pp, c_world = world_of(mapping)
        if (c_tp, c_pp, c_world) != (tp, pp, tp * pp):
            problems.append(f"mapping is tp {c_tp} x pp {c_pp} (world_size {c_world}), the plan needs tp {tp} x "
                            f"pp {pp} (world_size {tp * pp}); re-run the checkpoint stage for this plan")
    quant = config.get("quantization") or {}
    want_w, want_kv = quant_algo(s.quantization.weights), kv_algo(s.quantization.kv_cache)
    if quant.get("quant_algo") != want_w:
        problems.append(f"quantization.quant_algo is {quant.get('quant_algo')!r}, the plan's weights "
                        f"{s.quantization.weights!r} need {want_w!r}")
    if quant.get("kv_cache_quant_algo") != want_kv:
        problems.append(f"quantization.kv_cache_quant_algo is {quant.get('kv_cache_quant_algo')!r}, the plan's "
                        f"kv_cache {s.quantization.kv_cache!r} needs {want_kv!r}")
    return problems


def check_checkpoint(checkpoint_dir: Path, plan: BuildPlan) -> dict[str, Any]:
    """The checkpoint's config.json, or EngineError naming the file and every disagreement with the plan."""
    path = Path(checkpoint_dir) / "config.json"
    config = read_json(path, "TensorRT-LLM checkpoint config")
    problems = checkpoint_problems(config, plan)
    if problems:
        raise EngineError(f"{path}: the checkpoint does not match the plan for {plan.target['name']}:\n  - "
                          + "\n  - ".join(problems))
    _, _, world = world_of(config["mapping"])
    missing = [f"rank{r}.safetensors" for r in range(world) if not (Path(checkpoint_dir) / f"rank{r}.safetensors").is_file()]
    if missing:
        raise EngineError(f"{checkpoint_dir}: checkpoint rank files missing: {', '.join(missing)}")
    return config


def requested_build_config(plan: BuildPlan) -> dict[str, Any]:
    """The plan's engine settings as the ``build_config`` fields trtllm-build records (before its rewrites)."""
    p = engine_params(plan)
    weights = plan.settings.quantization.weights
    return {
        "max_batch_size": p["max_batch_size"], "max_input_len": p["max_input_len"], "max_seq_len": p["max_seq_len"],
        "max_num_tokens": p["max_num_tokens"], "opt_num_tokens": p.get("opt_num_tokens"),
        "max_beam_width": p["max_beam_width"], "kv_cache_type": p["kv_cache"]["type"].upper(),
        "gather_context_logits": p["gather_context_logits"], "weight_streaming": p["weight_streaming"],
        "use_strip_plan": p["strip_plan"],
        "plugin_config": {
            "tokens_per_block": p["kv_cache"]["tokens_per_block"], "context_fmha": True,
            "remove_input_padding": True, "use_paged_context_fmha": p["paged_context_fmha"],
            # not passed unless the quantization allows it; the tool's default (enable) is then dropped
            "use_fp8_context_fmha": bool(p["fp8_context_fmha"]) if weight_format(weights).fp8_context_fmha else True,
            "gemm_plugin": None if p["gemm_plugin"] == "disable" else p["gemm_plugin"],
            "multiple_profiles": p["multiple_profiles"], "reduce_fusion": p["reduce_fusion"],
            "use_fused_mlp": p["use_fused_mlp"],
        },
    }


def expected_build_config(plan: BuildPlan, pretrained: dict[str, Any]) -> tuple[dict[str, Any], list[Adjustment]]:
    """What a correct engine's ``build_config`` holds for ``plan`` built from checkpoint config ``pretrained``."""
    return adjust(requested_build_config(plan), pretrained, sm=int(plan.target["sm"]))


def plan_conflicts(plan: BuildPlan, changes: list[Adjustment]) -> list[str]:
    """trtllm-build rewrites that would silently drop something the plan's runtime settings rely on."""
    r = plan.settings.runtime
    needs = [what for what, on in (("runtime.kv_cache.reuse", r.kv_cache.reuse),
                                   ("runtime.chunked_context", r.chunked_context)) if on]
    out = []
    for c in changes:
        if c.field == "plugin_config.use_paged_context_fmha" and c.requested and not c.recorded and needs:
            out.append(f"trtllm-build would turn off paged context FMHA ({c.reason}), which "
                       f"{' and '.join(needs)} need: use another quantization.kv_cache or set "
                       f"{' and '.join(n + ': false' for n in needs)}")
    return out


def kv_cache_type_name(value: Any) -> str | None:
    """'PAGED' for any spelling trtllm-build may record: 'paged', 'PAGED', 'KVCacheType.PAGED' or the enum value 1."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return {0: "CONTINUOUS", 1: "PAGED", 2: "DISABLED"}.get(value)
    return str(value).rsplit(".", 1)[-1].upper()


def _same(a: Any, b: Any) -> bool:
    """Equal, strings case-insensitively (kv_cache_type PAGED/paged), booleans never equal to numbers."""
    if isinstance(a, str) and isinstance(b, str):
        return a.lower() == b.lower()
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def engine_problems(engine_dir: Path, plan: BuildPlan, pretrained: dict[str, Any], *,
                    trtllm_version: str | None) -> list[str]:
    """Every way the engine directory disagrees with the plan (empty when it is a correct engine)."""
    engine_dir = Path(engine_dir)
    path = engine_dir / "config.json"
    try:
        config = read_json(path, "engine config")
    except EngineError as exc:
        return [str(exc).removeprefix("engine: ")]
    problems: list[str] = []
    if trtllm_version is not None and config.get("version") != trtllm_version:
        problems.append(f"version is {config.get('version')!r}, the toolchain is TensorRT-LLM {trtllm_version}")
    got_pre = config.get("pretrained_config")
    got_build = config.get("build_config")
    if not isinstance(got_pre, dict) or not isinstance(got_build, dict):
        return problems + ["config.json has no pretrained_config/build_config objects"]
    tp, pp = plan.settings.parallelism.tp, plan.settings.parallelism.pp
    if world_of(got_pre.get("mapping") or {}) != (tp, pp, tp * pp):
        problems.append(f"pretrained_config.mapping is {got_pre.get('mapping')}, the plan has tp {tp} x pp {pp}")
    for key in ("architecture", "dtype"):
        if got_pre.get(key) != pretrained.get(key):
            problems.append(f"pretrained_config.{key} is {got_pre.get(key)!r}, the checkpoint has {pretrained.get(key)!r}")
    got_q, want_q = got_pre.get("quantization") or {}, pretrained.get("quantization") or {}
    for key in ("quant_algo", "kv_cache_quant_algo"):
        if got_q.get(key) != want_q.get(key):
            problems.append(f"pretrained_config.quantization.{key} is {got_q.get(key)!r}, the checkpoint has "
                            f"{want_q.get(key)!r}")
    logits = plan.settings.build.logits_dtype
    if got_pre.get("logits_dtype", "float32") != logits:
        problems.append(f"pretrained_config.logits_dtype is {got_pre.get('logits_dtype')!r}, the plan has {logits!r}")
    want, _ = expected_build_config(plan, pretrained)
    for key in STRICT_BUILD_FIELDS:
        if not _same(got_build.get(key), want.get(key)):
            problems.append(f"build_config.{key} is {got_build.get(key)!r}, expected {want.get(key)!r}")
    if kv_cache_type_name(got_build.get("kv_cache_type")) != want["kv_cache_type"]:
        problems.append(f"build_config.kv_cache_type is {got_build.get('kv_cache_type')!r}, "
                        f"expected {want['kv_cache_type']!r}")
    if want.get("opt_num_tokens") is not None and engine_params(plan).get("opt_num_tokens") is not None \
            and got_build.get("opt_num_tokens") != want["opt_num_tokens"]:
        problems.append(f"build_config.opt_num_tokens is {got_build.get('opt_num_tokens')!r}, "
                        f"expected {want['opt_num_tokens']!r}")
    got_plug = got_build.get("plugin_config")
    if not isinstance(got_plug, dict):
        return problems + ["build_config.plugin_config is missing"]
    for key in STRICT_PLUGIN_FIELDS:
        if not _same(got_plug.get(key), want["plugin_config"].get(key)):
            problems.append(f"build_config.plugin_config.{key} is {got_plug.get(key)!r}, "
                            f"expected {want['plugin_config'].get(key)!r}")
    ranks = sorted(int(m.group(1)) for f in engine_dir.iterdir() if (m := _RANK_ENGINE.match(f.name)))
    if ranks != list(range(tp * pp)):
        problems.append(f"engine files are {[f'rank{r}.engine' for r in ranks]}, expected rank0..rank{tp * pp - 1}"
                        f".engine (tp {tp} x pp {pp})")
    empty = [f"rank{r}.engine" for r in ranks if (engine_dir / f"rank{r}.engine").stat().st_size == 0]
    if empty:
        problems.append(f"empty engine files: {', '.join(empty)}")
    return problems
