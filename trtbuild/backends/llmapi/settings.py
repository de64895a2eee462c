"""The recipe's runtime settings as ``tensorrt_llm.LLM(...)`` arguments (PyTorch backend): a pure function.

    llmapi_settings(plan) -> LlmApiSettings     (no I/O, no TensorRT-LLM import)

What maps to what (TensorRT-LLM 1.2 `TorchLlmArgs` / `KvCacheConfig` / `SchedulerConfig`, the fields in
trtbuild/contracts/trtllm_1_2/llmapi_args.json; every emitted key is checked against that fixture in tests):

    recipe                                     LLM(...)
    (always)                                   backend="pytorch" (an explicit key BaseLLM.__init__ accepts)
    dtype (resolved)                           dtype
    parallelism.tp / pp                        tensor_parallel_size / pipeline_parallel_size
    runtime.max_batch_size | build.max_batch_size   max_batch_size
    build.max_num_tokens                       max_num_tokens
    build.max_seq_len (resolved)               max_seq_len
    build.max_input_len                        max_input_len (and the repository's prompt check; without
                                               chunked prefill at most max_num_tokens: the LLM API refuses
                                               longer prompts, llm.py _check_arguments)
    runtime.chunked_context                    enable_chunked_prefill; scheduler_config.context_chunking_policy
                                               FIRST_COME_FIRST_SERVED
    runtime.scheduler_policy                   scheduler_config.capacity_scheduler_policy (upper case)
    runtime.kv_cache.reuse                     kv_cache_config.enable_block_reuse
    runtime.kv_cache.free_gpu_memory_fraction  kv_cache_config.free_gpu_memory_fraction (same meaning)
    runtime.kv_cache.max_tokens                kv_cache_config.max_tokens
    runtime.kv_cache.host_offload              kv_cache_config.host_cache_size (bytes)
    build.kv_cache.tokens_per_block            kv_cache_config.tokens_per_block
    quantization.kv_cache fp8                  kv_cache_config.dtype "fp8"
    runtime.kv_cache.retention                 per request: KvCacheRetentionConfig (the model builds it)
    runtime.cuda_graphs false                  cuda_graph_config=None (true: the LLM API's default graphs)
    model.trust_remote_code                    trust_remote_code

What the LLM API loads: a Hugging Face checkpoint (weights: none), or ModelOpt's unified Hugging Face
export (``hf_quant_config.json`` beside the safetensors, from ``modelopt.torch.export.export_hf_checkpoint``)
for fp8 / nvfp4 / int4_awq / w4a8_awq. trtbuild's checkpoint stage writes TensorRT-LLM checkpoints (the
engine path), which the PyTorch backend does not load, so quantized weights are refused here
(``llmapi.quantization``) until the checkpoint stage also writes the unified export.
"""

from __future__ import annotations

from typing import Any

from trtbuild.backends.served import ServedSettings
from trtbuild.plan.planner import BuildPlan, PlanDiagnostic

LLMAPI_RELEASE = "1.2"
"""The TensorRT-LLM release line the mapping and the served model were written against (contract fixtures)."""
UNIFIED_EXPORT_FORMATS = ("fp8", "nvfp4", "int4_awq", "w4a8_awq")
"""Weight formats the LLM API loads from ModelOpt's unified HF export."""


class LlmApiSettings(ServedSettings):
    """Everything the LLM-API repository is rendered from, decided from the plan."""

    llm_args: dict[str, Any]
    """`LLM(...)` keyword arguments except `model` and `tokenizer` (the served model adds the paths)."""
    checkpoint: str
    """What the LLM loads: `hf` (the Hugging Face checkpoint as it is)."""
    kv_reuse: bool


def _finding(rule: str, severity: str, path: str, message: str) -> PlanDiagnostic:
    return PlanDiagnostic(rule=f"llmapi.{rule}", severity=severity, message=message, path=path)


def _kv_cache_config(plan: BuildPlan) -> dict[str, Any]:
    s = plan.settings
    kv = s.runtime.kv_cache
    out: dict[str, Any] = {"enable_block_reuse": kv.reuse, "free_gpu_memory_fraction": kv.free_gpu_memory_fraction,
                           "tokens_per_block": s.build.kv_cache.tokens_per_block}
    if kv.max_tokens is not None:
        out["max_tokens"] = kv.max_tokens
    if kv.host_offload:
        out["host_cache_size"] = int(kv.host_offload)
    if s.quantization.kv_cache == "fp8":
        out["dtype"] = "fp8"
    return out


def _quantization_findings(plan: BuildPlan) -> list[PlanDiagnostic]:
    q = plan.settings.quantization
    out = []
    if q.weights in UNIFIED_EXPORT_FORMATS:
        out.append(_finding("quantization", "error", "quantization.weights",
                            f"{q.weights}: the LLM API loads quantized weights from ModelOpt's unified Hugging Face "
                            "export (hf_quant_config.json beside the safetensors, "
                            "modelopt.torch.export.export_hf_checkpoint); trtbuild's checkpoint stage writes "
                            "TensorRT-LLM checkpoints, which the PyTorch backend does not load. Use weights: none, "
                            "or point model.source at a unified export and set weights: none"))
    elif q.weights != "none":
        out.append(_finding("quantization_format", "error", "quantization.weights",
                            f"{q.weights}: trtbuild has no checkpoint the LLM API's PyTorch backend loads for this "
                            f"format (it loads {', '.join(UNIFIED_EXPORT_FORMATS)} from ModelOpt's unified export); "
                            "use the TensorRT-LLM engine backend"))
    if q.kv_cache == "int8":
        out.append(_finding("kv_quantization", "error", "quantization.kv_cache",
                            "int8 KV cache: the mapping sets only KvCacheConfig.dtype 'fp8' (what TorchLlmArgs syncs "
                            "into its quantization config); use kv_cache: fp8 or none"))
    return out


def llmapi_settings(plan: BuildPlan) -> LlmApiSettings:
    """Map the plan's resolved recipe to `LLM(...)` arguments, with findings for what does not map."""
    s = plan.settings
    b, r, p = s.build, s.runtime, s.parallelism
    findings: list[PlanDiagnostic] = []
    if plan.target.get("reference"):
        findings.append(_finding("target", "error", "gpus",
                                 "TensorRT-LLM's LLM API needs an NVIDIA GPU; the cpu target is the CPU reference "
                                 "of the engine backend (use the vLLM backend or the reference to serve on CPU)"))
    max_seq_len = int(b.max_seq_len or plan.model["max_position_embeddings"])
    max_batch = int(r.max_batch_size or b.max_batch_size)
    max_input = min(b.max_input_len, max_seq_len - 1)
    if not r.chunked_context and max_input > b.max_num_tokens:
        findings.append(_finding("max_num_tokens", "warning", "build.max_num_tokens",
                                 f"without chunked prefill the LLM API refuses prompts longer than max_num_tokens "
                                 f"({b.max_num_tokens}); prompts are limited to {b.max_num_tokens} tokens instead of "
                                 f"max_input_len {max_input} (or set runtime.chunked_context: true)"))
        max_input = b.max_num_tokens
    scheduler: dict[str, Any] = {"capacity_scheduler_policy": r.scheduler_policy.upper()}
    if r.chunked_context:
        scheduler["context_chunking_policy"] = "FIRST_COME_FIRST_SERVED"
    args: dict[str, Any] = {
        "backend": "pytorch", "dtype": s.dtype, "tensor_parallel_size": p.tp, "pipeline_parallel_size": p.pp,
        "max_batch_size": max_batch, "max_num_tokens": b.max_num_tokens, "max_seq_len": max_seq_len,
        "max_input_len": max_input, "max_beam_width": 1, "enable_chunked_prefill": r.chunked_context,
        "kv_cache_config": _kv_cache_config(plan), "scheduler_config": scheduler,
        "trust_remote_code": s.model.trust_remote_code,
    }
    if not r.cuda_graphs:
        args["cuda_graph_config"] = None
    sm = int(plan.target.get("sm") or 0)
    if 0 < sm < 80 and s.dtype == "bfloat16":
        findings.append(_finding("bfloat16", "error", "dtype",
                                 f"bfloat16 on SM {sm}: TorchLlmArgs refuses it before SM 80 (\"Pre SM 80 GPUs do not "
                                 "support bfloat16\"); use dtype: float16"))
    findings += _quantization_findings(plan)
    if r.batching == "static":
        findings.append(_finding("batching", "warning", "runtime.batching",
                                 "the PyTorch backend always batches in flight; static batching is not available"))
    if b.max_beam_width > 1:
        findings.append(_finding("beam_search", "warning", "build.max_beam_width",
                                 "the LLM-API repository serves beam width 1 (requests with beam_width > 1 are refused)"))
    if b.gather_context_logits:
        findings.append(_finding("logits", "warning", "build.gather_context_logits",
                                 "the LLM-API repository returns no logits (return_*_logits requests are refused)"))
    if r.gpu_weights_percent < 1.0:
        findings.append(_finding("weight_streaming", "warning", "runtime.gpu_weights_percent",
                                 "the PyTorch backend has no weight streaming: all weights stay on the GPU"))
    if r.decoding_mode == "beam_search":
        findings.append(_finding("decoding_mode", "warning", "runtime.decoding_mode",
                                 "beam_search: the LLM-API repository serves beam width 1; the LLM API picks its "
                                 "sampler per request (greedy unless top_k > 1 or top_p > 0)"))
    if r.kv_cache.retention.rules and not r.kv_cache.reuse:
        findings.append(_finding("kv_retention", "warning", "runtime.kv_cache.retention",
                                 "retention rules apply to reusable KV blocks; with kv_cache.reuse: false they are not sent"))
    return LlmApiSettings(
        llm_args=args, checkpoint="hf", max_batch_size=max_batch, max_input_len=max_input, max_seq_len=max_seq_len,
        decoupled=r.streaming, exclude_input_in_output=r.exclude_input_in_output, kv_reuse=r.kv_cache.reuse,
        max_queue_delay_us=r.max_queue_delay_us, max_queue_size=r.max_queue_size, findings=tuple(findings))
