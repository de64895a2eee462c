"""Helpers of the first-hour tests: the recipes a user sees (recipes/, the README's), written to files."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"
README = ROOT / "README.md"


def shipped_recipes() -> list[Path]:
    return sorted(RECIPES.glob("*.yaml")) + [RECIPES / "demo" / "recipe.yaml"]


def readme_recipes() -> list[str]:
    """Every ```yaml block of the README that is a recipe (starts with `recipe: 1`)."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if b.lstrip().startswith("recipe: 1")]


def write_like_readme(tmp: Path, text: str, name: str = "recipe.yaml") -> Path:
    """A README recipe as a user would save it next to a copy of recipes/models/ (its config paths)."""
    tmp.mkdir(parents=True, exist_ok=True)
    models = tmp / "models"
    if not models.exists():
        models.symlink_to(RECIPES / "models")
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def write_data(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def with_absolute_config(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """``data`` whose model.config / local model.source no longer depend on the recipe's directory."""
    out = dict(data)
    model = dict(out["model"])
    if model.get("config") and not Path(model["config"]).is_absolute():
        model["config"] = str((base / model["config"]).resolve())
    if not str(model["source"]).startswith("hf://") and not Path(model["source"]).is_absolute():
        model["source"] = str((base / model["source"]).resolve())
    out["model"] = model
    return out
