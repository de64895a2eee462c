"""Human-readable rendering of a BuildPlan and of the GPU catalog (the JSON forms are the models')."""

from __future__ import annotations

from typing import Any

from trtbuild.canon import format_bytes
from trtbuild.plan.planner import BuildPlan


def _gib(n: int | None) -> str:
    return "n/a" if n is None else format_bytes(n, "GiB-table")


def _human_count(n: int) -> str:
    for unit, div in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if n >= div:
            return f"{n / div:.2f} {unit}"
    return str(n)


def _backend_line(name: str) -> str:
    from trtbuild.backends import get_backend

    b = get_backend(name)
    return f"{b.description}; stages {' → '.join(b.stages)}"


def render_plan(plan: BuildPlan, keys: dict[str, str] | None = None) -> str:
    """The plan as text. ``keys``: the cache's stage keys (``plan --status``); without them no key is shown,
    since a stage's key needs the model files' digests, which planning does not read."""
    t, m, s, mem = plan.target, plan.model, plan.settings, plan.memory
    q, p, b = s.quantization, s.parallelism, s.build
    lines: list[str] = []
    if t["reference"]:  # the cpu target: the reference backend by default, or vLLM's CPU build
        kind = "reference target, not an engine" if plan.backend == "reference" else "CPU, no engine"
    else:
        kind = f"SM {t['sm']}, {t['memory_gib']:g} GiB"
    lines.append(f"plan  {plan.recipe['name']} for {t['name']} ({kind})")
    lines.append(f"  backend     {plan.backend}: {_backend_line(plan.backend)}")
    lines.append(f"  model       {m['source']}")
    lines.append(f"              {m['architecture']} ({m['family']}), {_human_count(m['parameters'])} parameters "
                 f"({m['parameters']:,}), {m['dtype']}")
    kv = q.kv_cache if q.kv_cache != "none" else s.dtype
    lines.append(f"  precision   weights {q.weights}, KV cache {kv}")
    lines.append(f"  parallel    tp {p.tp} x pp {p.pp} = {p.tp * p.pp} GPU(s)")
    lines.append(f"  limits      batch {b.max_batch_size}, input {b.max_input_len}, seq {b.max_seq_len}, "
                 f"tokens/iter {b.max_num_tokens}, beam {b.max_beam_width}")
    lines.append("")
    lines.append("memory per GPU" if not t["reference"] else
                 "memory (host, reference)" if plan.backend == "reference" else "memory (host)")
    rows: list[tuple[str, str]] = [
        ("weights", _gib(mem["weights_bytes_per_rank"])),
        ("activations", "~" + _gib(mem["activation_bytes_per_rank"]) + " (estimate)"),
    ]
    if not t["reference"]:
        rows.append(("runtime", "~" + _gib(mem["overhead_bytes_per_rank"]) + " (estimate)"))
    rows.append(("KV per token", format_bytes(mem["kv_bytes_per_token"], "KiB") + f" ({mem['kv_bytes_per_token']:,} bytes)"))
    if not t["reference"]:
        frac = s.runtime.kv_cache.free_gpu_memory_fraction
        rows += [
            ("KV pool", f"{_gib(mem['kv_pool_bytes'])} ({frac:g} of free memory"
                        + (f", capped at {s.runtime.kv_cache.max_tokens} tokens" if s.runtime.kv_cache.max_tokens else "")
                        + ")"),
            ("KV capacity", f"{mem['kv_capacity_tokens']:,} tokens"),
            ("sequences", f"{mem['max_concurrent_sequences']:,} concurrent at max_seq_len {b.max_seq_len}"
                          f" (max_batch_size {b.max_batch_size})"),
            ("fits", "yes" if mem["fits"] else f"NO: needs {_gib(mem['needed_bytes_per_rank'])}, "
                                                f"has {_gib(mem['gpu_memory_bytes'])}"),
        ]
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
    lines.append("")
    lines.append("stages" if keys is not None else "stages (cache keys: `trtbuild plan --status`)")
    for st in plan.stages:
        key = f"key {(keys.get(st.name) or '?')[:12]:<12}  " if keys is not None else ""
        lines.append(f"  {st.name.ljust(10)}  {key}{_summarize(st.name, st.params)}")
    if plan.diagnostics:
        lines.append("")
        lines.append("diagnostics")
        lines += ["  " + d.format() for d in plan.diagnostics]
    lines.append("")
    lines.append("feasible: yes" if plan.feasible else f"feasible: NO ({len(plan.errors)} error(s))")
    return "\n".join(lines)


def _summarize(name: str, p: dict[str, Any]) -> str:
    if name == "fetch":
        return f"source={p['source']}"
    if name == "checkpoint":
        parts = [f"weights={p['weights']}", f"kv={p['kv_cache']}", f"dtype={p['dtype']}", f"tp={p['tp']}", f"pp={p['pp']}"]
        if "awq_block_size" in p:
            parts.append(f"awq_block={p['awq_block_size']}")
        if "calibration" in p:
            c = p["calibration"]
            parts.append(f"calibration={c['dataset']} x{c['samples']} @{c['max_seq_len']}")
        return " ".join(parts)
    if name == "engine":
        return (f"sm={p['sm']} kv_cache={p['kv_cache']['type']}/{p['kv_cache']['tokens_per_block']} "
                f"paged_context_fmha={p['paged_context_fmha']} fp8_context_fmha={p['fp8_context_fmha']} "
                f"gemm_plugin={p['gemm_plugin']} workers={p['workers']}")
    if name == "repository":
        r = p["runtime"]
        return (f"backend={p['backend']} batching={r['batching']} scheduler={r['scheduler_policy']} "
                f"kv_reuse={r['kv_cache']['reuse']} streaming={r['streaming']} world_size={p['world_size']}")
    return ""


def render_gpus(gpus: list[dict[str, Any]]) -> str:
    header = ("KEY", "NAME", "SM", "MEMORY", "BANDWIDTH", "PRECISIONS", "ALIASES")
    rows = [header]
    for g in gpus:
        rows.append((g["key"], g["name"], str(g["sm"]) if not g["reference"] else "-",
                     f"{g['memory_gib']:g} GiB" if not g["reference"] else "host",
                     f"{g['bandwidth_gbs']:,.0f} GB/s" if g["bandwidth_gbs"] else "-",
                     ",".join(g["precisions"]), ",".join(g["aliases"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
