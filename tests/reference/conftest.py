"""Fixtures of the reference tests: the tiny model's reference repository served by a real tritonserver.

The recipe allows beam width 2, gathers context logits and runs in float32 (batched rows then decode
exactly like single rows); prompts are capped at 64 tokens and sequences at 512 so the executor's
length rules can be exercised directly on `tensorrt_llm`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trtbuild.repository.render import TEMPLATES_DIR

from .helpers import SEMANTICS

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RECIPE = """\
recipe: 1
name: tiny-reference-semantics
dtype: float32
model:
  source: model
build:
  max_batch_size: 8
  max_input_len: 64
  max_seq_len: 512
  max_beam_width: 2
  gather_context_logits: true
runtime:
  streaming: true
serving:
  instances: {preprocessing: 1, postprocessing: 1, bls: 1}
"""


@pytest.fixture(scope="session")
def semantics() -> dict[str, Any]:
    return json.loads(SEMANTICS.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def ref_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("ref-model") / "tiny-llama", family="llama")


@pytest.fixture(scope="session")
def ref_repo(tmp_path_factory: pytest.TempPathFactory, ref_model: Path) -> Path:
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.repository import render_repository

    tmp = tmp_path_factory.mktemp("ref-repo")
    (tmp / "model").symlink_to(ref_model.resolve(), target_is_directory=True)
    (tmp / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    out = tmp / "repo"
    render_repository(make_plan(load_recipe(tmp / "recipe.yaml"), "cpu"), out_dir=out, tokenizer_dir=ref_model,
                      hf_model_dir=ref_model)
    return out


@pytest.fixture(scope="session")
def ref_server(ref_repo: Path) -> Iterator[Any]:
    """One real tritonserver (nvidia-pytriton's) on the reference repository, for the session."""
    from trtbuild.repository.server import TritonServer

    server = TritonServer(ref_repo, env={"TRTBUILD_REFERENCE_THREADS": "1"})
    try:
        server.start(timeout=240)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def reference_modules() -> Any:
    """repo_templates/tensorrt_llm's modules, importable without Triton."""
    import importlib
    import sys

    path = str(TEMPLATES_DIR / "tensorrt_llm")
    if path not in sys.path:
        sys.path.insert(0, path)

    class Modules:
        requests = importlib.import_module("reference_requests")
        generate = importlib.import_module("reference_generate")

    return Modules
