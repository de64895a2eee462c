"""Fixtures of the backend tests: the tiny model, and a project writing a recipe with a chosen backend."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

BASE = """\
recipe: 1
name: tiny
model: {{source: model}}
dtype: float32
build: {{max_seq_len: 256, max_input_len: 128, max_batch_size: 4, max_num_tokens: 512{build}}}
runtime: {{kv_cache: {{max_tokens: 2048}}{runtime}}}
"""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model", dtype="float32")


@pytest.fixture
def project(tmp_path: Path, tiny_model: Path) -> Callable[..., Path]:
    """``project(extra_yaml, build=", k: v", runtime=", k: v")``: a recipe (BASE + extra) beside a link to the
    tiny model; its path."""

    def write(extra: str = "", *, build: str = "", runtime: str = "") -> Path:
        link = tmp_path / "model"
        if not link.exists():
            link.symlink_to(tiny_model, target_is_directory=True)
        path = tmp_path / "recipe.yaml"
        path.write_text(BASE.format(build=build, runtime=runtime) + textwrap.dedent(extra), encoding="utf-8")
        return path

    return write


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI runs: a private cache, no fake toolchain (nothing here may need TensorRT-LLM)."""
    return {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
            "PATH": os.environ.get("PATH", "")}
