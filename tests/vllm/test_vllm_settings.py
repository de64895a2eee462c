"""The recipe → vLLM settings mapping (pure) and the rendered vLLM repository (no vLLM needed)."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from engine.helpers import plan_with

from trtbuild.backends.vllm.render import CLIENT_MODELS, render_vllm_files, render_vllm_repository
from trtbuild.backends.vllm.settings import CPU_KV_CACHE_CAP, gpu_memory_utilization, vllm_settings
from trtbuild.errors import RepositoryError
from trtbuild.repository.context import load_contract
from trtbuild.repository.lint import lint_repository
from trtbuild.repository.manifest import read_manifest
from trtbuild.resources import templates_dir


def _rules(settings: Any) -> dict[str, str]:
    return {f.rule: f.severity for f in settings.findings}


# ------------------------------------------------------------------------------------ mapping
def test_cpu_plan_maps_the_runtime_settings(vllm_plan: Any) -> None:
    s = vllm_settings(vllm_plan)
    a = s.engine_args
    assert s.cpu and s.decoupled and s.exclude_input_in_output
    assert (a["max_model_len"], a["max_num_seqs"], a["dtype"]) == (320, 8, "float32")
    assert a["enable_prefix_caching"] is True and a["enable_chunked_prefill"] is False
    assert a["max_num_batched_tokens"] == 8192 and a["enforce_eager"] is True
    assert a["generation_config"] == "vllm"  # the checkpoint's sampling defaults stay out, as in the reference
    per_token = vllm_plan.memory["kv_bytes_per_token"]
    assert a["kv_cache_memory_bytes"] == min(8 * 320 * per_token, CPU_KV_CACHE_CAP)
    assert "gpu_memory_utilization" not in a and "tensor_parallel_size" not in a
    # the tiny recipe has a retention rule (vLLM has none) and the default scheduler policy
    assert _rules(s) == {"vllm.kv_retention": "warning", "vllm.scheduler_policy": "info"}
    assert not s.errors


def test_gpu_plan_converts_the_kv_fraction_and_parallelism() -> None:
    plan = plan_with("qwen2.5-7b.yaml", "h100", parallelism={"tp": 2}, runtime={"cuda_graphs": True,
                     "max_queue_size": 100, "kv_cache": {"free_gpu_memory_fraction": 0.5}})
    s = vllm_settings(plan)
    a = s.engine_args
    m = plan.memory
    static = m["weights_bytes_per_rank"] + m["activation_bytes_per_rank"] + m["overhead_bytes_per_rank"]
    expected = (static + 0.5 * (m["gpu_memory_bytes"] - static)) / m["gpu_memory_bytes"]
    assert a["gpu_memory_utilization"] == pytest.approx(expected, abs=1e-4)
    assert 0.5 < a["gpu_memory_utilization"] < 1.0  # vLLM's fraction counts the weights too
    assert (a["tensor_parallel_size"], a["pipeline_parallel_size"]) == (2, 1)
    assert a["enforce_eager"] is False and a["max_num_queued_reqs"] == 100
    assert a["max_model_len"] == 16384 and a["max_num_seqs"] == 64 and a["dtype"] == "bfloat16"
    assert not s.cpu and "kv_cache_memory_bytes" not in a


def test_gpu_memory_utilization_edges() -> None:
    assert gpu_memory_utilization({}, 0.9) == 0.9  # no device size known: the fraction as given
    full = {"gpu_memory_bytes": 100, "weights_bytes_per_rank": 200}
    assert gpu_memory_utilization(full, 0.9) == 0.99   # capped below 1


def test_kv_max_tokens_and_chunking() -> None:
    plan = plan_with("qwen2.5-7b.yaml", "h100", build={"max_num_tokens": 4096},
                     runtime={"kv_cache": {"max_tokens": 10000}})
    s = vllm_settings(plan)
    assert s.engine_args["kv_cache_memory_bytes"] == 10000 * plan.memory["kv_bytes_per_token"]
    # without chunked prefill vLLM needs max_num_batched_tokens >= max_model_len: raised, and said so
    assert s.engine_args["max_num_batched_tokens"] == 16384 and _rules(s)["vllm.max_num_tokens"] == "warning"
    chunked = vllm_settings(plan_with("qwen2.5-7b.yaml", "h100", build={"max_num_tokens": 4096},
                                      runtime={"chunked_context": True}))
    assert chunked.engine_args["max_num_batched_tokens"] == 4096 and chunked.engine_args["enable_chunked_prefill"]
    assert "vllm.max_num_tokens" not in _rules(chunked)


def test_what_vllm_cannot_do_is_reported() -> None:
    plan = plan_with("qwen2.5-7b.yaml", "h100", quantization={"weights": "fp8", "kv_cache": "int8"},
                     build={"max_beam_width": 4}, runtime={"batching": "static"})
    rules = _rules(vllm_settings(plan))
    assert rules["vllm.quantization"] == rules["vllm.kv_quantization"] == "error"
    assert rules["vllm.beam_search"] == rules["vllm.batching"] == "warning"
    with pytest.raises(RepositoryError, match=r"cannot serve this plan[\s\S]*vllm.quantization"):
        render_vllm_files(plan, hf_model_dir=Path("/nonexistent"))
    fp8_kv = vllm_settings(plan_with("qwen2.5-7b.yaml", "h100", quantization={"kv_cache": "fp8"}))
    assert fp8_kv.engine_args["kv_cache_dtype"] == "fp8" and not fp8_kv.errors


# ------------------------------------------------------------------------------------ render
def test_rendered_repository(vllm_repo: Path, vllm_plan: Any) -> None:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    assert lint_repository(vllm_repo) == []
    manifest = read_manifest(vllm_repo)
    assert manifest.backend == "vllm" and manifest.client_models == CLIENT_MODELS and manifest.decoupled
    assert manifest.hf_model is not None and manifest.hf_model.copied
    assert any("vllm.kv_retention" in note for note in manifest.notes)
    configs = {}
    for model in ("ensemble", "tensorrt_llm_bls"):
        cfg = model_config_pb2.ModelConfig()
        text_format.Parse((vllm_repo / "models" / model / "config.pbtxt").read_text(), cfg)
        configs[model] = cfg
    bls, ensemble = configs["tensorrt_llm_bls"], configs["ensemble"]
    contract = load_contract("TYPE_FP32", "TYPE_FP32")
    assert [t.name for t in bls.input] == [t.name for t in contract.inputs] == [t.name for t in ensemble.input]
    assert [t.name for t in bls.output] == [t.name for t in contract.outputs]
    step = ensemble.ensemble_scheduling.step[0]
    assert step.model_name == "tensorrt_llm_bls" and len(ensemble.ensemble_scheduling.step) == 1
    assert dict(step.input_map) == {t.name: t.name for t in contract.inputs}
    assert dict(step.output_map) == {t.name: t.name for t in contract.outputs}
    params = {k: v.string_value for k, v in bls.parameters.items()}
    assert json.loads(params["engine_args"]) == vllm_settings(vllm_plan).engine_args
    assert bls.instance_group[0].count == 1 and bls.model_transaction_policy.decoupled
    for lib in ("model.py", "trtbuild_text.py", "trtbuild_prompt.py"):
        assert (vllm_repo / "models" / "tensorrt_llm_bls" / "1" / lib).is_file()
    assert "LC_ALL=C.UTF-8" in (vllm_repo / "launch.sh").read_text()


def test_served_model_imports_nothing_of_trtbuild() -> None:
    tree = ast.parse((templates_dir() / "vllm" / "model.py").read_text())
    modules = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
              {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in modules if m and m.split(".")[0] == "trtbuild"}
    assert {"trtbuild_prompt", "trtbuild_text", "triton_python_backend_utils"} <= modules


def test_unary_recipe_renders_a_non_decoupled_model(tmp_path: Path, tiny_fp32_model: Path) -> None:
    from repository.helpers import plan_for, write_tiny_recipe

    plan = plan_for(write_tiny_recipe(tmp_path / "recipe", tiny_fp32_model, streaming=False), "cpu")
    manifest = render_vllm_repository(plan, out_dir=tmp_path / "repo", hf_model_dir=tiny_fp32_model,
                                      copy_hf_model=False)
    assert not manifest.decoupled and manifest.hf_model is not None and not manifest.hf_model.copied
    config = (tmp_path / "repo" / "models" / "tensorrt_llm_bls" / "config.pbtxt").read_text()
    assert "decoupled: false" in config and str(tiny_fp32_model.resolve()) in config
    assert not (tmp_path / "repo" / "hf_model").exists()
