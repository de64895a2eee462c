"""The loaded-model check against a real tritonserver (nvidia-pytriton's) serving the CPU reference
repository of the tiny model: every model READY; asked to check it as an engine repository, the check
sees from the loaded config that `tensorrt_llm` is not served by the tensorrtllm backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trtbuild.gpu_check.steps import check_loaded, loaded_parameters, write_recipe


@pytest.fixture(scope="module")
def reference_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from trtbuild.demo.tiny_model import make_tiny_model
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.repository import render_repository
    from trtbuild.repository.server import TritonServer

    tmp = tmp_path_factory.mktemp("gpu-check-served")
    model = make_tiny_model(tmp / "tiny-llama", family="llama")
    recipe = write_recipe(tmp / "recipe", model, streaming=True, instances=1)
    repo = tmp / "repo"
    render_repository(make_plan(load_recipe(recipe), "cpu"), out_dir=repo, tokenizer_dir=model, hf_model_dir=model)
    with TritonServer(repo, env={"TRTBUILD_REFERENCE_THREADS": "1"}) as server:  # stopped on leaving
        yield server


def test_models_ready_and_loaded_config_read(reference_server: Any) -> None:
    models = sorted(p.parent.name for p in (reference_server.repo / "models").glob("*/config.pbtxt"))
    assert {"ensemble", "tensorrt_llm", "tensorrt_llm_bls"} <= set(models)
    status, detail, data = check_loaded(reference_server.http_url, models, engine=False)
    assert (status, data["models"]) == ("passed", models), detail
    status, detail, data = check_loaded(reference_server.http_url, models, engine=True)
    assert status == "failed" and data["backend"] == "python"
    assert "tensorrt_llm is served by backend 'python', not tensorrtllm" in detail


def test_a_model_that_is_not_there_is_not_ready(reference_server: Any) -> None:
    status, detail, _ = check_loaded(reference_server.http_url, ["ensemble", "preprocessing_v2"], engine=False)
    assert status == "failed" and "model preprocessing_v2 not ready" in detail and "ensemble" not in detail


def test_loaded_parameters_of_the_real_server(reference_server: Any) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://{reference_server.http_url}/v2/models/tensorrt_llm/config") as r:
        config = json.loads(r.read())
    params = loaded_parameters(config)
    assert params["max_beam_width"] == "1" and "tokenizer_dir" in params
