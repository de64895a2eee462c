"""Checks around the checkpoint stage, none of which import torch.

* :func:`support_problems` (architecture, format, dtype) and :func:`preflight_problems` (TP/PP
  divisibility, AWQ and NVFP4 block sizes per rank): checks from the HF ``config.json`` alone, run
  before any weights are loaded. The planner may reuse them.
* :func:`patch_exported_config`: the fixes TensorRT-LLM's quantize.py applies to ModelOpt's
  ``config.json`` (architecture, weight-only quant_algo, KV algo reset, Qwen fields, RoPE fields).
* :func:`verify_export`: the exported ``config.json`` and every ``rank{N}.safetensors`` header against
  what the request implies: mapping, quantization block, RoPE, tensor names, dtypes and shapes per rank.

The per-architecture layout (which HF and TensorRT-LLM tensors exist) lives in
:mod:`trtbuild.stages.checkpoint_layout`; its names are re-exported here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from trtbuild.errors import CheckpointError
from trtbuild.formats import kv_algo, quant_algo, weight_format
from trtbuild.model.architectures import checkpoint_architectures, find_architecture
from trtbuild.model.config import ModelDims
from trtbuild.stages.checkpoint_layout import (
    NVFP4_BLOCK,
    SAFETENSORS_DTYPES,
    expected_rank_tensors,
    hf_weight_problems,
    hf_weight_shapes,
    kv_heads_per_rank,
    normalize_rope_scaling,
    read_dims,
    tensor_problems,
)

__all__ = [
    "NVFP4_BLOCK", "SAFETENSORS_DTYPES", "ModelDims", "config_problems", "expected_rank_tensors", "read_dims",
    "hf_weight_problems", "hf_weight_shapes", "kv_heads_per_rank", "normalize_rope_scaling", "patch_exported_config",
    "preflight_problems", "support_problems", "tensor_problems", "verify_export",
]



# ---------------------------------------------------------------------------------------- preflight
def support_problems(architecture: str, *, weights: str, dtype: str) -> list[str]:
    """Why the stage cannot convert this architecture/format/dtype at all (empty when it can)."""
    spec = find_architecture(architecture)
    if spec is not None and not spec.checkpoint:
        return [f"architecture {architecture} cannot be converted: {spec.checkpoint_refusal}"]
    if spec is None:
        return [f"architecture {architecture} is not supported by the checkpoint stage (supported: "
                f"{', '.join(sorted(checkpoint_architectures()))})"]
    problems = []
    formats = spec.checkpoint_formats
    if weights not in formats:
        problems.append(f"quantization.weights: {weights} is not supported for {architecture} by the checkpoint "
                        f"stage (checked: {', '.join(sorted(formats))})")
    if dtype == "float32":
        problems.append("dtype: float32 cannot be exported: ModelOpt 0.47 writes TensorRT-LLM checkpoints in "
                        "float16 or bfloat16 only (it turns float32 into float16); use float16 or bfloat16")
    return problems


def preflight_problems(dims: ModelDims, *, weights: str, awq_block_size: int, tp: int, pp: int) -> list[str]:
    """Every layout problem of (model, tp, pp, format) as 'recipe.key: message', without loading weights."""
    problems = []
    if dims.num_heads % tp:
        problems.append(f"parallelism.tp: {tp} does not divide num_attention_heads {dims.num_heads} (config.json)")
    if (dims.num_kv_heads % tp) if dims.num_kv_heads >= tp else (tp % dims.num_kv_heads):
        problems.append(f"parallelism.tp: {tp} and num_key_value_heads {dims.num_kv_heads} (config.json) do not "
                        "divide one another, so KV heads cannot be split or duplicated evenly")
    if dims.intermediate_size % tp:
        problems.append(f"parallelism.tp: {tp} does not divide intermediate_size {dims.intermediate_size} (config.json)")
    if dims.num_layers % pp:
        problems.append(f"parallelism.pp: {pp} does not divide num_hidden_layers {dims.num_layers} (config.json)")
    if problems:
        return problems
    in_dims = {"qkv/fc/gate (hidden_size)": dims.hidden_size,
               "attention.dense (heads*head_dim/tp)": dims.num_heads * dims.head_dim // tp,
               "mlp.proj (intermediate_size/tp)": dims.intermediate_size // tp}
    scales = weight_format(weights).scales
    if scales == "group":
        for what, n in in_dims.items():
            if n % awq_block_size:
                problems.append(f"quantization.awq_block_size: {awq_block_size} does not divide the per-rank "
                                f"input dimension {n} of {what} at tp={tp}")
    if scales == "block-16":
        for what, n in in_dims.items():
            if n % NVFP4_BLOCK:
                problems.append(f"quantization.weights: {weights} needs per-rank input dimensions divisible by "
                                f"{NVFP4_BLOCK}; {what} is {n} at tp={tp}")
    return problems


# ------------------------------------------------------------------------------------ config patching
def patch_exported_config(config: dict[str, Any], dims: ModelDims, hf_cfg: dict[str, Any], *,
                          architecture: str, weights: str, kv_cache: str, decoder_type: str) -> dict[str, Any]:
    """Apply quantize.py's post-export fixes; add RoPE fields ModelOpt dropped (transformers 5)."""
    config = dict(config)
    config["architecture"] = architecture
    quant = dict(config.get("quantization") or {})
    if not weight_format(weights).calibrated:
        quant["quant_algo"] = quant_algo(weights)  # weight-only: quantized by trtllm-build
    if kv_cache == "none":
        quant["kv_cache_quant_algo"] = None
    config["quantization"] = quant
    if "rotary_base" not in config:
        config["rotary_base"] = dims.rope_base
    if dims.rope_scaling and not config.get("rotary_scaling"):
        config["rotary_scaling"] = dict(dims.rope_scaling)
    if decoder_type == "qwen":
        config["qwen_type"] = dims.model_type
        config["norm_epsilon"] = float(hf_cfg.get("rms_norm_eps", config.get("norm_epsilon", 1e-6)))
        config["intermediate_size"] = dims.intermediate_size
        # TensorRT-LLM's QWenConfig defaults attn_bias to True (Qwen 1/2); only its from_hugging_face
        # sets False for Qwen3, and ModelOpt's manual config writes "bias" instead. Without this, a
        # Qwen3 checkpoint asks trtllm-build for qkv biases it does not have.
        config["attn_bias"] = dims.qkv_bias
    return config


# -------------------------------------------------------------------------------------- verification
def config_problems(config: dict[str, Any], dims: ModelDims, *, architecture: str, dtype: str, weights: str,
                    kv_cache: str, awq_block_size: int, tp: int, pp: int) -> list[str]:
    """Differences between the exported config.json and the request and HF model."""
    got: list[str] = []

    def expect(key: str, actual: Any, wanted: Any) -> None:
        if actual != wanted:
            got.append(f"config.json: {key} is {actual!r}, expected {wanted!r}")

    expect("architecture", config.get("architecture"), architecture)
    expect("dtype", config.get("dtype"), dtype)
    mapping = config.get("mapping") or {}
    expect("mapping.world_size", mapping.get("world_size"), tp * pp)
    expect("mapping.tp_size", mapping.get("tp_size"), tp)
    expect("mapping.pp_size", mapping.get("pp_size"), pp)
    for key, wanted in (("num_hidden_layers", dims.num_layers), ("hidden_size", dims.hidden_size),
                        ("num_attention_heads", dims.num_heads), ("num_key_value_heads", dims.num_kv_heads),
                        ("vocab_size", dims.vocab_size), ("intermediate_size", dims.intermediate_size),
                        ("head_size", dims.head_dim)):
        expect(key, config.get(key), wanted)
    quant = config.get("quantization") or {}
    expect("quantization.quant_algo", quant.get("quant_algo"), quant_algo(weights))
    expect("quantization.kv_cache_quant_algo", quant.get("kv_cache_quant_algo"), kv_algo(kv_cache))
    scales = weight_format(weights).scales
    if scales == "group":
        expect("quantization.group_size", quant.get("group_size"), awq_block_size)
        expect("quantization.pre_quant_scale", quant.get("pre_quant_scale"), True)
        expect("quantization.has_zero_point", quant.get("has_zero_point"), False)
    if scales == "block-16":
        expect("quantization.group_size", quant.get("group_size"), NVFP4_BLOCK)
    base = config.get("rotary_base")
    if not isinstance(base, (int, float)) or not math.isclose(float(base), dims.rope_base, rel_tol=1e-9):
        got.append(f"config.json: rotary_base is {base!r}, expected {dims.rope_base!r} (HF rope_theta)")
    expect("rotary_scaling", normalize_rope_scaling(config.get("rotary_scaling")),
           normalize_rope_scaling(dims.rope_scaling))
    spec = find_architecture(architecture)
    if spec is not None and spec.modelopt_decoder_type == "qwen":
        expect("qwen_type", config.get("qwen_type"), dims.model_type)
        expect("attn_bias", config.get("attn_bias"), dims.qkv_bias)
    if dims.num_experts:
        moe = config.get("moe") or {}
        expect("moe.num_experts", moe.get("num_experts"), dims.num_experts)
        expect("hidden_act", config.get("hidden_act"), "swiglu")
        expect("mapping.moe_tp_size", mapping.get("moe_tp_size"), tp)
    elif "moe" in config:
        got.append("config.json: has a 'moe' block, but the model has no experts")
    return got


def verify_export(export_dir: Path, config: dict[str, Any], dims: ModelDims, *, architecture: str, dtype: str,
                  weights: str, kv_cache: str, awq_block_size: int, tp: int, pp: int) -> None:
    """Raise CheckpointError listing every difference between the export and the request."""
    problems = config_problems(config, dims, architecture=architecture, dtype=dtype, weights=weights,
                               kv_cache=kv_cache, awq_block_size=awq_block_size, tp=tp, pp=pp)
    world = tp * pp
    ranks = sorted(p.name for p in export_dir.iterdir() if re.fullmatch(r"rank\d+\.safetensors", p.name))
    wanted = [f"rank{r}.safetensors" for r in range(world)]
    if sorted(ranks) != sorted(wanted):
        problems.append(f"rank files are {ranks}, expected exactly {wanted}")
    for r in range(world):
        path = export_dir / f"rank{r}.safetensors"
        if path.is_file():
            req, opt = expected_rank_tensors(dims, config, rank=r, dtype=dtype, weights=weights, kv_cache=kv_cache,
                                             awq_block_size=awq_block_size, tp=tp, pp=pp)
            problems += tensor_problems(path, req, opt)
    if problems:
        shown = problems[:25] + ([f"... and {len(problems) - 25} more"] if len(problems) > 25 else [])
        raise CheckpointError("exported checkpoint does not match the request:\n  " + "\n  ".join(shown))
