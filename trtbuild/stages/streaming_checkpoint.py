"""Full-precision TensorRT-LLM checkpoint straight from HF safetensors, a piece at a time (numpy only).

For requests that need no calibration (``quantization.weights`` none / int8_wo / int4_wo, ``kv_cache``
none) ModelOpt only renames, slices, pads and casts tensors. This module does the same without torch,
transformers or modelopt, and writes output that is bit-identical to ModelOpt 0.47's
``export_tensorrt_llm_checkpoint`` (same tensor names, dtypes, shapes, bytes, file layout and
``config.json``; tests/checkpoint/test_streaming_equivalence.py runs both). Peak memory is one chunk
of one source tensor (:data:`CHUNK_BYTES`), not the model: every source tensor is read once, in
row blocks, and each block is written to every rank that holds part of it.

Layout, per rank ``r = tp_rank + pp_rank * tp`` (ModelOpt's rules; facts/trtllm-1.2.md §2c):

* ``transformer.vocab_embedding`` (first PP rank) and ``lm_head`` (last PP rank; the embedding when
  ``tie_word_embeddings``): rows padded with zeros to a multiple of tp, split on rows.
* ``attention.qkv``: the rank's q heads, then its k and v heads (a KV head is duplicated when there
  are fewer KV heads than ranks); weight and bias. ``attention.dense`` = o_proj split on columns.
* ``mlp.fc`` = gate_proj and ``mlp.gate`` = up_proj split on rows, ``mlp.proj`` = down_proj on columns.
  Mixtral: ``mlp.router`` (float32, replicated), ``mlp.fc`` = per expert [w3; w1] rows of the rank,
  ``mlp.proj`` = per expert w2 columns.
* Norms replicated (Qwen3's per-head q/k norms as ``attention.{q,k}_layernorm``); layer indices local
  to the PP stage.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from trtbuild.errors import CheckpointError
from trtbuild.formats import calibrated_weights
from trtbuild.model.architectures import checkpoint_architectures
from trtbuild.model.config import ModelDims
from trtbuild.stages.safetensors_stream import (
    ITEMSIZE,
    OutputTensor,
    SafetensorsWriter,
    SourceTensor,
    read_rows,
    to_dtype,
)

CHUNK_BYTES = 4 << 20
SOURCE_DTYPES = frozenset(ITEMSIZE)
SAFETENSORS_DTYPE = {"float16": "F16", "bfloat16": "BF16", "float32": "F32"}
# Config keys ModelOpt reads through transformers' config object. Required: when absent, transformers
# fills in a per-class default, which this module does not reproduce (the stage uses ModelOpt then).
REQUIRED_KEYS = ("max_position_embeddings", "rms_norm_eps", "hidden_act", "rope_theta")
# Keys ModelOpt's HF_CONFIG_MAP also reads (aliases, partial rotary, ...): their presence changes the
# exported config in ways not reproduced here.
UNREPRODUCED_KEYS = (
    "n_head", "n_heads", "num_heads", "num_kv_heads", "num_kv", "n_head_kv", "multi_query_group_num",
    "num_query_groups", "kv_n_heads", "n_positions", "max_seq_len", "max_sequence_length", "rotary_percentage",
    "rotary_percent", "rotary_pct", "partial_rotary_factor", "rotary_emb_base", "rotary_base",
    "rope_embedding_base", "position_embedding_type", "alibi", "parallel_attn", "multi_query",
)
# The transformers 4.x config classes that copy rope_scaling["type"] to rope_scaling["rope_type"].
_ROPE_TYPE_COPIED = ("llama", "qwen2", "qwen3")


class Piece(NamedTuple):
    """Rows [r0, r1) x columns [c0, c1) of a source tensor, written contiguously into an output tensor."""

    source: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    rank: int
    tensor: str
    offset: int
    """Element offset in the output tensor."""
    dtypes: tuple[str, ...]
    """Conversion chain from the source dtype, e.g. (F16,) or (BF16, F32) for the router."""


@dataclass
class RankPlan:
    rank: int
    tensors: list[OutputTensor] = field(default_factory=list)
    pieces: list[Piece] = field(default_factory=list)
    zeros: list[tuple[str, int, int]] = field(default_factory=list)
    """(tensor, element offset, element count) of vocab padding."""


# ---------------------------------------------------------------------------------------- eligibility
def streaming_problem(hf_cfg: dict[str, Any], dims: ModelDims, *, weights: str, kv_cache: str, dtype: str,
                      tp: int, sources: dict[str, SourceTensor] | None) -> str | None:
    """Why the streaming converter cannot produce ModelOpt's exact output for this request, or None."""
    if weights in calibrated_weights() or kv_cache != "none":
        return f"quantization.weights={weights}, kv_cache={kv_cache} needs calibration"
    if dims.architecture not in checkpoint_architectures():
        return f"{dims.architecture} has no streaming layout"
    if dtype not in ("float16", "bfloat16"):
        return f"dtype {dtype} is not exported by ModelOpt"
    if sources is None:
        return "the weights are not safetensors"
    missing = [k for k in REQUIRED_KEYS if hf_cfg.get(k) is None]
    if dims.num_experts:
        missing += [k for k in ("num_local_experts", "num_experts_per_tok") if hf_cfg.get(k) is None]
    if missing:
        return f"config.json lacks {', '.join(missing)} (transformers would fill in class defaults)"
    unusual = [k for k in UNREPRODUCED_KEYS if k in hf_cfg]
    unusual += [k for k in ("attention_bias", "mlp_bias") if hf_cfg.get(k)]
    if unusual:
        return f"config.json sets {', '.join(unusual)}"
    if dims.num_experts % tp:
        return f"{dims.num_experts} experts are not divisible by tp={tp}"
    odd = sorted({s.dtype for s in sources.values()} - SOURCE_DTYPES)
    if odd:
        return f"source tensors of dtype {', '.join(odd)}"
    return None


# ------------------------------------------------------------------------------------------- config
def modelopt_config(hf_cfg: dict[str, Any], dims: ModelDims, *, decoder_type: str, dtype: str, tp: int,
                    pp: int) -> dict[str, Any]:
    """The config.json ModelOpt 0.47 writes (its manual path, TensorRT-LLM absent), before trtbuild's patch."""
    scaling = hf_cfg.get("rope_scaling")
    if isinstance(scaling, dict) and "type" in scaling and dims.model_type in _ROPE_TYPE_COPIED:
        scaling = dict(scaling)
        scaling["rope_type"] = scaling["type"]
    moe = dims.num_experts > 0
    config: dict[str, Any] = {
        "producer": {"name": "modelopt", "version": "0.47.0"},
        "architecture": dims.architecture,
        "dtype": dtype,
        "logits_dtype": "float16" if dtype == "bfloat16" else dtype,
        "num_hidden_layers": dims.num_layers,
        "num_attention_heads": dims.num_heads,
        "num_key_value_heads": dims.num_kv_heads,
        "hidden_size": dims.hidden_size,
        "norm_epsilon": hf_cfg["rms_norm_eps"],
        "vocab_size": dims.vocab_size,
        "max_position_embeddings": hf_cfg["max_position_embeddings"] or 2048,
        "hidden_act": "swiglu" if moe else hf_cfg["hidden_act"],
        "use_parallel_embedding": True,
        "embedding_sharding_dim": 0,
        "head_size": dims.head_dim,
        "intermediate_size": dims.intermediate_size,
        "position_embedding_type": "rope_gpt_neox",
        "share_embedding_table": False,
        "residual_mlp": False,
        "bias": dims.o_bias,
        "rotary_pct": 1.0,
        "rank": tp * pp - 1,
        "decoder": decoder_type,
        "rmsnorm": True,
        "lm_head_bias": False,
    }
    if hf_cfg["rope_theta"]:
        config["rotary_base"] = hf_cfg["rope_theta"]
    if scaling:
        config["rotary_scaling"] = scaling
    config["mapping"] = {"world_size": tp * pp, "tp_size": tp, "pp_size": pp}
    config["quantization"] = {"quant_algo": None, "kv_cache_quant_algo": None}
    if moe:
        config["moe"] = {"num_experts": hf_cfg["num_local_experts"], "top_k": hf_cfg["num_experts_per_tok"],
                         "normalization_mode": 1}
        config["mapping"].update({"moe_tp_size": tp, "moe_ep_size": 1})
    return config


# --------------------------------------------------------------------------------------------- plan
def plan_ranks(dims: ModelDims, sources: dict[str, SourceTensor], *, dtype: str, tp: int, pp: int,
               tied: bool) -> list[RankPlan]:
    """Every output tensor of every rank and the source pieces that fill it."""
    return [_plan_rank(dims, sources, SAFETENSORS_DTYPE[dtype], rank, tp, pp, tied) for rank in range(tp * pp)]


def _plan_rank(d: ModelDims, sources: dict[str, SourceTensor], wd: str, rank: int, tp: int, pp: int,
               tied: bool) -> RankPlan:
    plan = RankPlan(rank)
    t, stage = rank % tp, rank // tp

    def out(name: str, shape: tuple[int, ...], dtype: str = wd) -> str:
        plan.tensors.append(OutputTensor(name, dtype, shape))
        return name

    def piece(tensor: str, src: str, *, rows: tuple[int, int] | None = None, cols: tuple[int, int] | None = None,
              at: int = 0, chain: tuple[str, ...] = (wd,)) -> int:
        if src not in sources:
            raise CheckpointError(f"tensor {src} is missing from the safetensors files")
        s = sources[src]
        rows, cols = rows or (0, s.rows), cols or (0, s.row_elems)
        plan.pieces.append(Piece(src, rows, cols, rank, tensor, at, chain))
        return at + (rows[1] - rows[0]) * (cols[1] - cols[0])

    def share(n: int) -> tuple[int, int]:  # this rank's rows of a dimension split evenly over tp
        return t * n // tp, (t + 1) * n // tp

    def vocab(name: str, src: str) -> None:
        per = -(-d.vocab_size // tp)  # rows padded with zeros to a multiple of tp
        first, last = t * per, (t + 1) * per
        out(name, (per, d.hidden_size))
        real = max(0, min(last, d.vocab_size) - first)
        if real:
            piece(name, src, rows=(first, first + real))
        if real < per:
            plan.zeros.append((name, real * d.hidden_size, (per - real) * d.hidden_size))

    hd, q_heads = d.head_dim, d.num_heads // tp
    if d.num_kv_heads >= tp:
        kv_rows = (t * (d.num_kv_heads // tp) * hd, (t + 1) * (d.num_kv_heads // tp) * hd)
    else:  # duplicated: rank t holds KV head t // (tp / kv_heads)
        head = t // (tp // d.num_kv_heads)
        kv_rows = (head * hd, (head + 1) * hd)
    kv_r = kv_rows[1] - kv_rows[0]
    inter = d.intermediate_size // tp
    if stage == 0:
        vocab("transformer.vocab_embedding.weight", "model.embed_tokens.weight")
    per_stage = d.num_layers // pp
    for local in range(per_stage):
        src, dst = f"model.layers.{stage * per_stage + local}.", f"transformer.layers.{local}."
        piece(out(dst + "input_layernorm.weight", (d.hidden_size,)), src + "input_layernorm.weight")
        piece(out(dst + "post_layernorm.weight", (d.hidden_size,)), src + "post_attention_layernorm.weight")
        kinds = ("weight", "bias") if d.qkv_bias else ("weight",)
        for kind in kinds:
            shape = (q_heads * hd + 2 * kv_r, d.hidden_size) if kind == "weight" else (q_heads * hd + 2 * kv_r,)
            qkv = out(dst + f"attention.qkv.{kind}", shape)
            at = piece(qkv, src + f"self_attn.q_proj.{kind}", rows=(t * q_heads * hd, (t + 1) * q_heads * hd))
            at = piece(qkv, src + f"self_attn.k_proj.{kind}", rows=kv_rows, at=at)
            piece(qkv, src + f"self_attn.v_proj.{kind}", rows=kv_rows, at=at)
        piece(out(dst + "attention.dense.weight", (d.hidden_size, q_heads * hd)), src + "self_attn.o_proj.weight",
              cols=share(d.num_heads * hd))
        if d.qk_norm:
            for n in ("q", "k"):
                piece(out(dst + f"attention.{n}_layernorm.weight", (hd,)), src + f"self_attn.{n}_norm.weight")
        if d.num_experts:
            moe = src + "block_sparse_moe."
            piece(out(dst + "mlp.router.weight", (d.num_experts, d.hidden_size), "F32"), moe + "gate.weight",
                  chain=(wd, "F32"))
            fc = out(dst + "mlp.fc.weight", (d.num_experts, 2 * inter, d.hidden_size))
            proj = out(dst + "mlp.proj.weight", (d.num_experts, d.hidden_size, inter))
            for e in range(d.num_experts):
                at = piece(fc, moe + f"experts.{e}.w3.weight", rows=share(d.intermediate_size),
                           at=e * 2 * inter * d.hidden_size)
                piece(fc, moe + f"experts.{e}.w1.weight", rows=share(d.intermediate_size), at=at)
                piece(proj, moe + f"experts.{e}.w2.weight", cols=share(d.intermediate_size), at=e * d.hidden_size * inter)
        else:
            piece(out(dst + "mlp.fc.weight", (inter, d.hidden_size)), src + "mlp.gate_proj.weight",
                  rows=share(d.intermediate_size))
            piece(out(dst + "mlp.gate.weight", (inter, d.hidden_size)), src + "mlp.up_proj.weight",
                  rows=share(d.intermediate_size))
            piece(out(dst + "mlp.proj.weight", (d.hidden_size, inter)), src + "mlp.down_proj.weight",
                  cols=share(d.intermediate_size))
    if stage == pp - 1:
        piece(out("transformer.ln_f.weight", (d.hidden_size,)), "model.norm.weight")
        vocab("lm_head.weight", "model.embed_tokens.weight" if tied else "lm_head.weight")
    return plan


# -------------------------------------------------------------------------------------------- write
def write_ranks(plans: list[RankPlan], sources: dict[str, SourceTensor], out_dir: Path, *,
                chunk_bytes: int = CHUNK_BYTES) -> None:
    """Write ``rank{N}.safetensors`` for every plan, reading each source tensor once in row blocks of
    about ``chunk_bytes`` (at least one row): peak memory is a few blocks, whatever the model's size."""
    writers = {p.rank: SafetensorsWriter(Path(out_dir) / f"rank{p.rank}.safetensors", p.tensors) for p in plans}
    try:
        by_source: dict[str, list[Piece]] = defaultdict(list)
        for plan in plans:
            for pc in plan.pieces:
                by_source[pc.source].append(pc)
        for name in sorted(by_source, key=lambda n: (str(sources[n].path), sources[n].offset)):
            _copy_source(sources[name], by_source[name], writers, chunk_bytes)
        for plan in plans:
            for tensor, offset, count in plan.zeros:
                size = ITEMSIZE[writers[plan.rank].tensors[tensor].dtype]
                writers[plan.rank].write_zeros(tensor, offset * size, count * size)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    for w in writers.values():
        w.close()


def _copy_source(src: SourceTensor, pieces: list[Piece], writers: dict[int, SafetensorsWriter],
                 chunk_bytes: int) -> None:
    import numpy as np

    first, last = min(p.rows[0] for p in pieces), max(p.rows[1] for p in pieces)
    step = max(1, chunk_bytes // max(1, src.row_elems * ITEMSIZE[src.dtype]))
    for r0 in range(first, last, step):
        r1 = min(last, r0 + step)
        raw = read_rows(src, r0, r1)
        converted: dict[tuple[str, ...], np.ndarray[Any, Any]] = {}
        for pc in pieces:
            a, b = max(pc.rows[0], r0), min(pc.rows[1], r1)
            if a >= b:
                continue
            if pc.dtypes not in converted:
                values, current = raw, src.dtype
                for target in pc.dtypes:
                    values, current = to_dtype(values, current, target), target
                converted[pc.dtypes] = values
            block = np.ascontiguousarray(converted[pc.dtypes][a - r0:b - r0, pc.cols[0]:pc.cols[1]])
            width = pc.cols[1] - pc.cols[0]
            offset = (pc.offset + (a - pc.rows[0]) * width) * ITEMSIZE[pc.dtypes[-1]]
            writers[pc.rank].write(pc.tensor, offset, block.data)
