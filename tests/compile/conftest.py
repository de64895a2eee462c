"""Fixtures for end-to-end compile tests: the tiny model, a recipe beside it, an isolated cache."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

RECIPE = """\
recipe: 1
name: tiny
model: {source: model}
quantization:
  weights: fp8
  kv_cache: fp8
  calibration: {samples: 8, max_seq_len: 64, batch_size: 4}
build: {max_seq_len: 256, max_input_len: 128, max_batch_size: 4, max_num_tokens: 512}
"""


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def project(tmp_path: Path, tiny_model: Path) -> Path:
    """A directory holding recipe.yaml and (a symlink to) the tiny model."""
    (tmp_path / "model").symlink_to(tiny_model, target_is_directory=True)
    (tmp_path / "recipe.yaml").write_text(textwrap.dedent(RECIPE))
    return tmp_path


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for CLI runs: a private cache and the fake toolchain allowed."""
    return {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache"), "TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1",
            "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1", "PATH": os.environ.get("PATH", "")}
