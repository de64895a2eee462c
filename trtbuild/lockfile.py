"""Lockfiles: `trtbuild lock FILE` pins what a recipe leaves open, `compile` and `status` honour it.

`<recipe>.lock.json` beside the recipe records the resolved model revision and every model file's
sha256, the calibration data digest, and the toolchain (container image digests, TensorRT-LLM
versions). With a lock, `compile` builds exactly that revision and refuses files whose digests
differ; `status` can compute every stage key of an `hf://` model without downloading it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from trtbuild.canon import Frozen
from trtbuild.errors import StageError, UsageError
from trtbuild.fsutil import write_atomic

LOCK_FORMAT = 1


class LockedModel(Frozen):
    source: str
    """The recipe's model.source when the lock was written."""
    revision: str | None = None
    """Commit the source resolved to (hf:// sources)."""
    files: dict[str, str] = Field(default_factory=dict)
    """Relative path → sha256 of every model file the build uses."""


class LockedCalibration(Frozen):
    source: str
    sha256: str


class Lock(Frozen):
    format: int = LOCK_FORMAT
    recipe: dict[str, str]
    """name and sha256 of the recipe text the lock was made from."""
    model: LockedModel
    calibration: LockedCalibration | None = None
    toolchain: dict[str, str] = Field(default_factory=dict)
    """tensorrt_llm / tensorrt versions seen, executor, image."""
    images: dict[str, str] = Field(default_factory=dict)
    """Container image name:tag → sha256 digest (read by the container executor)."""


def default_lock_path(recipe_path: Path) -> Path:
    p = Path(recipe_path)
    return p.with_name(p.stem + ".lock.json")


def read_lock(path: Path) -> Lock | None:
    """The lock at ``path``, None when there is none; UsageError when it is unreadable."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        return Lock.model_validate(json.loads(p.read_text()))
    except (ValueError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise UsageError(f"{p}: not a valid trtbuild lockfile ({first}); regenerate it with `trtbuild lock`") from None


def write_lock(path: Path, lock: Lock) -> None:
    write_atomic(Path(path), json.dumps(lock.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")


def pinned_source(source: str, lock: Lock | None) -> str:
    """hf://org/name@branch → hf://org/name@<locked commit> when the lock is for this source."""
    if lock is None or not source.startswith("hf://") or lock.model.source != source or not lock.model.revision:
        return source
    repo = source[len("hf://"):].partition("@")[0]
    return f"hf://{repo}@{lock.model.revision}"


def check_files(lock: Lock | None, files: dict[str, str], where: str) -> None:
    """Refuse model files that differ from the lock (a moved branch, a re-uploaded file, an edit)."""
    if lock is None or not lock.model.files:
        return
    changed = sorted(k for k in set(lock.model.files) | set(files) if lock.model.files.get(k) != files.get(k))
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise StageError("fetch", f"{where}: model files differ from the lockfile: {shown}; run `trtbuild lock` "
                                  "again if the change is intended")


def lock_json_for(loaded: Any, revision: str | None, files: dict[str, str], calibration: tuple[str, str] | None,
                  toolchain: dict[str, str], images: dict[str, str]) -> Lock:
    return Lock(recipe={"name": loaded.recipe.name, "sha256": loaded.text_sha256},
                model=LockedModel(source=loaded.recipe.model.source, revision=revision, files=files),
                calibration=LockedCalibration(source=calibration[0], sha256=calibration[1]) if calibration else None,
                toolchain=toolchain, images=images)
