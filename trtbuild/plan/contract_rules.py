"""Planner rules that come from NVIDIA's code (the contract fixtures in trtbuild/contracts/).

    quant.builder_refusal     trtllm-build refuses this quantization on this SM (builder.py build())
    gemm_plugin.nvfp4         (info) trtllm-build records gemm_plugin nvfp4 for NVFP4 weights unless disabled
    build.strip_plan          a weight-stripped engine needs a refit stage trtbuild does not have
    kv.retention.range        a retention range that can never apply (starts past max_seq_len / the prompt)
    kv.retention.shadowed     (warning) a rule every token of which an earlier rule already claims
"""

from __future__ import annotations

from trtbuild.catalog.gpus import GpuSpec
from trtbuild.contracts.trtllm import Refusal, builder_refusal, recorded_gemm_plugin
from trtbuild.formats import WEIGHT_FORMATS, kv_algo, quant_algo
from trtbuild.plan.rules import Finding, RuleContext
from trtbuild.recipe.schema import RetentionRule


def builder_refuses(gpu: GpuSpec, weights: str, kv_cache: str) -> Refusal | None:
    """Why trtllm-build 1.2 refuses ``weights`` / ``kv_cache`` on ``gpu`` (None when it builds them)."""
    if gpu.reference:
        return None
    return builder_refusal(gpu.sm, quant_algo(weights), kv_algo(kv_cache))


def buildable_weights(gpu: GpuSpec, kv_cache: str = "none") -> list[str]:
    """Weight formats the GPU runs and trtllm-build builds on it (catalog order)."""
    return [w for w in WEIGHT_FORMATS if gpu.supports_weights(w) and builder_refuses(gpu, w, kv_cache) is None]


def rule_builder_refusal(c: RuleContext) -> list[Finding]:
    q, g = c.recipe.quantization, c.gpu
    combined = builder_refuses(g, q.weights, q.kv_cache)
    if combined is None:
        return []
    parts = [(f"{q.weights} weights", "quantization.weights", builder_refuses(g, q.weights, "none")),
             (f"{q.kv_cache} KV cache", "quantization.kv_cache", builder_refuses(g, "none", q.kv_cache))]
    refused = [(what, path, r) for what, path, r in parts if r is not None] or \
        [(f"{q.weights} weights with a {q.kv_cache} KV cache", "quantization.weights", combined)]
    out = []
    for what, path, refusal in refused:
        if path == "quantization.kv_cache":
            kvs = [k for k in ("fp8", "none") if g.supports_kv(k) and builder_refuses(g, "none", k) is None]
            hint = " or ".join(f"quantization.kv_cache: {k}" for k in kvs)
        else:
            options = [w for w in buildable_weights(g) if w in c.arch.weight_formats and w != "none"]
            hint = " or ".join(f"quantization.weights: {w}" for w in options) or "quantization.weights: none"
        assert refusal is not None
        out.append(Finding("quant.builder_refusal", "error",
                           f"trtllm-build refuses {what} on {g.name} (SM {g.sm}): its builder raises "
                           f"{refusal.error}(\"{refusal.message}\") for SM {refusal.sm_min}-{refusal.sm_max} when "
                           f"QuantMode.{refusal.why}() ({refusal.source}); try {hint} in a targets: {g.key} "
                           "override", path))
    return out


def rule_gemm_plugin_rewrite(c: RuleContext) -> list[Finding]:
    if c.gpu.reference:
        return []
    requested = c.recipe.build.gemm_plugin
    recorded = recorded_gemm_plugin(quant_algo(c.recipe.quantization.weights), requested)
    if recorded == requested:
        return []
    return [Finding("gemm_plugin.nvfp4", "info",
                    f"trtllm-build uses the {recorded} GEMM plugin for {c.recipe.quantization.weights} weights "
                    f"whatever --gemm_plugin says (only `disable` turns it off): the engine records gemm_plugin "
                    f"{recorded}, not {requested}", "build.gemm_plugin")]


def rule_strip_plan(c: RuleContext) -> list[Finding]:
    if not c.recipe.build.strip_plan or c.gpu.reference:
        return []
    return [Finding("build.strip_plan", "error",
                    "build.strip_plan makes trtllm-build write an engine without its weights, to be refitted "
                    "(trtllm-refit) from the same checkpoint before it can serve; trtbuild has no refit stage, so "
                    "the engine it would publish cannot load. Remove build.strip_plan (weight streaming, "
                    "build.weight_streaming, is the supported way to run with less GPU memory)", "build.strip_plan")]


def _span(rule: RetentionRule) -> tuple[str, int, int | None]:
    t = rule.tokens
    if isinstance(t, str):
        return t, 0, None
    return "range", t.start, t.end


def rule_retention_ranges(c: RuleContext) -> list[Finding]:
    r = c.recipe.runtime.kv_cache.retention
    out: list[Finding] = []
    max_input = min(c.recipe.build.max_input_len, c.max_seq_len)
    claimed: list[tuple[int, int | None]] = []  # fixed token spans earlier rules already claim
    prompt_claimed = False
    for i, rule in enumerate(r.rules):
        kind, start, end = _span(rule)
        where = f"runtime.kv_cache.retention.rules.{i}"
        if kind == "range" and start >= c.max_seq_len:
            out.append(Finding("kv.retention.range", "error",
                               f"retention rule {i} starts at token {start}, at or beyond max_seq_len "
                               f"{c.max_seq_len}: no sequence reaches it", where))
        elif kind == "range" and start >= max_input:
            out.append(Finding("kv.retention.range", "warning",
                               f"retention rule {i} starts at token {start}, at or beyond the longest prompt "
                               f"({max_input} tokens): the executor applies token ranges to prompt blocks only",
                               where))
        shadowed = prompt_claimed or (kind == "range" and any(
            s <= start and (e is None or (end is not None and end <= e)) for s, e in claimed))
        if shadowed:
            out.append(Finding("kv.retention.shadowed", "warning",
                               f"retention rule {i} ({kind}) never applies: earlier rules already claim all of its "
                               "tokens (earlier rules win)", where))
        if kind == "prompt":
            prompt_claimed = True
        elif kind == "range":
            claimed.append((start, end))
    return out


CONTRACT_RULES = (rule_builder_refusal, rule_gemm_plugin_rewrite, rule_strip_plan, rule_retention_ranges)
