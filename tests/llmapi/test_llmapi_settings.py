"""The recipe → LLM(...) mapping (pure), the rendered repository and its lint rules."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from repository.helpers import plan_for

from trtbuild.backends.llmapi.settings import llmapi_settings
from trtbuild.contracts.llmapi import check_llm_kwargs
from trtbuild.errors import RepositoryError
from trtbuild.repository.lint import lint_repository

RECIPE = """\
recipe: 1
name: llmapi-map
model: {{source: model}}
quantization: {{weights: {weights}, kv_cache: {kv}}}
parallelism: {{tp: {tp}, pp: 1}}
build: {{max_batch_size: 16, max_input_len: 1024, max_seq_len: 2048, max_num_tokens: {tokens}}}
runtime:
  scheduler_policy: {policy}
  chunked_context: {chunked}
  cuda_graphs: {graphs}
  kv_cache: {{reuse: true, free_gpu_memory_fraction: 0.7, max_tokens: 50000, host_offload: 4GiB}}
"""


def _plan(tmp_path: Path, model: Path, gpu: str = "h100", **over: object) -> object:
    values = {"weights": "none", "kv": "none", "tp": 1, "tokens": 4096, "policy": "max_utilization",
              "chunked": "false", "graphs": "false", **over}
    (tmp_path / "model").symlink_to(model, target_is_directory=True)
    (tmp_path / "recipe.yaml").write_text(RECIPE.format(**values))
    return plan_for(tmp_path / "recipe.yaml", gpu)


def test_mapping_emits_only_what_llm_accepts(tmp_path, llmapi_model):
    s = llmapi_settings(_plan(tmp_path, llmapi_model, kv="fp8", tp=2, chunked="true", graphs="true"))
    assert not s.errors
    a = s.llm_args
    assert a["backend"] == "pytorch" and a["tensor_parallel_size"] == 2 and a["max_batch_size"] == 16
    assert a["max_seq_len"] == 2048 and a["max_num_tokens"] == 4096 and a["enable_chunked_prefill"] is True
    assert a["kv_cache_config"] == {"enable_block_reuse": True, "free_gpu_memory_fraction": 0.7, "tokens_per_block": 32,
                                    "max_tokens": 50000, "host_cache_size": 4 << 30, "dtype": "fp8"}
    assert a["scheduler_config"] == {"capacity_scheduler_policy": "MAX_UTILIZATION",
                                     "context_chunking_policy": "FIRST_COME_FIRST_SERVED"}
    assert "cuda_graph_config" not in a                    # cuda_graphs: true keeps the LLM API's default
    assert check_llm_kwargs({"model": "m", "tokenizer": "t", **a}) == []


def test_no_chunked_prefill_limits_prompts_to_max_num_tokens(tmp_path, llmapi_model):
    s = llmapi_settings(_plan(tmp_path, llmapi_model, tokens=512))
    assert s.max_input_len == 512 and s.llm_args["max_input_len"] == 512
    assert [f.rule for f in s.findings] == ["llmapi.max_num_tokens"]
    assert s.llm_args["cuda_graph_config"] is None
    assert check_llm_kwargs({"model": "m", **s.llm_args}) == []


@pytest.mark.parametrize(("over", "rule"), [
    ({"weights": "fp8"}, "llmapi.quantization"), ({"weights": "int4_awq"}, "llmapi.quantization"),
    ({"weights": "int8_sq"}, "llmapi.quantization_format"), ({"kv": "int8"}, "llmapi.kv_quantization"),
    ({"gpu": "cpu"}, "llmapi.target"),
])
def test_what_the_llm_api_cannot_load_is_an_error_with_a_rule(tmp_path, llmapi_model, over, rule):
    gpu = str(over.pop("gpu", "h100"))
    plan = _plan(tmp_path, llmapi_model, gpu, **over)
    s = llmapi_settings(plan)
    assert rule in {f.rule for f in s.errors}
    from trtbuild.backends.llmapi.render import render_llmapi_files

    with pytest.raises(RepositoryError, match=rule.replace(".", r"\.")):
        render_llmapi_files(plan, hf_model_dir=llmapi_model)  # type: ignore[arg-type]


def test_rendered_repository_lints_clean_and_model_yaml_is_checked(llmapi_repo):
    assert [f for f in lint_repository(llmapi_repo) if f.severity == "error"] == []
    data = yaml.safe_load((llmapi_repo / "models/tensorrt_llm_bls/1/model.yaml").read_text())
    assert data["model"] == "../../hf_model" and data["tokenizer"] == "../../tokenizer"
    assert data["triton_config"] == {"max_batch_size": 8, "decoupled": True}
    manifest = (llmapi_repo / "trtbuild-repository.json").read_text()
    assert '"backend": "llmapi"' in manifest


@pytest.mark.parametrize(("edit", "rule"), [
    (lambda d: d.update(max_batchsize=8), "llmapi.llm_args"),
    (lambda d: d["kv_cache_config"].update(free_gpu_memory_fraction=2), "llmapi.llm_args"),
    (lambda d: d["scheduler_config"].update(capacity_scheduler_policy="guaranteed_no_evict"), "llmapi.llm_args"),
    (lambda d: d["triton_config"].update(decoupled=False), "llmapi.triton_config"),
    (lambda d: d["triton_config"].update(instance_count=2), "llmapi.triton_config"),
    (lambda d: d.update(model="../../weights"), "llmapi.paths"),
    (lambda d: d.pop("tokenizer"), "llmapi.model_yaml"),
    (lambda d: d.update(max_num_tokens=100), "llmapi.max_num_tokens"),
])
def test_lint_catches_an_edited_model_yaml(tmp_path, llmapi_repo, edit, rule):
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(llmapi_repo, repo, symlinks=True)
    path = repo / "models/tensorrt_llm_bls/1/model.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))
    assert rule in {f.rule for f in lint_repository(repo)}
