"""Fixtures of the vLLM backend tests: the tiny model in fp32, its vLLM and CPU-reference repositories, servers.

Serving tests need vLLM's own environment (`make vllm-venv` → .venv-vllm); without it they are
skipped with that reason. One vLLM server per module (loading vLLM takes 25-125 s on 2 cores); the
fixtures `vllm_server` / `unary_vllm_server` yield a started TritonServer, so other suites (the client
contract) can run against them too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from repository.helpers import plan_for, write_tiny_recipe
from vllm_helpers import require_vllm, serve

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

@pytest.fixture(scope="session")
def vllm_env() -> Path:
    """.venv-vllm; skips without it (fails under TRTBUILD_REQUIRE_VLLM=1, as `make test` runs)."""
    return require_vllm()


@pytest.fixture(scope="session")
def tiny_fp32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny demo model (Llama, random weights) in float32: both backends run it in fp32."""
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("vllm-model") / "tiny-llama", family="llama", dtype="float32")


@pytest.fixture(scope="session")
def vllm_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_fp32_model: Path) -> Path:
    return write_tiny_recipe(tmp_path_factory.mktemp("vllm-recipe"), tiny_fp32_model)


@pytest.fixture(scope="session")
def vllm_plan(vllm_recipe: Path) -> object:
    return plan_for(vllm_recipe, "cpu")


@pytest.fixture(scope="session")
def vllm_repo(tmp_path_factory: pytest.TempPathFactory, vllm_plan: object, tiny_fp32_model: Path) -> Path:
    """The vLLM repository of the tiny model (streaming, i.e. decoupled)."""
    from trtbuild.backends.vllm.render import render_vllm_repository

    out = tmp_path_factory.mktemp("vllm") / "repo"
    render_vllm_repository(vllm_plan, out_dir=out, hf_model_dir=tiny_fp32_model)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="session")
def reference_fp32_repo(tmp_path_factory: pytest.TempPathFactory, vllm_plan: object, tiny_fp32_model: Path) -> Path:
    """The CPU reference repository of the same model and plan (`--gpu cpu`)."""
    from trtbuild.repository import render_repository

    out = tmp_path_factory.mktemp("reference-fp32") / "repo"
    render_repository(vllm_plan, out_dir=out, tokenizer_dir=tiny_fp32_model, hf_model_dir=tiny_fp32_model)  # type: ignore[arg-type]
    return out


@pytest.fixture(scope="module")
def vllm_server(vllm_repo: Path) -> Iterator[object]:
    """A real tritonserver (nvidia-pytriton) running the vLLM repository in .venv-vllm."""
    yield from serve(vllm_repo, python_env=require_vllm())


@pytest.fixture(scope="module")
def unary_vllm_server(tmp_path_factory: pytest.TempPathFactory, tiny_fp32_model: Path) -> Iterator[object]:
    """The same with runtime.streaming: false (not decoupled: plain HTTP/gRPC infer)."""
    env = require_vllm()
    from trtbuild.backends.vllm.render import render_vllm_repository

    tmp = tmp_path_factory.mktemp("vllm-unary")
    plan = plan_for(write_tiny_recipe(tmp / "recipe", tiny_fp32_model, streaming=False), "cpu")
    render_vllm_repository(plan, out_dir=tmp / "repo", hf_model_dir=tiny_fp32_model)
    yield from serve(tmp / "repo", python_env=env)
