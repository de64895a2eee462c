"""Shared fixtures for the checkpoint-stage tests: one tiny model per session, cached exports."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .helpers import make_inputs, needs_checkpoint_deps

os.environ["HF_HUB_OFFLINE"] = "1"  # no network anywhere in these tests
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Llama with Llama-3 RoPE (theta 500000, llama3 scaling), fp16."""
    needs_checkpoint_deps()
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-llama", family="llama", llama3_rope=True)


@pytest.fixture(scope="session")
def tiny_qwen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_checkpoint_deps()
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("models") / "tiny-qwen2", family="qwen2")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """tiny(family, **make_tiny_model options) → model directory, built once per distinct request."""
    needs_checkpoint_deps()
    from trtbuild.demo.tiny_model import make_tiny_model

    cache: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("family-models")

    def build(family: str, **options: Any) -> Path:
        key = json.dumps({"family": family, **options}, sort_keys=True, default=str)
        if key not in cache:
            cache[key] = make_tiny_model(root / f"tiny-{family}-{len(cache)}", family=family, **options)
        return cache[key]

    return build


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Path, Any]]:
    """export(model_dir, converter="auto", **overrides) → (out_dir, manifest); each distinct request runs
    once per session."""
    from trtbuild.progress import Progress
    from trtbuild.stages.checkpoint import run_checkpoint

    cache: dict[str, tuple[Path, Any]] = {}
    root = tmp_path_factory.mktemp("exports")

    def export(model_dir: Path, converter: str = "auto", **overrides: Any) -> tuple[Path, Any]:
        key = json.dumps({"model": str(model_dir), "converter": converter, **overrides}, sort_keys=True, default=str)
        if key not in cache:
            out = root / f"ckpt{len(cache)}"
            cache[key] = (out, run_checkpoint(make_inputs(model_dir, **overrides), out, progress=Progress.silent(),
                                              converter=converter))
        return cache[key]

    return export
