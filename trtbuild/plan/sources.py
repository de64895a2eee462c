"""Where the model's config.json is, for planning: no network, no weights, no huggingface_hub import."""

from __future__ import annotations

import os
import re
from pathlib import Path

from trtbuild.errors import PlanError
from trtbuild.fsutil import read_regular_file
from trtbuild.recipe.schema import ModelSpec

_COMMIT = re.compile(r"[0-9a-f]{40}")
_PR_REF = re.compile(r"refs/pr/[1-9][0-9]{0,8}")
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def hf_revision_problem(rev: str) -> str | None:
    """Why ``rev`` is not a Hugging Face Hub revision, or None when it is one: a full commit sha, the Hub's
    ``refs/pr/N``, or a branch or tag name by git's ref-name rules (``git check-ref-format``): no ``..``,
    no component starting with ``.`` or ending ``.lock``, no space, control or ``~^:?*[\\`` character,
    no ``@{``, not starting with ``-`` or ``/``, not ending with ``/`` or ``.``, no ``//``. A revision
    names a commit; it is never a path (``../../x`` would leave the Hub cache)."""
    if _COMMIT.fullmatch(rev) or _PR_REF.fullmatch(rev):
        return None
    if not rev or len(rev) > 255:
        return "a revision is 1 to 255 characters"
    if _REF_FORBIDDEN.search(rev):
        return "a revision has no spaces, control characters or any of ~ ^ : ? * [ \\"
    if ".." in rev or "@{" in rev or "//" in rev or rev == "@":
        return "a revision contains no '..', '@{' or '//'"
    if rev.startswith(("-", "/")) or rev.endswith(("/", ".")):
        return "a revision does not start with '-' or '/' and does not end with '/' or '.'"
    if any(part.startswith(".") or part.endswith(".lock") for part in rev.split("/")):
        return "no part of a revision starts with '.' or ends with '.lock'"
    return None


def parse_hf_source(source: str) -> tuple[str, str | None]:
    """'hf://org/name@rev' → ('org/name', 'rev' or None). A revision that is not a commit sha, a branch
    or a tag (:func:`hf_revision_problem`) is a PlanError: it never reaches a path."""
    body = source[len("hf://"):]
    repo, _, rev = body.partition("@")
    if rev and (problem := hf_revision_problem(rev)) is not None:
        raise PlanError(f"model.source: invalid revision {rev!r} in {source!r}: {problem}")
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
    if hf_revision_problem(rev) is not None:
        return None
    if not _COMMIT.fullmatch(rev):
        ref = root / "refs" / rev
        if not ref.is_file():
            return None
        try:
            rev = read_regular_file(ref, 4096).decode("ascii", "replace").strip()
        except OSError:
            return None
        if not _COMMIT.fullmatch(rev):  # a ref file holds a commit sha, nothing else
            return None
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
            raise PlanError(f"model.config: {p}: " + ("not a regular file" if os.path.lexists(p) else "no such file"))
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
        if os.path.lexists(cfg):
            raise PlanError(f"model.source: {cfg}: not a regular file")
        raise PlanError(f"model.source: {p}: no config.json in this directory")
    return cfg
