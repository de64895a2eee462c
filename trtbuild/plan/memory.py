"""Per-rank GPU memory prediction: weights, activations, KV cache capacity.

Exact parts: parameter counts, weight bytes for the chosen precision (scales included), KV bytes
per token. Estimated parts (labelled so in every output): activation/workspace and runtime
overhead. The formulas are documented here and in README ("How the memory plan is computed").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from trtbuild.formats import weight_format
from trtbuild.model.config import ModelDims, count_parameters, kv_bytes_per_token

GIB = 2**30

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}

#: Fixed runtime overhead per GPU: CUDA context, cuBLAS/cuBLASLt workspaces, TRT-LLM runtime buffers.
RUNTIME_OVERHEAD_BYTES = 1 * GIB
#: Extra per GPU when ranks talk to each other (NCCL buffers, custom all-reduce workspace).
MULTI_GPU_OVERHEAD_BYTES = GIB // 2


@dataclass(frozen=True)
class MemoryInputs:
    dims: ModelDims
    dtype: str                # resolved compute dtype (float16/bfloat16/float32)
    weights: str              # recipe weight format
    kv_cache: str             # recipe KV format (none = dtype)
    awq_block_size: int
    tp: int
    pp: int
    max_batch_size: int
    max_seq_len: int
    max_num_tokens: int
    max_beam_width: int
    tokens_per_block: int
    gather_context_logits: bool
    logits_bytes: int         # 4 for float32 logits, 2 for float16
    gpu_memory_bytes: int     # 0 for the CPU reference target
    free_gpu_memory_fraction: float
    kv_max_tokens: int | None


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    weights_bytes_per_rank: int
    activation_bytes_per_rank: int
    overhead_bytes_per_rank: int
    kv_bytes_per_token: int
    tokens_per_sequence: int          # block-rounded max_seq_len × beam
    min_kv_bytes: int                 # one full sequence
    gpu_memory_bytes: int
    kv_pool_bytes: int
    kv_capacity_tokens: int
    max_concurrent_sequences: int
    needed_bytes_per_rank: int        # weights + activations + overhead + one full sequence of KV
    fits: bool

    def to_json(self) -> dict[str, int | bool]:
        return {
            "parameters": self.parameters,
            "weights_bytes_per_rank": self.weights_bytes_per_rank,
            "activation_bytes_per_rank": self.activation_bytes_per_rank,
            "overhead_bytes_per_rank": self.overhead_bytes_per_rank,
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "tokens_per_sequence": self.tokens_per_sequence,
            "gpu_memory_bytes": self.gpu_memory_bytes,
            "kv_pool_bytes": self.kv_pool_bytes,
            "kv_capacity_tokens": self.kv_capacity_tokens,
            "max_concurrent_sequences": self.max_concurrent_sequences,
            "needed_bytes_per_rank": self.needed_bytes_per_rank,
            "fits": self.fits,
        }


def rank_linear_shapes(d: ModelDims, tp: int) -> list[tuple[int, int]]:
    """(out, in) of every quantizable linear layer of ONE decoder layer on one TP rank."""
    kv_heads_rank = math.ceil(d.num_kv_heads / tp)
    q_rank = d.num_heads // tp if d.num_heads % tp == 0 else math.ceil(d.num_heads / tp)
    qkv_out = (q_rank + 2 * kv_heads_rank) * d.head_dim
    shapes = [(qkv_out, d.hidden_size), (d.hidden_size, q_rank * d.head_dim)]
    if d.num_experts:
        inter = math.ceil(d.moe_intermediate_size / tp)
        for _ in range(d.num_experts):
            shapes += [(inter, d.hidden_size), (inter, d.hidden_size), (d.hidden_size, inter)]
    else:
        inter = math.ceil(d.intermediate_size / tp)
        shapes += [(inter, d.hidden_size), (inter, d.hidden_size), (d.hidden_size, inter)]
    return shapes


def weights_bytes_per_rank(inp: MemoryInputs) -> int:
    d = inp.dims
    db = DTYPE_BYTES[inp.dtype]
    pc = count_parameters(d)
    fmt = weight_format(inp.weights)
    per_layer = sum(fmt.bytes_per_linear(o, i, db, inp.awq_block_size) for o, i in rank_linear_shapes(d, inp.tp))
    per_layer += pc.other_per_layer * db                  # norms, biases, router: replicated, high precision
    layers_rank = math.ceil(d.num_layers / inp.pp)
    vocab_rank = math.ceil(d.vocab_size / inp.tp)
    embedding = vocab_rank * d.hidden_size * db          # parallel embedding (split along vocab)
    lm_head = vocab_rank * d.hidden_size * db            # lm_head stays high precision
    ends = embedding + lm_head + d.hidden_size * db if inp.pp == 1 else max(embedding, lm_head + d.hidden_size * db)
    return layers_rank * per_layer + ends


def activation_bytes_per_rank(inp: MemoryInputs) -> int:
    """Estimate of activation + workspace memory reserved by the engine for max_num_tokens.

    Context phase: max_num_tokens rows of hidden states, fused QKV and MLP intermediates (in the
    compute dtype); generation: float logits for max_batch_size × beam rows (and for every context
    token if context logits are gathered).
    """
    d = inp.dims
    act = 2 if inp.dtype != "float32" else 4
    kv_heads_rank = math.ceil(d.num_kv_heads / inp.tp)
    qkv_rank = (math.ceil(d.num_heads / inp.tp) + 2 * kv_heads_rank) * d.head_dim
    inter = d.moe_intermediate_size if d.num_experts else d.intermediate_size
    inter_rank = math.ceil(inter * max(1, d.experts_per_token) / inp.tp)
    per_token = 4 * d.hidden_size + qkv_rank + 2 * inter_rank
    hidden_states = inp.max_num_tokens * per_token * act
    vocab_rank = math.ceil(d.vocab_size / inp.tp)
    logits_rows = inp.max_batch_size * inp.max_beam_width
    if inp.gather_context_logits:
        logits_rows += inp.max_num_tokens
    logits = logits_rows * vocab_rank * inp.logits_bytes
    return hidden_states + logits


def estimate_memory(inp: MemoryInputs) -> MemoryEstimate:
    d = inp.dims
    kv_elem = 1 if inp.kv_cache in ("fp8", "int8") else DTYPE_BYTES[inp.dtype]
    kv_token = kv_bytes_per_token(d, kv_elem, tp=inp.tp, pp=inp.pp)
    weights = weights_bytes_per_rank(inp)
    activations = activation_bytes_per_rank(inp)
    overhead = RUNTIME_OVERHEAD_BYTES + (MULTI_GPU_OVERHEAD_BYTES if inp.tp * inp.pp > 1 else 0)
    tpb = inp.tokens_per_block
    tokens_per_seq = math.ceil(inp.max_seq_len / tpb) * tpb * inp.max_beam_width
    min_kv = tokens_per_seq * kv_token
    needed = weights + activations + overhead + math.ceil(min_kv / inp.free_gpu_memory_fraction)
    if inp.gpu_memory_bytes <= 0:   # CPU reference: no GPU to fit
        return MemoryEstimate(count_parameters(d).total, weights, activations, 0, kv_token, tokens_per_seq,
                              min_kv, 0, 0, 0, 0, needed, True)
    free = max(0, inp.gpu_memory_bytes - weights - activations - overhead)
    pool = int(free * inp.free_gpu_memory_fraction)
    if inp.kv_max_tokens is not None:
        pool = min(pool, inp.kv_max_tokens * kv_token)
    capacity = (pool // (kv_token * tpb)) * tpb if kv_token else 0
    concurrent = min(inp.max_batch_size, capacity // tokens_per_seq) if tokens_per_seq else 0
    fits = weights + activations + overhead <= inp.gpu_memory_bytes and capacity >= tokens_per_seq
    return MemoryEstimate(count_parameters(d).total, weights, activations, overhead, kv_token, tokens_per_seq,
                          min_kv, inp.gpu_memory_bytes, pool, capacity, concurrent, needed, fits)
