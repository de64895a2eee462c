"""Checks around the checkpoint stage, none of which import torch.

* :func:`preflight_problems`: layout checks from the HF ``config.json`` alone (TP/PP divisibility, AWQ
  and NVFP4 block sizes per rank), run before any weights are loaded. The planner may reuse them.
* :func:`patch_exported_config`: the fixes TensorRT-LLM's quantize.py applies to ModelOpt's
  ``config.json`` (architecture, weight-only quant_algo, KV algo reset, Qwen fields, RoPE fields).
* :func:`verify_export`: the exported ``config.json`` and every ``rank{N}.safetensors`` header against
  what the request implies: mapping, quantization block, RoPE, tensor names, dtypes and shapes per rank.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import CheckpointError
from trtbuild.stages.fetch import read_safetensors_header

# HF architecture → ModelOpt decoder type, for the architectures whose layout these checks know.
SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen"}
QUANT_ALGOS: dict[str, str | None] = {
    "none": None, "fp8": "FP8", "int8_sq": "W8A8_SQ_PER_CHANNEL", "int4_awq": "W4A16_AWQ",
    "w4a8_awq": "W4A8_AWQ", "nvfp4": "NVFP4", "int8_wo": "W8A16", "int4_wo": "W4A16",
}
KV_ALGOS: dict[str, str | None] = {"none": None, "fp8": "FP8", "int8": "INT8"}
SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}
NVFP4_BLOCK = 16


@dataclass(frozen=True)
class ModelDims:
    """The dimensions of a decoder-only HF model that decide the checkpoint layout."""

    architecture: str
    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    qkv_bias: bool
    dense_bias: bool
    mlp_bias: bool
    rope_theta: float
    rope_scaling: dict[str, Any] | None

    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any], where: str = "config.json") -> ModelDims:
        archs = cfg.get("architectures") or []
        if not archs or not isinstance(archs, list):
            raise CheckpointError(f"{where}: no 'architectures' entry")
        try:
            hidden, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
            model_type = str(cfg.get("model_type", ""))
            theta, scaling = hf_rope(cfg)
            return cls(
                architecture=str(archs[0]), model_type=model_type, hidden=hidden,
                intermediate=int(cfg["intermediate_size"]), layers=int(cfg["num_hidden_layers"]),
                heads=heads, kv_heads=int(cfg.get("num_key_value_heads") or heads),
                head_dim=int(cfg.get("head_dim") or hidden // heads), vocab=int(cfg["vocab_size"]),
                qkv_bias=model_type == "qwen2" or bool(cfg.get("attention_bias", False)),
                dense_bias=model_type != "qwen2" and bool(cfg.get("attention_bias", False)),
                mlp_bias=bool(cfg.get("mlp_bias", False)), rope_theta=theta, rope_scaling=scaling,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: missing or invalid model dimension ({type(e).__name__}: {e})") from None


def hf_rope(cfg: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """(rope_theta, rope_scaling) from an HF config, in the transformers 4.x or 5.x layout."""
    raw = cfg.get("rope_parameters")
    params: dict[str, Any] = raw if isinstance(raw, dict) else {}
    theta = cfg.get("rope_theta", params.get("rope_theta"))
    scaling = cfg.get("rope_scaling")
    if scaling is None and params.get("rope_type", "default") != "default":
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    return float(theta if theta is not None else 10000.0), scaling


def normalize_rope_scaling(scaling: dict[str, Any] | None) -> dict[str, Any] | None:
    """``type`` → ``rope_type``; numbers as floats, so equal settings compare equal."""
    if not scaling:
        return None
    out = {}
    for key, value in scaling.items():
        if key == "type":
            if "rope_type" in scaling:
                continue
            key = "rope_type"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------- preflight
def kv_heads_per_rank(dims: ModelDims, tp: int) -> int:
    """KV heads each rank holds: a share when kv_heads ≥ tp, else one duplicated head."""
    return max(dims.kv_heads // tp, 1)


def preflight_problems(dims: ModelDims, *, weights: str, awq_block_size: int, tp: int, pp: int) -> list[str]:
    """Every layout problem of (model, tp, pp, format) as 'recipe.key: message', without loading weights."""
    problems = []
    if dims.heads % tp:
        problems.append(f"parallelism.tp: {tp} does not divide num_attention_heads {dims.heads} (config.json)")
    if (dims.kv_heads % tp) if dims.kv_heads >= tp else (tp % dims.kv_heads):
        problems.append(f"parallelism.tp: {tp} and num_key_value_heads {dims.kv_heads} (config.json) do not "
                        "divide one another, so KV heads cannot be split or duplicated evenly")
    if dims.intermediate % tp:
        problems.append(f"parallelism.tp: {tp} does not divide intermediate_size {dims.intermediate} (config.json)")
    if dims.layers % pp:
        problems.append(f"parallelism.pp: {pp} does not divide num_hidden_layers {dims.layers} (config.json)")
    if problems:
        return problems
    in_dims = {"qkv/fc/gate (hidden_size)": dims.hidden,
               "attention.dense (heads*head_dim/tp)": dims.heads * dims.head_dim // tp,
               "mlp.proj (intermediate_size/tp)": dims.intermediate // tp}
    if weights in ("int4_awq", "w4a8_awq"):
        for what, n in in_dims.items():
            if n % awq_block_size:
                problems.append(f"quantization.awq_block_size: {awq_block_size} does not divide the per-rank "
                                f"input dimension {n} of {what} at tp={tp}")
    if weights == "nvfp4":
        for what, n in in_dims.items():
            if n % NVFP4_BLOCK:
                problems.append(f"quantization.weights: nvfp4 needs per-rank input dimensions divisible by "
                                f"{NVFP4_BLOCK}; {what} is {n} at tp={tp}")
    return problems


def hf_weight_shapes(dims: ModelDims) -> dict[str, tuple[int, ...]]:
    """The tensors a Llama/Qwen2 HF checkpoint must hold (lm_head aside), with their shapes."""
    h, i, q, kv = dims.hidden, dims.intermediate, dims.heads * dims.head_dim, dims.kv_heads * dims.head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (dims.vocab, h), "model.norm.weight": (h,)}
    for n in range(dims.layers):
        p = f"model.layers.{n}."
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h), p + "mlp.down_proj.weight": (h, i),
        })
        if dims.qkv_bias:
            shapes.update({p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                           p + "self_attn.v_proj.bias": (kv,)})
    return shapes


def hf_weight_problems(dims: ModelDims, tensors: dict[str, tuple[tuple[int, ...], str]], *,
                       tied_embeddings: bool) -> list[str]:
    """Compare safetensors headers ({name: (shape, file)}) with config.json, naming file and tensor."""
    expected = hf_weight_shapes(dims)
    if not tied_embeddings:
        expected["lm_head.weight"] = (dims.vocab, dims.hidden)
    problems = []
    for name, shape in expected.items():
        if name not in tensors:
            problems.append(f"tensor {name} is missing from the safetensors files")
        elif tensors[name][0] != shape:
            problems.append(f"{tensors[name][1]}: tensor {name} has shape {list(tensors[name][0])}, "
                            f"config.json implies {list(shape)}")
    return problems


# ------------------------------------------------------------------------------------ config patching
def patch_exported_config(config: dict[str, Any], dims: ModelDims, hf_cfg: dict[str, Any], *,
                          architecture: str, weights: str, kv_cache: str, decoder_type: str) -> dict[str, Any]:
    """Apply quantize.py's post-export fixes; add RoPE fields ModelOpt dropped (transformers 5)."""
    config = dict(config)
    config["architecture"] = architecture
    quant = dict(config.get("quantization") or {})
    if weights in ("none", "int8_wo", "int4_wo"):
        quant["quant_algo"] = QUANT_ALGOS[weights]  # weight-only: quantized by trtllm-build
    if kv_cache == "none":
        quant["kv_cache_quant_algo"] = None
    config["quantization"] = quant
    if "rotary_base" not in config:
        config["rotary_base"] = dims.rope_theta
    if dims.rope_scaling and not config.get("rotary_scaling"):
        config["rotary_scaling"] = dict(dims.rope_scaling)
    if decoder_type == "qwen":
        config["qwen_type"] = dims.model_type
        config["norm_epsilon"] = float(hf_cfg.get("rms_norm_eps", config.get("norm_epsilon", 1e-6)))
        config["intermediate_size"] = dims.intermediate
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
    for key, wanted in (("num_hidden_layers", dims.layers), ("hidden_size", dims.hidden),
                        ("num_attention_heads", dims.heads), ("num_key_value_heads", dims.kv_heads),
                        ("vocab_size", dims.vocab), ("intermediate_size", dims.intermediate),
                        ("head_size", dims.head_dim)):
        expect(key, config.get(key), wanted)
    quant = config.get("quantization") or {}
    expect("quantization.quant_algo", quant.get("quant_algo"), QUANT_ALGOS[weights])
    expect("quantization.kv_cache_quant_algo", quant.get("kv_cache_quant_algo"), KV_ALGOS[kv_cache])
    if weights in ("int4_awq", "w4a8_awq"):
        expect("quantization.group_size", quant.get("group_size"), awq_block_size)
        expect("quantization.pre_quant_scale", quant.get("pre_quant_scale"), True)
        expect("quantization.has_zero_point", quant.get("has_zero_point"), False)
    if weights == "nvfp4":
        expect("quantization.group_size", quant.get("group_size"), NVFP4_BLOCK)
    base = config.get("rotary_base")
    if not isinstance(base, (int, float)) or not math.isclose(float(base), dims.rope_theta, rel_tol=1e-9):
        got.append(f"config.json: rotary_base is {base!r}, expected {dims.rope_theta!r} (HF rope_theta)")
    expect("rotary_scaling", normalize_rope_scaling(config.get("rotary_scaling")),
           normalize_rope_scaling(dims.rope_scaling))
    return got


_SCALAR = ()  # shape marker: any shape with one element ([] or [1])


def _linear_tensors(prefix: str, out_r: int, in_r: int, *, weights: str, awq_block_size: int,
                    wdtype: str, bias: bool) -> dict[str, tuple[tuple[int, ...], frozenset[str]]]:
    """Expected tensors of one exported linear layer on one rank: name → (shape, allowed dtypes)."""
    floats = frozenset({"F16", "BF16", "F32"})
    t: dict[str, tuple[tuple[int, ...], frozenset[str]]] = {}
    if weights in ("none", "int8_wo", "int4_wo"):
        t["weight"] = ((out_r, in_r), frozenset({wdtype}))
    elif weights == "fp8":
        t["weight"] = ((out_r, in_r), frozenset({"F8_E4M3"}))
        t["weights_scaling_factor"] = (_SCALAR, frozenset({"F32"}))
        t["activation_scaling_factor"] = (_SCALAR, frozenset({"F32"}))
    elif weights == "int8_sq":
        t["weight"] = ((out_r, in_r), frozenset({"I8"}))
        t["weights_scaling_factor"] = ((out_r,), floats)
        t["activation_scaling_factor"] = (_SCALAR, floats)
        t["prequant_scaling_factor"] = ((in_r,), floats)
    elif weights in ("int4_awq", "w4a8_awq"):
        t["weight"] = ((out_r // 2, in_r), frozenset({"I8", "U8"}))
        t["weights_scaling_factor"] = ((out_r, in_r // awq_block_size), floats)
        t["prequant_scaling_factor"] = ((in_r,), floats)
        if weights == "w4a8_awq":
            t["activation_scaling_factor"] = (_SCALAR, floats)
            t["weights_scaling_factor_2"] = (_SCALAR, floats)
    elif weights == "nvfp4":
        t["weight"] = ((out_r, in_r // 2), frozenset({"U8"}))
        t["weights_scaling_factor"] = ((out_r, in_r // NVFP4_BLOCK), frozenset({"F8_E4M3"}))
        t["weights_scaling_factor_2"] = (_SCALAR, frozenset({"F32"}))
        t["activation_scaling_factor"] = (_SCALAR, frozenset({"F32"}))
    if bias:
        t["bias"] = ((out_r,), frozenset({wdtype}))
    return {prefix + k: v for k, v in t.items()}


def expected_rank_tensors(dims: ModelDims, config: dict[str, Any], *, rank: int, dtype: str, weights: str,
                          kv_cache: str, awq_block_size: int, tp: int, pp: int
                          ) -> tuple[dict[str, tuple[tuple[int, ...], frozenset[str]]], set[str]]:
    """(required tensors, optional tensor names) of ``rank{rank}.safetensors``."""
    wd = SAFETENSORS_DTYPES[dtype]
    pp_rank = rank // tp  # ranks are numbered tp_rank + pp_rank * tp
    h, hd = dims.hidden, dims.head_dim
    q_r, kv_r = dims.heads // tp * hd, kv_heads_per_rank(dims, tp) * hd
    i_r = dims.intermediate // tp
    req: dict[str, tuple[tuple[int, ...], frozenset[str]]] = {}
    optional: set[str] = set()
    vocab_r = math.ceil(dims.vocab / tp)
    if pp_rank == 0:
        parallel = config.get("use_parallel_embedding") and config.get("embedding_sharding_dim", 0) == 0
        req["transformer.vocab_embedding.weight"] = ((vocab_r if parallel else dims.vocab, h), frozenset({wd}))
    if pp_rank == pp - 1:
        req["transformer.ln_f.weight"] = ((h,), frozenset({wd}))
        req["lm_head.weight"] = ((vocab_r, h), frozenset({wd}))
    for n in range(dims.layers // pp):
        p = f"transformer.layers.{n}."
        req[p + "input_layernorm.weight"] = ((h,), frozenset({wd}))
        req[p + "post_layernorm.weight"] = ((h,), frozenset({wd}))
        for name, out_r, in_r, bias in (("attention.qkv.", q_r + 2 * kv_r, h, dims.qkv_bias),
                                        ("attention.dense.", h, q_r, False),
                                        ("mlp.fc.", i_r, h, dims.mlp_bias),
                                        ("mlp.gate.", i_r, h, dims.mlp_bias),
                                        ("mlp.proj.", h, i_r, False)):
            req.update(_linear_tensors(p + name, out_r, in_r, weights=weights, awq_block_size=awq_block_size,
                                       wdtype=wd, bias=bias))
        if dims.dense_bias:
            req[p + "attention.dense.bias"] = ((h,), frozenset({wd}))
        if dims.mlp_bias:
            req[p + "mlp.proj.bias"] = ((h,), frozenset({wd}))
        if kv_cache != "none":
            req[p + "attention.kv_cache_scaling_factor"] = (_SCALAR, frozenset({"F32"}))
            optional |= {p + "attention.k_cache_scaling_factor", p + "attention.v_cache_scaling_factor"}
    return req, optional


def tensor_problems(rank_file: Path, expected: dict[str, tuple[tuple[int, ...], frozenset[str]]],
                    optional: set[str]) -> list[str]:
    """Missing, unexpected, mis-shaped or mis-typed tensors of one rank file."""
    header = read_safetensors_header(rank_file)
    problems = []
    for name, (shape, dtypes) in sorted(expected.items()):
        info = header.get(name)
        if info is None:
            problems.append(f"{rank_file.name}: missing tensor {name}")
            continue
        got_shape: tuple[int, ...] = tuple(info["shape"])
        got_dtype = str(info["dtype"])
        ok_shape = math.prod(got_shape) == 1 if shape == _SCALAR else got_shape == shape
        if not ok_shape:
            problems.append(f"{rank_file.name}: {name} has shape {list(got_shape)}, expected {list(shape) or 'a scalar'}")
        if got_dtype not in dtypes:
            problems.append(f"{rank_file.name}: {name} has dtype {got_dtype}, expected {'/'.join(sorted(dtypes))}")
    for name in sorted(set(header) - set(expected) - optional):
        problems.append(f"{rank_file.name}: unexpected tensor {name}")
    return problems


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
