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
FAKE_TRTLLM = HERE / "fake_trtllm"

from repository.helpers import plan_for, write_tiny_recipe  # noqa: E402
from vllm_helpers import serve  # noqa: E402

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


def double_env(root: Path) -> Path:
    """A virtual environment for the Python stub: this one's packages plus the fake `tensorrt_llm`.

    Triton's stub ignores PYTHONPATH and imports from the first `python` on PATH (trtbuild.repository.
    python_env), so the double goes in through a .pth file of a small environment of its own."""
    import subprocess
    import sysconfig

    env = root / "double-env"
    if not (env / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    here = sysconfig.get_path("purelib")
    (site / "trtbuild_test_double.pth").write_text(f"import site; site.addsitedir({here!r})\n{FAKE_TRTLLM}\n")
    return env


def serve_with_double(repo: Path, env: Path) -> Iterator[object]:
    """tritonserver (nvidia-pytriton) on ``repo`` with the fake `tensorrt_llm` importable by the Python stub."""
    from trtbuild.repository.server import pytriton_install

    yield from serve(repo, install=pytriton_install(), python_env=env)


@pytest.fixture(scope="session")
def llmapi_double_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return double_env(tmp_path_factory.mktemp("llmapi-double"))


@pytest.fixture(scope="module")
def llmapi_server(llmapi_repo: Path, llmapi_double_env: Path) -> Iterator[object]:
    yield from serve_with_double(llmapi_repo, llmapi_double_env)
