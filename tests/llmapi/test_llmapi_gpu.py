"""The LLM-API repository served with the REAL TensorRT-LLM (PyTorch backend) on an NVIDIA GPU.

Runs only where `import tensorrt_llm` gives the real package (not the test double in fake_trtllm/), a GPU
is visible and a `tritonserver` with the Python backend is found ($TRITONSERVER, PATH, or NVIDIA's
container path); skipped with the reason everywhere else. `pytest -m gpu tests/llmapi` selects it. It runs
the same client-contract checks as the double (llmapi_checks.py), on the tiny fp32 model planned for the
GPU the machine has.
"""

from __future__ import annotations

import importlib.util
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmapi_checks import CHECKS
from repository.helpers import plan_for, write_tiny_recipe
from vllm_helpers import serve

pytestmark = pytest.mark.gpu


def _real_trtllm() -> str:
    spec = importlib.util.find_spec("tensorrt_llm")
    if spec is None or spec.origin is None or "fake_trtllm" in spec.origin:
        pytest.skip("needs TensorRT-LLM (>= 1.0, written against 1.2): `import tensorrt_llm` fails here")
    try:
        names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                               text=True, timeout=30, check=True).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no NVIDIA GPU visible (nvidia-smi failed)")
    from trtbuild.catalog.gpus import find_gpu

    gpu = find_gpu(names[0]) if names else None
    if gpu is None:
        pytest.skip(f"GPU {names[:1]} is not in trtbuild's catalog")
    return gpu.key


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory, llmapi_model: Path) -> Iterator[Any]:
    gpu = _real_trtllm()
    from trtbuild.backends.llmapi.render import render_llmapi_repository
    from trtbuild.errors import RepositoryError

    tmp = tmp_path_factory.mktemp("llmapi-gpu")
    plan = plan_for(write_tiny_recipe(tmp / "recipe", llmapi_model), gpu)
    render_llmapi_repository(plan, out_dir=tmp / "repo", hf_model_dir=llmapi_model)
    try:
        yield from serve(tmp / "repo")
    except RepositoryError as exc:
        if "tritonserver not found" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_client_contract_with_real_tensorrt_llm(real_server: Any, check: str) -> None:
    CHECKS[check](real_server)
