"""Helpers for the repository tests: the tiny-model recipe, rendering, the shared text library."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from trtbuild.repository.render import TEMPLATES_DIR

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden"
FAKE_ENGINE_ROOT = Path("/opt/engines")
"""Engine directories in golden files: fixed fake paths (nothing is read from them)."""

TINY_RECIPE = """\
recipe: 1
name: tiny-reference
model:
  source: model
build:
  max_batch_size: 8
  max_input_len: 256
  max_seq_len: 320
runtime:
  streaming: {streaming}
  kv_cache:
    retention:
      rules:
        - tokens: system_prompt
          priority: 90
          duration: 10m
serving:
  instances: {{preprocessing: 1, postprocessing: 1, bls: 1}}
"""


def write_tiny_recipe(directory: Path, model_dir: Path, *, streaming: bool = True) -> Path:
    """A recipe for the tiny model in ``directory`` (its model.source points at ``model_dir``)."""
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / "model"
    if not link.exists():
        link.symlink_to(model_dir.resolve(), target_is_directory=True)
    path = directory / "recipe.yaml"
    path.write_text(TINY_RECIPE.format(streaming="true" if streaming else "false"), encoding="utf-8")
    return path


def plan_for(recipe: Path, gpu: str) -> Any:
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe

    return make_plan(load_recipe(recipe), gpu)


def text_lib() -> tuple[Any, Any]:
    """The model-side libraries (repo_templates/lib) as importable modules: (trtbuild_text, trtbuild_prompt)."""
    lib = str(TEMPLATES_DIR / "lib")
    if lib not in sys.path:
        sys.path.insert(0, lib)
    return importlib.import_module("trtbuild_text"), importlib.import_module("trtbuild_prompt")
