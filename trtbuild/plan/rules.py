"""Feasibility rules. Each finding has a stable rule id, a severity and the recipe key it is about.

Rules see only the resolved recipe, the model's config.json dimensions and the target GPU, so
they run before any GPU time is spent. Add a rule: write a function below and list it in RULES.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from trtbuild.catalog.gpus import GpuSpec
from trtbuild.formats import AMPERE_SM, WEIGHT_FORMATS, fp8_family, kv_format, weight_format
from trtbuild.model.architectures import ArchSpec
from trtbuild.model.config import ModelDims
from trtbuild.recipe.schema import Recipe


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str       # error | warning | info
    message: str
    path: str = ""      # recipe key the finding is about


@dataclass(frozen=True)
class RuleContext:
    recipe: Recipe      # resolved for the target (overrides applied, max_seq_len filled)
    dims: ModelDims
    gpu: GpuSpec
    arch: ArchSpec
    max_seq_len: int


Rule = Callable[[RuleContext], list[Finding]]

FP8_FAMILY = fp8_family()


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


# Suggestions in messages are written `recipe.key: value` (alternatives separated by "or", edits that only
# work together joined by "with"): `plan --json` lists them as fixes, and a test applies each one and
# replans, so a suggestion never leads into another error.
def _paged_context_fmha_off(weights: str, kv: str, gpu: GpuSpec) -> bool:
    """trtllm-build 1.2 turns paged context FMHA off for these KV formats (see rule_kv_quant_context_fmha)."""
    return kv == "int8" or (kv == "fp8" and (weights not in FP8_FAMILY or gpu.sm < 89))


def _needs_paged_fmha(c: RuleContext) -> bool:
    r = c.recipe.runtime
    return r.kv_cache.reuse or r.chunked_context


def _kv_alternative(c: RuleContext, weights: str) -> str:
    """A KV format for ``weights`` on this GPU that keeps the recipe's reuse / chunked context working."""
    for kv in ("fp8", "int8", "none"):
        if kv == "none" or (c.gpu.supports_kv(kv) and kv in c.arch.kv_formats
                            and not (_needs_paged_fmha(c) and _paged_context_fmha_off(weights, kv, c.gpu))):
            return kv
    return "none"


def _awq_fits(c: RuleContext, block: int) -> bool:
    d, tp = c.dims, c.recipe.parallelism.tp
    inter = d.moe_intermediate_size if d.num_experts else d.intermediate_size
    return all(n == int(n) and int(n) % block == 0
               for n in (d.hidden_size, d.num_heads * d.head_dim / tp, inter / tp))


def _weights_alternative(c: RuleContext) -> str | None:
    """The first weight format this GPU and architecture support that needs nothing else changed."""
    # formats that run on every catalog SM first (table order), the model dtype last
    for fmt in [*(f.name for f in WEIGHT_FORMATS.values() if f.bits and f.min_sm <= AMPERE_SM), "none"]:
        if fmt != "none" and not (c.gpu.supports_weights(fmt) and fmt in c.arch.weight_formats):
            continue
        if weight_format(fmt).scales == "group" and not _awq_fits(c, c.recipe.quantization.awq_block_size):
            continue
        return fmt
    return None


def _weights_fix(c: RuleContext) -> str:
    """'quantization.weights: int4_awq' (with the KV format it then needs), or '' when none is known."""
    alt = _weights_alternative(c)
    if alt is None:
        return ""
    q = c.recipe.quantization
    fix = f"quantization.weights: {alt}"
    if q.kv_cache != "none" and (not c.gpu.supports_kv(q.kv_cache)
                                 or (_needs_paged_fmha(c) and _paged_context_fmha_off(alt, q.kv_cache, c.gpu))):
        fix += f" with quantization.kv_cache: {_kv_alternative(c, alt)}"
    return fix


def rule_precision_sm(c: RuleContext) -> list[Finding]:
    q, g = c.recipe.quantization, c.gpu
    out = []
    if g.reference:
        if q.weights != "none" or q.kv_cache != "none":
            out.append(Finding("reference.quantization", "warning",
                               "the CPU reference target runs the HF checkpoint unquantized; "
                               f"quantization ({q.weights}/{q.kv_cache} KV) applies to GPU targets only",
                               "quantization"))
        return out
    need = weight_format(q.weights).min_sm
    fix = _weights_fix(c)
    hint = f" (try {fix} in this GPU's targets override)" if fix else ""
    if need and g.sm < need:
        out.append(Finding("quant.sm", "error", f"{q.weights} weights need SM >= {need}; {g.name} is SM {g.sm}{hint}",
                           "quantization.weights"))
    elif not g.supports_weights(q.weights):
        out.append(Finding("quant.sm", "error", f"{g.name} does not support {q.weights} weights{hint}",
                           "quantization.weights"))
    kv_min_sm = kv_format(q.kv_cache).min_sm
    if kv_min_sm > AMPERE_SM and g.sm < kv_min_sm:
        weights = q.weights if g.supports_weights(q.weights) else (_weights_alternative(c) or q.weights)
        alt = _kv_alternative(c, weights)
        why = " (an INT8 KV cache would turn off the paged context FMHA that KV reuse and chunked context need)" \
            if alt == "none" and _needs_paged_fmha(c) else ""
        out.append(Finding("quant.sm", "error",
                           f"{q.kv_cache} KV cache needs SM >= {kv_min_sm} on the engine path; {g.name} is SM {g.sm} "
                           f"(try quantization.kv_cache: {alt}){why}", "quantization.kv_cache"))
    return out


def rule_quant_arch(c: RuleContext) -> list[Finding]:
    q, a = c.recipe.quantization, c.arch
    if c.gpu.reference:
        return []
    out = []
    if q.weights not in a.weight_formats:
        ok = ", ".join(sorted(a.weight_formats))
        out.append(Finding("quant.arch", "error",
                           f"{q.weights} is not supported for {a.hf_architecture} on the engine path (supported: {ok})",
                           "quantization.weights"))
    if q.kv_cache not in a.kv_formats:
        out.append(Finding("quant.arch", "error",
                           f"{q.kv_cache} KV cache is not supported for {a.hf_architecture}", "quantization.kv_cache"))
    return out


def rule_parallel_dims(c: RuleContext) -> list[Finding]:
    d, tp, pp = c.dims, c.recipe.parallelism.tp, c.recipe.parallelism.pp
    out = []
    if d.num_heads % tp:
        out.append(Finding("tp.heads", "error",
                           f"tp {tp} does not divide num_attention_heads {d.num_heads}", "parallelism.tp"))
    if d.num_kv_heads % tp and tp % d.num_kv_heads:
        out.append(Finding("tp.kv_heads", "error",
                           f"tp {tp} and num_key_value_heads {d.num_kv_heads}: one must divide the other",
                           "parallelism.tp"))
    elif d.num_kv_heads < tp:
        out.append(Finding("tp.kv_heads", "info",
                           f"{d.num_kv_heads} KV heads over tp {tp}: each KV head is duplicated on "
                           f"{tp // d.num_kv_heads} ranks (more KV memory per token)", "parallelism.tp"))
    inter = d.moe_intermediate_size if d.num_experts else d.intermediate_size
    if inter % tp:
        out.append(Finding("tp.intermediate", "error",
                           f"tp {tp} does not divide the MLP intermediate size {inter}", "parallelism.tp"))
    if d.vocab_size % tp:
        out.append(Finding("tp.vocab", "info",
                           f"vocab {d.vocab_size} is padded to a multiple of tp {tp} in lm_head", "parallelism.tp"))
    if d.num_layers % pp:
        out.append(Finding("pp.layers", "warning",
                           f"pp {pp} does not divide {d.num_layers} layers: stages are uneven", "parallelism.pp"))
    if pp > d.num_layers:
        out.append(Finding("pp.layers", "error", f"pp {pp} exceeds the {d.num_layers} layers", "parallelism.pp"))
    if c.gpu.reference and tp * pp > 1:
        out.append(Finding("reference.parallelism", "warning",
                           "the CPU reference target runs in one process; tp/pp apply to GPU targets only",
                           "parallelism"))
    return out


def rule_awq_block(c: RuleContext) -> list[Finding]:
    q, d, tp = c.recipe.quantization, c.dims, c.recipe.parallelism.tp
    if weight_format(q.weights).scales != "group" or c.gpu.reference:
        return []
    b = q.awq_block_size
    inter = d.moe_intermediate_size if d.num_experts else d.intermediate_size
    dims = {"hidden_size (qkv, mlp.fc, mlp.gate input)": d.hidden_size,
            f"attention dense input per rank (heads*head_dim/tp = {d.num_heads * d.head_dim}/{tp})":
                d.num_heads * d.head_dim / tp,
            f"mlp.proj input per rank (intermediate/tp = {inter}/{tp})": inter / tp}
    out = []
    for what, n in dims.items():
        if n != int(n) or int(n) % b:
            out.append(Finding("awq.block", "error",
                               f"awq_block_size {b} does not divide {what} = {n:g}; "
                               + ("use quantization.awq_block_size: 64 or a smaller tp" if b != 64 and _awq_fits(c, 64)
                                  else "use a smaller tp or another weight format"), "quantization.awq_block_size"))
    return out


def rule_kv_layout(c: RuleContext) -> list[Finding]:
    b, r = c.recipe.build, c.recipe.runtime
    out = []
    if not _is_pow2(b.kv_cache.tokens_per_block):
        out.append(Finding("kv.tokens_per_block", "error",
                           f"tokens_per_block {b.kv_cache.tokens_per_block} is not a power of two",
                           "build.kv_cache.tokens_per_block"))
    if r.batching == "inflight" and b.kv_cache.type != "paged":
        out.append(Finding("batching.paged_kv", "error",
                           f"in-flight batching needs build.kv_cache.type: paged (got {b.kv_cache.type})",
                           "build.kv_cache.type"))
    q = c.recipe.quantization
    enable = "build.paged_context_fmha: true with build.kv_cache.type: paged"
    if not c.gpu.reference and _paged_context_fmha_off(q.weights, q.kv_cache, c.gpu):
        enable += " with quantization.kv_cache: none"  # else trtllm-build turns paged context FMHA off again
    if r.kv_cache.reuse and not (b.paged_context_fmha and b.kv_cache.type == "paged"):
        off = "" if r.kv_cache.retention.rules else " or set runtime.kv_cache.reuse: false"
        out.append(Finding("kv.reuse.paged_context_fmha", "error",
                           f"runtime.kv_cache.reuse needs paged context FMHA and a paged KV cache: set {enable}{off}",
                           "runtime.kv_cache.reuse"))
    if r.chunked_context and not (b.paged_context_fmha and b.kv_cache.type == "paged"):
        out.append(Finding("chunked_context.paged_context_fmha", "error",
                           f"runtime.chunked_context needs paged context FMHA and a paged KV cache: set {enable} "
                           "or runtime.chunked_context: false", "runtime.chunked_context"))
    if r.chunked_context and b.max_num_tokens % b.kv_cache.tokens_per_block:
        out.append(Finding("chunked_context.chunk_size", "warning",
                           f"max_num_tokens {b.max_num_tokens} is not a multiple of tokens_per_block "
                           f"{b.kv_cache.tokens_per_block}; chunks are rounded down", "build.max_num_tokens"))
    if r.kv_cache.retention.rules and not r.kv_cache.reuse:
        ok = c.gpu.reference or (b.paged_context_fmha and b.kv_cache.type == "paged"
                                 and not _paged_context_fmha_off(q.weights, q.kv_cache, c.gpu))
        out.append(Finding("kv.retention.reuse", "error",
                           "KV retention rules only act on reused blocks: "
                           + ("set runtime.kv_cache.reuse: true" if ok else
                              "turn runtime.kv_cache.reuse on (it needs paged context FMHA) or remove the rules"),
                           "runtime.kv_cache.retention"))
    if r.kv_cache.host_offload and not r.kv_cache.reuse:
        out.append(Finding("kv.host_offload.reuse", "warning",
                           "host offload keeps reusable blocks; without reuse it has nothing to keep",
                           "runtime.kv_cache.host_offload"))
    return out


def rule_kv_quant_context_fmha(c: RuleContext) -> list[Finding]:
    """trtllm-build 1.2 turns paged context FMHA off for an INT8 KV cache, and for an FP8 KV cache
    unless FP8 context FMHA is possible (fp8/w4a8_awq/nvfp4 weights on SM >= 89). KV reuse and
    chunked context then silently stop working."""
    q, b, r = c.recipe.quantization, c.recipe.build, c.recipe.runtime
    if c.gpu.reference or not b.paged_context_fmha:
        return []
    why = ""
    if q.kv_cache == "int8":
        why = "an INT8 KV cache"
    elif q.kv_cache == "fp8" and q.weights not in FP8_FAMILY:
        why = f"an FP8 KV cache with {q.weights} weights (FP8 context FMHA needs fp8, w4a8_awq or nvfp4)"
    elif q.kv_cache == "fp8" and c.gpu.sm < 89:
        why = f"an FP8 KV cache on SM {c.gpu.sm} (FP8 context FMHA needs SM >= 89)"
    if not why:
        return []
    needs = [name for name, on in (("runtime.kv_cache.reuse", r.kv_cache.reuse),
                                   ("runtime.chunked_context", r.chunked_context)) if on]
    if needs:
        fixes = ["quantization.kv_cache: none"]
        if (q.kv_cache != "fp8" and c.gpu.sm >= 89 and c.gpu.supports_kv("fp8")
                and q.weights in FP8_FAMILY and "fp8" in c.arch.kv_formats):
            fixes.append("quantization.kv_cache: fp8")
        return [Finding("kv_quant.paged_context_fmha", "error",
                        f"trtllm-build turns paged context FMHA off with {why}, so {' and '.join(needs)} would "
                        f"silently stop working; use {' or '.join(fixes)} (an FP8 KV cache keeps it with fp8, "
                        "w4a8_awq or nvfp4 weights on SM >= 89), or turn them off", "quantization.kv_cache")]
    return [Finding("kv_quant.paged_context_fmha", "warning",
                    f"trtllm-build turns paged context FMHA off with {why}", "quantization.kv_cache")]


def rule_lengths(c: RuleContext) -> list[Finding]:
    b, r, d = c.recipe.build, c.recipe.runtime, c.dims
    out = []
    if b.max_input_len > c.max_seq_len:
        out.append(Finding("len.input_vs_seq", "error",
                           f"max_input_len {b.max_input_len} exceeds max_seq_len {c.max_seq_len} "
                           f"(try build.max_input_len: {max(1, c.max_seq_len // 2)})", "build.max_input_len"))
    elif b.max_input_len == c.max_seq_len:
        out.append(Finding("len.input_vs_seq", "warning",
                           f"max_input_len equals max_seq_len ({c.max_seq_len}): a longest prompt leaves no room "
                           "for output", "build.max_input_len"))
    if not r.chunked_context and b.max_num_tokens < b.max_input_len:
        q = c.recipe.quantization
        chunked = (c.gpu.reference or (b.paged_context_fmha and b.kv_cache.type == "paged" and r.batching == "inflight"
                                       and not _paged_context_fmha_off(q.weights, q.kv_cache, c.gpu)))
        out.append(Finding("len.num_tokens_vs_input", "error",
                           f"max_num_tokens {b.max_num_tokens} < max_input_len {b.max_input_len}: without chunked "
                           f"context a long prompt can never be scheduled (set build.max_num_tokens: {b.max_input_len}"
                           + (" or runtime.chunked_context: true)" if chunked else ")"), "build.max_num_tokens"))
    if b.max_num_tokens > b.max_batch_size * c.max_seq_len:
        out.append(Finding("len.num_tokens_clipped", "info",
                           f"max_num_tokens {b.max_num_tokens} > max_batch_size x max_seq_len "
                           f"({b.max_batch_size * c.max_seq_len}): trtllm-build clips it", "build.max_num_tokens"))
    limit = d.max_position_embeddings
    factor = (d.rope_scaling or {}).get("factor")
    rope_type = (d.rope_scaling or {}).get("rope_type") or (d.rope_scaling or {}).get("type")
    if factor and rope_type in ("linear", "dynamic", "yarn"):
        limit = int(limit * float(factor))
    if c.max_seq_len > limit:
        out.append(Finding("len.position_embeddings", "warning",
                           f"max_seq_len {c.max_seq_len} exceeds the model's context ({limit} positions)",
                           "build.max_seq_len"))
    if r.max_batch_size is not None and r.max_batch_size > b.max_batch_size:
        out.append(Finding("runtime.max_batch_size", "error",
                           f"runtime.max_batch_size {r.max_batch_size} exceeds the engine's build.max_batch_size "
                           f"{b.max_batch_size} (the engine's value wins silently at run time; try "
                           f"runtime.max_batch_size: {b.max_batch_size})", "runtime.max_batch_size"))
    tpb = b.kv_cache.tokens_per_block
    one_seq = math.ceil(c.max_seq_len / tpb) * tpb * b.max_beam_width
    if r.kv_cache.max_tokens is not None and r.kv_cache.max_tokens < one_seq:
        out.append(Finding("runtime.kv_max_tokens", "error",
                           f"runtime.kv_cache.max_tokens {r.kv_cache.max_tokens} cannot hold one sequence of "
                           f"max_seq_len {c.max_seq_len} (needs {one_seq} = tokens_per_block x blocks x beam; try "
                           f"runtime.kv_cache.max_tokens: {one_seq})", "runtime.kv_cache.max_tokens"))
    return out


def rule_build_features(c: RuleContext) -> list[Finding]:
    b, r, q = c.recipe.build, c.recipe.runtime, c.recipe.quantization
    out = []
    if b.fp8_context_fmha and q.weights not in FP8_FAMILY:
        out.append(Finding("fp8_context_fmha.quant", "error",
                           f"fp8_context_fmha needs fp8, w4a8_awq or nvfp4 weights (got {q.weights}); "
                           "trtllm-build would silently drop it (set build.fp8_context_fmha: false)",
                           "build.fp8_context_fmha"))
    if b.opt_num_tokens is not None and b.multiple_profiles:
        out.append(Finding("opt_num_tokens.multiple_profiles", "error",
                           "opt_num_tokens cannot be combined with multiple_profiles", "build.opt_num_tokens"))
    if b.gemm_plugin == "fp8" and q.weights != "fp8":
        out.append(Finding("gemm_plugin.quant", "error", "gemm_plugin fp8 needs fp8 weights (try build.gemm_plugin: auto)",
                           "build.gemm_plugin"))
    if b.gemm_plugin == "nvfp4" and q.weights != "nvfp4":
        out.append(Finding("gemm_plugin.quant", "error",
                           "gemm_plugin nvfp4 needs nvfp4 weights (try build.gemm_plugin: auto)", "build.gemm_plugin"))
    if b.reduce_fusion and (c.recipe.parallelism.tp == 1 or c.arch.family not in ("llama", "gemma2")):
        out.append(Finding("reduce_fusion.scope", "warning",
                           "reduce_fusion only applies with tp > 1 on Llama or Gemma 2; trtllm-build turns it off",
                           "build.reduce_fusion"))
    if r.gpu_weights_percent < 1.0 and not b.weight_streaming:
        out.append(Finding("weight_streaming", "error",
                           "runtime.gpu_weights_percent < 1 needs build.weight_streaming: true "
                           "(or runtime.gpu_weights_percent: 1.0)", "runtime.gpu_weights_percent"))
    if r.decoding_mode == "beam_search" and b.max_beam_width == 1:
        out.append(Finding("decoding.beam", "error", "decoding_mode beam_search needs build.max_beam_width > 1",
                           "runtime.decoding_mode"))
    if r.decoding_mode not in (None, "beam_search") and b.max_beam_width > 1:
        out.append(Finding("decoding.beam", "error",
                           f"decoding_mode {r.decoding_mode} cannot serve beam width {b.max_beam_width}",
                           "runtime.decoding_mode"))
    if r.batching == "static" and r.chunked_context:
        out.append(Finding("batching.static", "error", "chunked context needs in-flight batching",
                           "runtime.chunked_context"))
    return out


def rule_checkpoint_export(c: RuleContext) -> list[Finding]:
    """What the checkpoint stage (ModelOpt 0.47's TensorRT-LLM export) cannot do, known before any work."""
    if c.gpu.reference:
        return []
    out = []
    if c.recipe.dtype == "float32":
        out.append(Finding("dtype.float32", "error",
                           "ModelOpt exports float32 checkpoints as float16 without saying so; use dtype: float16 "
                           "or dtype: bfloat16 for engines", "dtype"))
    if not c.arch.checkpoint:
        out.append(Finding("checkpoint.architecture", "error",
                           f"the checkpoint stage cannot convert {c.arch.hf_architecture}: {c.arch.checkpoint_refusal}; "
                           "the CPU reference target (--gpu cpu) serves it from the HF checkpoint", "model"))
    return out


def rule_model_source(c: RuleContext) -> list[Finding]:
    src = c.recipe.model.source
    if src.startswith("hf://") and "@" not in src:
        return [Finding("model.unpinned", "warning",
                        f"{src} has no @revision: builds are not reproducible (pin one, or run `trtbuild lock`)",
                        "model.source")]
    rev = src.rpartition("@")[2] if src.startswith("hf://") else ""
    if rev and not (len(rev) == 40 and all(ch in "0123456789abcdef" for ch in rev)):
        return [Finding("model.unpinned", "warning",
                        f"revision '{rev}' is a branch or tag and can move: pin a commit sha or run `trtbuild lock`",
                        "model.source")]
    return []


def rule_calibration(c: RuleContext) -> list[Finding]:
    q = c.recipe.quantization
    if c.gpu.reference or not q.needs_calibration:
        return []
    out = []
    if q.weights == "nvfp4":
        out.append(Finding("calibration.nvfp4_cpu", "info",
                           "nvfp4 calibration without CUDA uses max calibration only", "quantization.calibration"))
    if q.weights in ("int4_awq", "w4a8_awq") and q.calibration.samples > 64:
        out.append(Finding("calibration.awq_samples", "info",
                           f"AWQ search over {q.calibration.samples} samples is slow; 32-64 is usual",
                           "quantization.calibration.samples"))
    return out


def rule_limits(c: RuleContext) -> list[Finding]:
    """Values that are valid alone but contradict the model or each other."""
    b, sv, vocab = c.recipe.build, c.recipe.serving, c.dims.vocab_size
    world = c.recipe.parallelism.tp * c.recipe.parallelism.pp
    out = []
    bad_end = [i for i in sv.end_ids or () if i >= vocab]
    if bad_end:
        out.append(Finding("serving.token_ids", "error",
                           f"end id(s) {', '.join(map(str, bad_end))} are not token ids of the model: its vocabulary "
                           f"has {vocab} tokens (0..{vocab - 1})", "serving.end_ids"))
    if sv.pad_id is not None and sv.pad_id >= vocab:
        out.append(Finding("serving.token_ids", "error",
                           f"pad id {sv.pad_id} is not a token id of the model: its vocabulary has {vocab} tokens "
                           f"(0..{vocab - 1})", "serving.pad_id"))
    if b.workers is not None and b.workers > world and not c.gpu.reference:
        out.append(Finding("build.workers", "error",
                           f"build.workers {b.workers} exceeds the {world} engine rank(s) (tp x pp) to build; "
                           f"use at most {world}", "build.workers"))
    if b.opt_num_tokens is not None and b.opt_num_tokens > b.max_num_tokens:
        out.append(Finding("len.opt_num_tokens", "error",
                           f"opt_num_tokens {b.opt_num_tokens} exceeds max_num_tokens {b.max_num_tokens}: the "
                           "optimisation point must lie inside the profile", "build.opt_num_tokens"))
    return out


RULES: tuple[Rule, ...] = (rule_precision_sm, rule_quant_arch, rule_parallel_dims, rule_awq_block, rule_kv_layout,
                           rule_kv_quant_context_fmha, rule_lengths, rule_build_features, rule_checkpoint_export, rule_model_source,
                           rule_calibration, rule_limits)


def run_rules(ctx: RuleContext) -> list[Finding]:
    from trtbuild.plan.contract_rules import (
        CONTRACT_RULES,  # rules derived from NVIDIA's code (imports this module)
    )

    findings: list[Finding] = []
    for rule in RULES + CONTRACT_RULES:
        findings.extend(rule(ctx))
    return findings
