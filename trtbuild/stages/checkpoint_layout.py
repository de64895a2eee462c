"""What the checkpoint stage expects to read and write, per architecture, without torch.

* Which architectures and formats the stage converts is the architecture catalog's
  (``ArchSpec.checkpoint_refusal``, ``ArchSpec.weight_formats`` in :mod:`trtbuild.model.architectures`): the
  tensor names and shapes below were checked, number by number against the HF weights in the tests, for
  every architecture it converts.
* :func:`read_dims`: the planner's :class:`~trtbuild.model.config.ModelDims` of an HF ``config.json``,
  with checkpoint-stage errors.
* :func:`hf_weight_shapes`: the tensors the HF safetensors must hold; :func:`expected_rank_tensors`:
  the tensors each ``rank{N}.safetensors`` must hold (names, shapes, dtypes), per quantization format.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from trtbuild.errors import CheckpointError, PlanError
from trtbuild.formats import weight_format
from trtbuild.model.config import ModelDims, dims_from_config
from trtbuild.stages.fetch import read_safetensors_header

SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}
NVFP4_BLOCK = 16
SCALAR = ()
"""Shape marker: any shape with one element ([] or [1])."""

Expected = dict[str, tuple[tuple[int, ...], frozenset[str]]]


def read_dims(cfg: dict[str, Any], where: str = "config.json") -> ModelDims:
    """The model's dimensions (the planner's ModelDims); a CheckpointError naming ``where`` when invalid.

    The stage converts models whose config lacks ``max_position_embeddings`` (or has 0): ModelOpt then writes
    its default, and the stage never reads the length from ``ModelDims``, so a missing one is not an error
    here (the planner, which sizes the KV cache from it, still requires it)."""
    length = cfg.get("max_position_embeddings")
    if isinstance(length, bool) or not isinstance(length, int) or length <= 0:
        cfg = {**cfg, "max_position_embeddings": 1}
    try:
        return dims_from_config(cfg, where)
    except PlanError as e:
        raise CheckpointError(str(e)) from None


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


def kv_heads_per_rank(dims: ModelDims, tp: int) -> int:
    """KV heads each rank holds: a share when kv_heads ≥ tp, else one duplicated head."""
    return max(dims.num_kv_heads // tp, 1)


# ------------------------------------------------------------------------------------------ HF side
def hf_weight_shapes(dims: ModelDims) -> dict[str, tuple[int, ...]]:
    """The tensors an HF checkpoint of ``dims.architecture`` must hold (lm_head aside), with their shapes."""
    h, i, q, kv = dims.hidden_size, dims.intermediate_size, dims.num_heads * dims.head_dim, dims.num_kv_heads * dims.head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (dims.vocab_size, h), "model.norm.weight": (h,)}
    for n in range(dims.num_layers):
        p = f"model.layers.{n}."
        shapes.update({
            p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
            p + "self_attn.q_proj.weight": (q, h), p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h), p + "self_attn.o_proj.weight": (h, q),
        })
        if dims.num_experts:
            moe = p + "block_sparse_moe."
            shapes[moe + "gate.weight"] = (dims.num_experts, h)
            for e in range(dims.num_experts):
                shapes.update({moe + f"experts.{e}.w1.weight": (i, h), moe + f"experts.{e}.w2.weight": (h, i),
                               moe + f"experts.{e}.w3.weight": (i, h)})
        else:
            shapes.update({p + "mlp.gate_proj.weight": (i, h), p + "mlp.up_proj.weight": (i, h),
                           p + "mlp.down_proj.weight": (h, i)})
        if dims.qkv_bias:
            shapes.update({p + "self_attn.q_proj.bias": (q,), p + "self_attn.k_proj.bias": (kv,),
                           p + "self_attn.v_proj.bias": (kv,)})
        if dims.qk_norm:
            shapes.update({p + "self_attn.q_norm.weight": (dims.head_dim,),
                           p + "self_attn.k_norm.weight": (dims.head_dim,)})
    return shapes


def hf_weight_problems(dims: ModelDims, tensors: dict[str, tuple[tuple[int, ...], str]], *,
                       tied_embeddings: bool) -> list[str]:
    """Compare safetensors headers ({name: (shape, file)}) with config.json, naming file and tensor."""
    expected = hf_weight_shapes(dims)
    if not tied_embeddings:
        expected["lm_head.weight"] = (dims.vocab_size, dims.hidden_size)
    problems = []
    for name, shape in expected.items():
        if name not in tensors:
            problems.append(f"tensor {name} is missing from the safetensors files")
        elif tensors[name][0] != shape:
            problems.append(f"{tensors[name][1]}: tensor {name} has shape {list(tensors[name][0])}, "
                            f"config.json implies {list(shape)}")
    return problems


# ------------------------------------------------------------------------------------ TRT-LLM side
def _linear_tensors(prefix: str, out_r: int, in_r: int, *, weights: str, awq_block_size: int, wdtype: str,
                    bias: bool, experts: int = 0) -> Expected:
    """Expected tensors of one exported linear layer (or stacked experts) on one rank."""
    floats = frozenset({"F16", "BF16", "F32"})
    e = (experts,) if experts else ()
    t: Expected = {}
    fmt = weight_format(weights)
    stored = frozenset(fmt.checkpoint_dtype)
    if not fmt.calibrated:  # the model dtype, or weight-only formats trtllm-build quantizes itself
        t["weight"] = ((*e, out_r, in_r), frozenset({wdtype}))
    elif fmt.scales == "per-tensor":
        t["weight"] = ((*e, out_r, in_r), stored)
        t["weights_scaling_factor"] = ((experts, 1) if experts else SCALAR, frozenset({"F32"}))
        t["activation_scaling_factor"] = (SCALAR, frozenset({"F32"}))
    elif fmt.scales == "per-channel":  # SmoothQuant
        t["weight"] = ((out_r, in_r), stored)
        t["weights_scaling_factor"] = ((out_r,), floats)
        t["activation_scaling_factor"] = (SCALAR, floats)
        t["prequant_scaling_factor"] = ((in_r,), floats)
    elif fmt.scales == "group":  # AWQ: two 4-bit weights per byte along the output dimension
        t["weight"] = ((out_r // 2, in_r), stored)
        t["weights_scaling_factor"] = ((out_r, in_r // awq_block_size), floats)
        t["prequant_scaling_factor"] = ((in_r,), floats)
        if fmt.activations:
            t["activation_scaling_factor"] = (SCALAR, floats)
            t["weights_scaling_factor_2"] = (SCALAR, floats)
    elif fmt.scales == "block-16":
        t["weight"] = ((*e, out_r, in_r // 2), stored)
        t["weights_scaling_factor"] = ((*e, out_r, in_r // NVFP4_BLOCK), frozenset({"F8_E4M3"}))
        t["weights_scaling_factor_2"] = ((experts,) if experts else SCALAR, frozenset({"F32"}))
        t["activation_scaling_factor"] = (SCALAR, frozenset({"F32"}))
    if bias:
        t["bias"] = ((out_r,), frozenset({wdtype}))
    return {prefix + k: v for k, v in t.items()}


def expected_rank_tensors(dims: ModelDims, config: dict[str, Any], *, rank: int, dtype: str, weights: str,
                          kv_cache: str, awq_block_size: int, tp: int, pp: int) -> tuple[Expected, set[str]]:
    """(required tensors, optional tensor names) of ``rank{rank}.safetensors``."""
    wd = SAFETENSORS_DTYPES[dtype]
    pp_rank = rank // tp  # ranks are numbered tp_rank + pp_rank * tp
    h, hd = dims.hidden_size, dims.head_dim
    q_r, kv_r = dims.num_heads // tp * hd, kv_heads_per_rank(dims, tp) * hd
    i_r = dims.intermediate_size // tp
    req: Expected = {}
    optional: set[str] = set()
    vocab_r = math.ceil(dims.vocab_size / tp)
    if pp_rank == 0:
        parallel = config.get("use_parallel_embedding") and config.get("embedding_sharding_dim", 0) == 0
        req["transformer.vocab_embedding.weight"] = ((vocab_r if parallel else dims.vocab_size, h), frozenset({wd}))
    if pp_rank == pp - 1:
        req["transformer.ln_f.weight"] = ((h,), frozenset({wd}))
        req["lm_head.weight"] = ((vocab_r, h), frozenset({wd}))

    def lin(prefix: str, out_r: int, in_r: int, bias: bool, experts: int = 0) -> Expected:
        return _linear_tensors(prefix, out_r, in_r, weights=weights, awq_block_size=awq_block_size, wdtype=wd,
                               bias=bias, experts=experts)

    for n in range(dims.num_layers // pp):
        p = f"transformer.layers.{n}."
        req[p + "input_layernorm.weight"] = ((h,), frozenset({wd}))
        req[p + "post_layernorm.weight"] = ((h,), frozenset({wd}))
        req.update(lin(p + "attention.qkv.", q_r + 2 * kv_r, h, dims.qkv_bias))
        req.update(lin(p + "attention.dense.", h, q_r, False))
        if dims.num_experts:
            req[p + "mlp.router.weight"] = ((dims.num_experts, h), frozenset({"F32"}))
            req.update(lin(p + "mlp.fc.", 2 * i_r, h, False, dims.num_experts))
            req.update(lin(p + "mlp.proj.", h, i_r, False, dims.num_experts))
        else:
            for name, out_r, in_r in (("mlp.fc.", i_r, h), ("mlp.gate.", i_r, h), ("mlp.proj.", h, i_r)):
                req.update(lin(p + name, out_r, in_r, dims.mlp_bias and name != "mlp.proj."))
        if dims.qk_norm:
            req[p + "attention.q_layernorm.weight"] = ((hd,), frozenset({wd}))
            req[p + "attention.k_layernorm.weight"] = ((hd,), frozenset({wd}))
        if dims.o_bias:
            req[p + "attention.dense.bias"] = ((h,), frozenset({wd}))
        if dims.mlp_bias:
            req[p + "mlp.proj.bias"] = ((h,), frozenset({wd}))
        if kv_cache != "none":
            req[p + "attention.kv_cache_scaling_factor"] = (SCALAR, frozenset({"F32"}))
            optional |= {p + "attention.k_cache_scaling_factor", p + "attention.v_cache_scaling_factor"}
    return req, optional


def tensor_problems(rank_file: Path, expected: Expected, optional: set[str]) -> list[str]:
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
        ok_shape = math.prod(got_shape) == 1 if shape == SCALAR else got_shape == shape
        if not ok_shape:
            problems.append(f"{rank_file.name}: {name} has shape {list(got_shape)}, expected {list(shape) or 'a scalar'}")
        if got_dtype not in dtypes:
            problems.append(f"{rank_file.name}: {name} has dtype {got_dtype}, expected {'/'.join(sorted(dtypes))}")
    for name in sorted(set(header) - set(expected) - optional):
        problems.append(f"{rank_file.name}: unexpected tensor {name}")
    return problems
