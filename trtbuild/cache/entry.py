"""What a store entry is: its manifest (every file's digest and size, every directory and symlink), and
the check that an entry's tree is exactly what its manifest lists (stats only; ``Store.verify_entry``
adds the content hashes)."""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

STORE_FORMAT = 2
"""2: directories and the executable bit are recorded (format-1 entries are not served; gc removes them)."""
MANIFEST_NAME = "manifest.json"
DATA_DIR = "data"


class FileRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sha256: str
    """Hex sha256 of the file's content."""
    size: int
    """Size in bytes."""
    executable: bool = False
    """Exported with mode 0755 (else 0644)."""


class EntryManifest(BaseModel):
    """What ``store/<stage>/<key>/manifest.json`` records about one entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: int = STORE_FORMAT
    """Layout version of the store."""
    stage: str
    """Stage name (fetch, checkpoint, engine, repository)."""
    key: str
    """The stage's key (its fingerprint, `trtbuild.fingerprint`)."""
    created: float
    """Unix time the entry was completed."""
    files: dict[str, FileRecord]
    """Every regular file under ``data/`` by POSIX relative path."""
    links: dict[str, str] = {}
    """Relative symlinks under ``data/`` (path → target); they never point outside ``data/``."""
    dirs: tuple[str, ...] = ()
    """Every directory under ``data/`` (empty ones too): anything not listed here is refused."""
    meta: dict[str, Any] = {}
    """Whatever the caller passed to ``put`` (stage params, tool versions); informational."""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


@dataclass(frozen=True, order=True)
class Problem:
    """One finding of ``verify``: an entry whose files no longer match its manifest."""

    stage: str
    key: str
    path: str
    kind: str
    """``manifest`` (unreadable), ``missing``, ``not-a-file``, ``size``, ``digest``, ``link``, ``unexpected``."""
    detail: str = ""

    def format(self) -> str:
        where = f"{self.stage}/{self.key}" + (f": {self.path}" if self.path else "")
        return f"{where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


def tree_problems(root: Path, m: EntryManifest, stage: str = "", key: str = "") -> list[Problem]:
    """How the entry at ``root`` differs from its manifest, by stats only (no content is read): anything
    listed that is missing, of another type, size or link target, and anything present that is not listed."""
    out: list[Problem] = []
    try:
        top = sorted(os.listdir(root))
    except OSError as exc:
        return [Problem(stage, key, "", "missing", exc.strerror or str(exc))]
    out += [Problem(stage, key, name, "unexpected", "not part of an entry") for name in top
            if name not in (DATA_DIR, MANIFEST_NAME)]
    data = root / DATA_DIR
    if not os.path.isdir(data) or os.path.islink(data):
        return [*out, Problem(stage, key, DATA_DIR, "missing", "no data directory")]
    found: dict[str, tuple[str, os.stat_result]] = {}
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = ("link" if stat.S_ISLNK(st.st_mode) else "file" if stat.S_ISREG(st.st_mode)
                    else "dir" if stat.S_ISDIR(st.st_mode) else "special")
            found[Path(p).relative_to(data).as_posix()] = (kind, st)
    expected = {**{d: "dir" for d in m.dirs}, **{f: "file" for f in m.files}, **{k: "link" for k in m.links}}
    for rel, kind in sorted(expected.items()):
        if rel not in found:
            out.append(Problem(stage, key, rel, "missing", "" if kind == "file" else kind))
            continue
        got, st = found[rel]
        if got != kind:
            out.append(Problem(stage, key, rel, "not-a-file" if kind == "file" else "unexpected",
                               f"a {got}, the manifest lists a {kind}"))
        elif kind == "file" and st.st_size != m.files[rel].size:
            out.append(Problem(stage, key, rel, "size", f"expected {m.files[rel].size}, found {st.st_size}"))
        elif kind == "link" and os.readlink(data / rel) != m.links[rel]:
            out.append(Problem(stage, key, rel, "link",
                               f"expected -> {m.links[rel]}, found -> {os.readlink(data / rel)}"))
    out += [Problem(stage, key, rel, "unexpected", f"{kind} not in the manifest")
            for rel, (kind, _) in sorted(found.items()) if rel not in expected]
    return out


def own_copy(path: Path) -> None:
    """Replace ``path`` by a copy of itself with a new inode (same content and mode)."""
    tmp = path.with_name(f".{path.name}.own-{os.getpid()}")
    shutil.copy2(path, tmp)
    os.replace(tmp, path)
