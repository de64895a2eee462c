"""Where the model's config.json is, for planning: no network, no weights, no huggingface_hub import."""

from __future__ import annotations

import os
import re
from pathlib import Path

from trtbuild.errors import PlanError
from trtbuild.recipe.schema import ModelSpec


def parse_hf_source(source: str) -> tuple[str, str | None]:
    """'hf://org/name@rev' → ('org/name', 'rev' or None)."""
    body = source[len("hf://"):]
    repo, _, rev = body.partition("@")
    return repo, (rev or None)


def hf_cache_dir() -> Path:
    """The HF hub cache as huggingface_hub resolves it (HF_HUB_CACHE, HF_HOME, XDG, ~/.cache)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def cached_hf_file(repo: str, revision: str | None, filename: str) -> Path | None:
    """A file of an HF repo from the local cache, or None. Resolves branch/tag refs offline."""
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    rev = revision or "main"
    if not re.fullmatch(r"[0-9a-f]{40}", rev):
        ref = root / "refs" / rev
        if not ref.is_file():
            return None
        rev = ref.read_text().strip()
    candidate = root / "snapshots" / rev / filename
    return candidate if candidate.is_file() else None


def resolve_local(base_dir: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (base_dir / p)


def locate_model_config(model: ModelSpec, base_dir: Path) -> Path:
    """Path of the config.json to plan with. Raises PlanError naming what is missing."""
    if model.config:
        p = resolve_local(base_dir, model.config)
        if p.is_dir():
            p = p / "config.json"
        if not p.is_file():
            raise PlanError(f"model.config: {p}: no such file")
        return p
    if model.source.startswith("hf://"):
        repo, rev = parse_hf_source(model.source)
        cached = cached_hf_file(repo, rev, "config.json")
        if cached is None:
            raise PlanError(
                f"model.source: config.json of {model.source} is not in the local Hugging Face cache "
                f"({hf_cache_dir()}); planning never uses the network. Ship a copy beside the recipe and set "
                "model.config, or download it once (`hf download "
                f"{repo} config.json{' --revision ' + rev if rev else ''}`)")
        return cached
    p = resolve_local(base_dir, model.source)
    if not p.exists():
        raise PlanError(f"model.source: {p}: no such directory")
    if p.is_file():
        raise PlanError(f"model.source: {p}: expected a model directory holding config.json")
    cfg = p / "config.json"
    if not cfg.is_file():
        raise PlanError(f"model.source: {p}: no config.json in this directory")
    return cfg
