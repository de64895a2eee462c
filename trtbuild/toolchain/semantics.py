"""What ``trtllm-build`` 1.2 does to the settings it is given before it records them in ``config.json``.

The builder silently rewrites some requested values (``tensorrt_llm/builder.py``: ``build``,
``_init_max_seq_len``, ``BuildConfig.update_kv_cache_type``; ``_utils.check_max_num_tokens``):

* ``max_seq_len`` unset → ``max_position_embeddings`` × rope factor (not for llama3/su/longrope), else 2048;
  ``max_input_len`` is clipped to ``max_seq_len``;
* ``max_num_tokens`` is clipped to ``max_seq_len × max_batch_size`` and raised to ``tokens_per_block``
  (context FMHA on) or ``max_input_len`` (off); ``opt_num_tokens`` defaults to
  ``min(max_batch_size × max_beam_width, max_num_tokens)`` unless multiple profiles are on;
* ``reduce_fusion`` is turned off unless tp > 1 on Llama / Gemma 2 / Medusa, ``user_buffer`` without it,
  ``norm_quant_fusion`` unless Llama + NVFP4 without reduce fusion;
* FP8 context FMHA is kept only for FP8 / W4A8_AWQ / NVFP4 checkpoints on SM ≥ 89, and with paged
  context FMHA only together with an FP8 KV cache (an FP8 KV cache turns it on);
* paged context FMHA is turned off with an INT8 KV cache, and with an FP8 KV cache when FP8 context FMHA
  is impossible. (KV-cache reuse and chunked context need it: see :func:`adjust`'s notes.)
* NVFP4 weights switch ``gemm_plugin`` to ``nvfp4`` unless it was explicitly disabled (the rule comes from the
  ``builder_refusals`` contract fixture, derived from ``builder.py``).

The fake toolchain applies these rules to write a faithful engine ``config.json``; the engine stage applies
them to the plan to know what a correct engine records, and refuses plans the builder would silently break.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trtbuild.contracts.trtllm import recorded_gemm_plugin
from trtbuild.formats import fp8_family_algos

REDUCE_FUSION_ARCHS = frozenset({"LlamaForCausalLM", "Gemma2ForCausalLM", "MedusaForCausalLM"})
_NO_ROPE_FACTOR = ("su", "longrope", "llama3")


@dataclass(frozen=True)
class Adjustment:
    """One value the builder records differently from what was requested."""

    field: str
    """Dotted path in ``build_config``, e.g. ``plugin_config.use_paged_context_fmha``."""
    requested: Any
    recorded: Any
    reason: str

    def format(self) -> str:
        return f"{self.field}: requested {self.requested!r}, trtllm-build records {self.recorded!r} ({self.reason})"


def deduce_max_seq_len(pretrained: Mapping[str, Any]) -> int:
    """``max_seq_len`` trtllm-build picks when none is given."""
    scaling = pretrained.get("rotary_scaling") or {}
    rope_type = scaling.get("type", scaling.get("rope_type")) if isinstance(scaling, Mapping) else None
    factor = float(scaling.get("factor", 1.0)) if scaling and rope_type not in _NO_ROPE_FACTOR else 1.0
    base = pretrained.get("max_position_embeddings") or 2048
    return int(math.ceil(base * factor)) if factor != 1 else int(base)


def _quant(pretrained: Mapping[str, Any]) -> tuple[str | None, str | None]:
    q = pretrained.get("quantization") or {}
    return q.get("quant_algo"), q.get("kv_cache_quant_algo")


def adjust(build: Mapping[str, Any], pretrained: Mapping[str, Any], *, sm: int) -> tuple[dict[str, Any], list[Adjustment]]:
    """Apply the builder's rewrites to a requested ``build_config`` (with ``plugin_config``).

    ``pretrained`` is the checkpoint's ``config.json``; ``sm`` the compute capability of the build GPU.
    Returns the ``build_config`` trtllm-build records and every change it made, in order.
    """
    out = dict(build)
    plug = dict(out.get("plugin_config") or {})
    changes: list[Adjustment] = []

    def put(where: dict[str, Any], prefix: str, key: str, value: Any, reason: str) -> None:
        if where.get(key) != value:
            changes.append(Adjustment(prefix + key, where.get(key), value, reason))
        where[key] = value

    mapping = pretrained.get("mapping") or {}
    arch = pretrained.get("architecture")
    algo, kv_algo = _quant(pretrained)
    plug["dtype"] = pretrained.get("dtype", plug.get("dtype"))

    # update_kv_cache_type
    if out.get("kv_cache_type") is None:
        out["kv_cache_type"] = "PAGED"
    out["kv_cache_type"] = str(out["kv_cache_type"]).upper()
    plug["paged_kv_cache"] = out["kv_cache_type"] == "PAGED"
    plug["paged_state"] = False

    # _init_max_seq_len
    if out.get("max_seq_len") is None:
        put(out, "", "max_seq_len", deduce_max_seq_len(pretrained), "deduced from the model")
    if out["max_input_len"] > out["max_seq_len"]:
        put(out, "", "max_input_len", out["max_seq_len"], "clipped to max_seq_len")
    _check_max_num_tokens(out, plug, put)

    tp = int(mapping.get("tp_size", 1))
    if plug.get("reduce_fusion") and (tp == 1 or arch not in REDUCE_FUSION_ARCHS):
        put(plug, "plugin_config.", "reduce_fusion", False, "needs tp > 1 on Llama, Gemma 2 or Medusa")
    if plug.get("user_buffer") and not plug.get("reduce_fusion"):
        put(plug, "plugin_config.", "user_buffer", False, "needs reduce_fusion")
    if plug.get("norm_quant_fusion") and (plug.get("reduce_fusion") or arch != "LlamaForCausalLM"
                                          or algo != "NVFP4"):
        put(plug, "plugin_config.", "norm_quant_fusion", False, "needs Llama with NVFP4 and no reduce_fusion")
    out["strongly_typed"] = True

    _context_fmha_rules(plug, put, algo=algo, kv_algo=kv_algo, sm=sm)
    requested_gemm = plug.get("gemm_plugin") or "disable"
    recorded_gemm = recorded_gemm_plugin(algo, requested_gemm)
    if recorded_gemm != requested_gemm:
        put(plug, "plugin_config.", "gemm_plugin", recorded_gemm,
            f"quant_algo {algo} switches the GEMM plugin to {recorded_gemm} unless it is disabled")
    out["plugin_config"] = plug
    return out, changes


def _check_max_num_tokens(out: dict[str, Any], plug: dict[str, Any], put: Any) -> None:
    mbs, seq, beam = out["max_batch_size"], out["max_seq_len"], out.get("max_beam_width", 1)
    if not plug.get("remove_input_padding", True):
        if out.get("max_num_tokens") is not None or out.get("opt_num_tokens") is not None:
            put(out, "", "max_num_tokens", mbs * seq, "remove_input_padding is off")
        return
    if out.get("max_num_tokens") is None:
        put(out, "", "max_num_tokens", seq * mbs, "defaults to max_seq_len x max_batch_size")
    if out.get("opt_num_tokens") is None and not plug.get("multiple_profiles"):
        out["opt_num_tokens"] = min(mbs * beam, out["max_num_tokens"])
    if out["max_num_tokens"] > seq * mbs:
        put(out, "", "max_num_tokens", seq * mbs, "clipped to max_seq_len x max_batch_size")
    fmha = plug.get("context_fmha", True)
    if out["max_num_tokens"] < out["max_input_len"] and not fmha:
        put(out, "", "max_num_tokens", out["max_input_len"], "raised to max_input_len without context FMHA")
    elif out["max_num_tokens"] < plug.get("tokens_per_block", 32) and fmha:
        put(out, "", "max_num_tokens", plug.get("tokens_per_block", 32), "raised to tokens_per_block")
    if out.get("opt_num_tokens") is not None and out["opt_num_tokens"] > out["max_num_tokens"]:
        put(out, "", "opt_num_tokens", out["max_num_tokens"], "clipped to max_num_tokens")


def _context_fmha_rules(plug: dict[str, Any], put: Any, *, algo: str | None, kv_algo: str | None, sm: int) -> None:
    p = "plugin_config."
    fp8_kv = kv_algo == "FP8"
    if not plug.get("context_fmha", True):
        put(plug, p, "use_fp8_context_fmha", False, "context FMHA is off")
        put(plug, p, "use_paged_context_fmha", False, "context FMHA is off")
    elif algo not in fp8_family_algos():
        if plug.get("use_fp8_context_fmha"):
            put(plug, p, "use_fp8_context_fmha", False, f"quant_algo {algo} is not FP8, W4A8_AWQ or NVFP4")
        if plug.get("use_paged_context_fmha") and fp8_kv:
            put(plug, p, "use_paged_context_fmha", False,
                f"an FP8 KV cache needs FP8 context FMHA, which quant_algo {algo} cannot use")
    elif sm < 89:
        put(plug, p, "use_fp8_context_fmha", False, f"FP8 context FMHA needs SM >= 89 (GPU is SM {sm})")
        if plug.get("use_paged_context_fmha") and fp8_kv:
            put(plug, p, "use_paged_context_fmha", False, "an FP8 KV cache needs FP8 context FMHA")
    elif plug.get("use_paged_context_fmha"):
        if not fp8_kv and plug.get("use_fp8_context_fmha"):
            put(plug, p, "use_fp8_context_fmha", False, "with paged context FMHA it needs an FP8 KV cache")
        elif fp8_kv and not plug.get("use_fp8_context_fmha"):
            put(plug, p, "use_fp8_context_fmha", True, "an FP8 KV cache with paged context FMHA turns it on")
    if plug.get("use_paged_context_fmha") and kv_algo == "INT8":
        put(plug, p, "use_paged_context_fmha", False, "paged context FMHA does not work with an INT8 KV cache")
