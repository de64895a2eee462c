"""Fixtures of the LLM-API backend tests: the tiny fp32 model, its LLM-API repository (planned for a GPU
target), and a real tritonserver serving it with the TEST DOUBLE of `tensorrt_llm` (fake_trtllm/) on the
Python stub's path. The real TensorRT-LLM path is tests/llmapi/test_llmapi_gpu.py (marked `gpu`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "vllm"))      # vllm_helpers: the client of the shared contract

from llmapi_helpers import double_env, serve_with_double  # noqa: E402
from repository.helpers import plan_for, write_tiny_recipe  # noqa: E402

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
GPU = "h100"


@pytest.fixture(scope="session")
def llmapi_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo model (Llama, random weights) in float32."""
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("llmapi-model") / "tiny-llama", family="llama", dtype="float32")


@pytest.fixture(scope="session")
def llmapi_plan(tmp_path_factory: pytest.TempPathFactory, llmapi_model: Path) -> object:
    return plan_for(write_tiny_recipe(tmp_path_factory.mktemp("llmapi-recipe"), llmapi_model), GPU)


@pytest.fixture(scope="session")
def llmapi_repo(tmp_path_factory: pytest.TempPathFactory, llmapi_plan: object, llmapi_model: Path) -> Path:
    from trtbuild.backends.llmapi.render import render_llmapi_repository

    out = tmp_path_factory.mktemp("llmapi") / "repo"
    render_llmapi_repository(llmapi_plan, out_dir=out, hf_model_dir=llmapi_model)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="session")
def llmapi_double_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return double_env(tmp_path_factory.mktemp("llmapi-double"))


@pytest.fixture(scope="module")
def llmapi_server(llmapi_repo: Path, llmapi_double_env: Path) -> Iterator[object]:
    yield from serve_with_double(llmapi_repo, llmapi_double_env)
