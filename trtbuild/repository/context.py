"""BuildPlan (+ tokenizer, engine limits) → the frozen values the templates render.

Every value the templates need is decided here, from the plan's resolved settings; the templates
only format. Constants the recipe has no key for (backend defaults written out explicitly) are named
below, not buried in templates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from trtbuild import __version__
from trtbuild.errors import RepositoryError
from trtbuild.plan.planner import BuildPlan
from trtbuild.repository.inputs import TokenizerInfo
from trtbuild.repository.launch import private_cwd, script_ranks
from trtbuild.repository.manifest import HF_MODEL_DIR, TOKENIZER_DIR, EngineLimits
from trtbuild.resources import topologies_dir

TOPOLOGIES_DIR = topologies_dir()
CLIENT_MODEL = {"ensemble": "ensemble", "bls": "tensorrt_llm_bls"}
TOPOLOGY_FILES = {"ensemble": ("ensemble",), "bls": ("bls",), "both": ("bls", "ensemble")}
"""Client models first to last: the first is the entry point smoke, README and launch.sh point at."""
MODEL_ROLES = {
    "preprocessing": "tokenizes prompts and builds the engine request (Python)",
    "tensorrt_llm": "generates tokens (TensorRT-LLM C++ backend)",
    "postprocessing": "turns token ids into text (Python)",
    "ensemble": "client-facing: preprocessing → tensorrt_llm → postprocessing",
    "tensorrt_llm_bls": "client-facing: the same contract in one Python model (BLS)",
}
DTYPE_TO_TRITON = {"float16": "TYPE_FP16", "bfloat16": "TYPE_BF16", "float32": "TYPE_FP32"}

# Backend parameters the recipe has no key for: the C++ backend's own defaults, written out.
CANCELLATION_CHECK_PERIOD_MS = 100
STATS_CHECK_PERIOD_MS = 100
ITER_STATS_MAX_ITERATIONS = 1000
REQUEST_STATS_MAX_ITERATIONS = 0
LORA_CACHE = {"optimal_adapter_size": 8, "max_adapter_size": 64, "gpu_memory_fraction": 0.05,
              "host_memory_bytes": 1 << 30}
EXECUTOR_WORKER_PATH = "/opt/tritonserver/backends/tensorrtllm/trtllmExecutorWorker"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    data_type: str
    dims: tuple[int, ...]
    optional: bool = True
    ragged: bool = False
    reshape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Step:
    model: str
    input_map: tuple[tuple[str, str], ...]
    output_map: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Instances:
    preprocessing: int
    postprocessing: int
    bls: int


@dataclass(frozen=True)
class Contract:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


@dataclass(frozen=True)
class RenderContext:
    generator: str
    recipe_name: str
    target_name: str
    reference: bool
    topology: str
    models: tuple[str, ...]
    client_models: tuple[str, ...]
    model_roles: MappingProxyType[str, str]
    max_batch_size: int
    max_queue_delay_us: int
    max_queue_size: int
    decoupled: bool
    instances: Instances
    tokenizer_dir: str
    add_special_tokens: bool
    skip_special_tokens: bool
    end_ids: tuple[int, ...]
    pad_id: int
    stop_words_json: str
    bad_words_json: str
    max_input_len: int
    max_seq_len: int
    vocab_size: int
    max_beam_width: int
    stream_coalescing_ms: int
    kv_reuse: bool
    kv_retention_json: str
    logits_dtype: str
    prompt_table_dtype: str
    encoder_input_features_dtype: str
    trtllm: MappingProxyType[str, str]
    client: Contract
    ensemble_steps: tuple[Step, ...]
    world_size: int
    tp: int
    pp: int
    launch_ranks: tuple[tuple[str, ...], ...]
    launch_cwd: str
    """launch.sh's working directory inside its private run directory (launch.private_cwd)."""
    launch_engine_link: str
    """Where launch.sh links the engine inside that directory ("" when gpt_model_path is not relative)."""
    engine_ref: str
    engine_version: str
    engine_dir_display: str
    hf_model_display: str
    notes: tuple[str, ...] = field(default=())


def load_topology(name: str) -> dict[str, Any]:
    path = TOPOLOGIES_DIR / f"{name}.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise RepositoryError(f"{path}: expected a mapping")
    return data


def load_contract(logits_dtype: str, prompt_table_dtype: str) -> Contract:
    data = load_topology("contract")
    special = {"logits": logits_dtype, "prompt_table": prompt_table_dtype}

    def spec(item: dict[str, Any], inputs: bool) -> TensorSpec:
        dims = tuple(int(d) for d in item["dims"])
        return TensorSpec(name=item["name"], data_type=special.get(item["type"], item["type"]), dims=dims,
                          optional=inputs and not item.get("required", False),
                          ragged=bool(item.get("ragged", False)) or (inputs and -1 in dims))
    return Contract(inputs=tuple(spec(i, True) for i in data["inputs"]),
                    outputs=tuple(spec(o, False) for o in data["outputs"]))


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def build_context(plan: BuildPlan, *, tokenizer: TokenizerInfo, engine: EngineLimits,
                  engine_dir: Path | None, hf_model_path: str | None, engine_ref: str | None = None) -> RenderContext:
    s = plan.settings
    r, b, sv = s.runtime, s.build, s.serving
    reference = bool(plan.target.get("reference"))
    if not reference and engine_dir is None:
        raise RepositoryError("engine_dir is required for a GPU target (gpt_model_path must name the engine)")
    if reference and hf_model_path is None:
        raise RepositoryError("hf_model_dir is required for the CPU reference target")
    topology = sv.topology
    names = TOPOLOGY_FILES[topology]
    client_models = tuple(CLIENT_MODEL[n] for n in names)
    topologies = [load_topology(n) for n in names]
    steps: tuple[Step, ...] = ()
    models: list[str] = []
    for name, topo in zip(names, topologies):
        models += [m for m in topo["models"] if m not in models]
        if name == "ensemble":
            steps = tuple(Step(model=st["model"], input_map=tuple(st["input_map"].items()),
                               output_map=tuple(st["output_map"].items())) for st in topo["steps"])
    models += list(client_models)
    decoupled = r.streaming
    notes: list[str] = []
    if not reference and engine.source == "plan":
        notes.append(f"no engine config.json at {engine_dir}: engine limits (batch, lengths, tp x pp) come from "
                     "the plan; lint rechecks them once the engine is there")
    max_batch = int(r.max_batch_size or b.max_batch_size)
    dtype = s.dtype if s.dtype in DTYPE_TO_TRITON else "float16"
    logits_dtype = DTYPE_TO_TRITON.get(engine.logits_dtype, "TYPE_FP32")
    prompt_dtype = DTYPE_TO_TRITON[dtype]
    retention = r.kv_cache.retention
    kv_retention = {
        "rules": [{"tokens": rule.tokens if isinstance(rule.tokens, str) else rule.tokens.model_dump(),
                   "priority": rule.priority, "duration_ms": rule.duration} for rule in retention.rules],
        "decode_priority": retention.decode_priority, "decode_duration_ms": retention.decode_duration,
    }
    world = 1 if reference else engine.tp * engine.pp
    launch_dirs = private_cwd(None if reference else engine_ref)
    trtllm = {
        "gpt_model_type": "inflight_fused_batching" if r.batching == "inflight" else "V1",
        "gpt_model_path": str(hf_model_path if reference else (engine_ref or engine_dir)),
        "max_beam_width": str(engine.max_beam_width),
        "batch_scheduler_policy": r.scheduler_policy,
        "enable_chunked_context": _bool(r.chunked_context),
        "exclude_input_in_output": _bool(r.exclude_input_in_output),
        "decoding_mode": str(r.decoding_mode),
        "gpu_weights_percent": _number(r.gpu_weights_percent),
        "multi_block_mode": _bool(r.multi_block_mode),
        "enable_context_fmha_fp32_acc": _bool(r.context_fmha_fp32_acc),
        "cuda_graph_mode": _bool(r.cuda_graphs),
        "cuda_graph_cache_size": "0",
        "normalize_log_probs": "true",
        "speculative_decoding_fast_logits": "false",
        "enable_kv_cache_reuse": _bool(r.kv_cache.reuse),
        "kv_cache_free_gpu_mem_fraction": _number(r.kv_cache.free_gpu_memory_fraction),
        "max_tokens_in_paged_kv_cache": "" if r.kv_cache.max_tokens is None else str(r.kv_cache.max_tokens),
        "max_attention_window_size": str(engine.max_seq_len),
        "kv_cache_host_memory_bytes": str(r.kv_cache.host_offload),
        "kv_cache_onboard_blocks": "true",
        "cancellation_check_period_ms": str(CANCELLATION_CHECK_PERIOD_MS),
        "stats_check_period_ms": str(STATS_CHECK_PERIOD_MS),
        "iter_stats_max_iterations": str(ITER_STATS_MAX_ITERATIONS),
        "request_stats_max_iterations": str(REQUEST_STATS_MAX_ITERATIONS),
        "lora_cache_optimal_adapter_size": str(LORA_CACHE["optimal_adapter_size"]),
        "lora_cache_max_adapter_size": str(LORA_CACHE["max_adapter_size"]),
        "lora_cache_gpu_memory_fraction": _number(LORA_CACHE["gpu_memory_fraction"]),
        "lora_cache_host_memory_bytes": str(LORA_CACHE["host_memory_bytes"]),
        "executor_worker_path": EXECUTOR_WORKER_PATH,
        # Read by the C++ backend without a default (contract: backend_parameters); empty = no guided decoding.
        "guided_tokenizer_dir": "", "guided_decoding_backend": "", "xgrammar_tokenizer_info_path": "",
        "reference_dtype": dtype,
        "reference_logits_dtype": engine.logits_dtype,
        # what the executor knows about an engine built from this recipe (the reference copies its checks)
        "reference_max_input_len": str(engine.max_input_len),
        "reference_tokens_per_block": str(b.kv_cache.tokens_per_block),
        "reference_gather_context_logits": _bool(b.gather_context_logits),
        # the engine stage never passes the deprecated --gather_generation_logits and the 1.2 backend never
        # sets ExecutorConfig.gatherGenerationLogits: return_generation_logits fails (REFERENCE.md)
        "reference_gather_generation_logits": "false",
    }
    return RenderContext(
        generator=f"trtbuild {__version__}", recipe_name=s.name, target_name=str(plan.target.get("name")),
        reference=reference, topology=topology, models=tuple(models), client_models=client_models,
        model_roles=MappingProxyType({**MODEL_ROLES, "tensorrt_llm": "generates tokens: CPU REFERENCE "
                                      "(Python backend, Hugging Face checkpoint)" if reference
                                      else MODEL_ROLES["tensorrt_llm"]}),
        max_batch_size=max_batch, max_queue_delay_us=r.max_queue_delay_us, max_queue_size=r.max_queue_size,
        decoupled=decoupled,
        instances=Instances(sv.instances.preprocessing, sv.instances.postprocessing, sv.instances.bls),
        tokenizer_dir=f"../../{TOKENIZER_DIR}",
        add_special_tokens=sv.tokenizer.add_special_tokens, skip_special_tokens=sv.tokenizer.skip_special_tokens,
        end_ids=tokenizer.end_ids, pad_id=tokenizer.pad_id,
        stop_words_json=json.dumps(list(sv.stop_words), ensure_ascii=False),
        bad_words_json=json.dumps(list(sv.bad_words), ensure_ascii=False),
        max_input_len=min(b.max_input_len, engine.max_input_len), max_seq_len=engine.max_seq_len,
        vocab_size=int(plan.model["vocab_size"]), max_beam_width=engine.max_beam_width,
        stream_coalescing_ms=sv.stream_coalescing_ms, kv_reuse=r.kv_cache.reuse, kv_retention_json=json.dumps(kv_retention, sort_keys=True),
        logits_dtype=logits_dtype, prompt_table_dtype=prompt_dtype, encoder_input_features_dtype="TYPE_FP16",
        trtllm=MappingProxyType(trtllm), client=load_contract(logits_dtype, prompt_dtype), ensemble_steps=steps,
        world_size=world, tp=1 if reference else engine.tp, pp=1 if reference else engine.pp,
        launch_ranks=tuple(tuple(rank) for rank in script_ranks(world)),
        launch_cwd=launch_dirs[0], launch_engine_link=launch_dirs[1] or "", engine_ref=str(engine_ref or ""),
        engine_version=engine.version or "1.2.x", engine_dir_display=str(engine_ref or engine_dir or ""),
        hf_model_display=(hf_model_path or "").replace("../../", "") or HF_MODEL_DIR,
        notes=tuple(notes),
    )
