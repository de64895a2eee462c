"""The local content-addressed store of stage artifacts, keyed by (stage, plan-time key).

Layout under the cache directory (``resolve_cache_dir``: ``--cache-dir``, ``TRTBUILD_CACHE_DIR``, or
``platformdirs.user_cache_dir("trtbuild")``)::

    store/<stage>/<key>/data/...         the artifact, as the stage wrote it
    store/<stage>/<key>/manifest.json    every file's sha256 and size; written before the rename
    store/<stage>/.<key>.staging-*       a put in progress (or killed); never an entry
    locks/<stage>-<key>.lock             per-key lock: one build of a key at a time
    stat-cache.sqlite3                   digests of unchanged files (``digests.StatCache``)

An entry is built in a staging directory, hashed, its manifest written, then renamed into place, so a
crash never leaves a directory that looks cached. ``get`` trusts an entry whose manifest is valid and whose
files exist with the recorded sizes (cheap: stats only); ``verify`` re-hashes everything. The manifest's
mtime is the entry's last use (``get`` touches it) and drives ``gc``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock
from pydantic import BaseModel, ConfigDict, ValidationError

from trtbuild.cache.digests import Hasher, StatCache, scan_tree
from trtbuild.errors import StageError, UsageError
from trtbuild.fsutil import sha256_file, staged_dir, write_atomic

if TYPE_CHECKING:
    from trtbuild.cache.gc import GcReport

STORE_FORMAT = 1
MANIFEST_NAME = "manifest.json"
DATA_DIR = "data"
ENV_CACHE_DIR = "TRTBUILD_CACHE_DIR"

Builder = Callable[[Path], object]
"""Writes a stage artifact into the (empty, existing) directory it is given."""

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


def resolve_cache_dir(explicit: str | os.PathLike[str] | None = None,
                      env: Mapping[str, str] | None = None) -> Path:
    """``explicit`` (``--cache-dir``), else ``$TRTBUILD_CACHE_DIR``, else the user cache dir."""
    env = os.environ if env is None else env
    if explicit:
        return Path(explicit).expanduser().absolute()
    if env.get(ENV_CACHE_DIR):
        return Path(env[ENV_CACHE_DIR]).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("trtbuild")).absolute()


class FileRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    sha256: str
    """Hex sha256 of the file's content."""
    size: int
    """Size in bytes."""


class EntryManifest(BaseModel):
    """What ``store/<stage>/<key>/manifest.json`` records about one entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: int = STORE_FORMAT
    """Layout version of the store."""
    stage: str
    """Stage name (fetch, checkpoint, engine, repository)."""
    key: str
    """The stage's plan-time key."""
    created: float
    """Unix time the entry was completed."""
    files: dict[str, FileRecord]
    """Every regular file under ``data/`` by POSIX relative path."""
    links: dict[str, str] = {}
    """Relative symlinks under ``data/`` (path → target); they never point outside ``data/``."""
    meta: dict[str, Any] = {}
    """Whatever the caller passed to ``put`` (stage params, tool versions); informational."""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files.values())


@dataclass(frozen=True)
class CacheEntry:
    """A complete entry of the store."""

    stage: str
    key: str
    root: Path
    """``store/<stage>/<key>``."""
    manifest: EntryManifest
    last_used: float
    """Unix time of the last ``get``/``put`` (the manifest's mtime)."""

    @property
    def path(self) -> Path:
        """The artifact directory (``root/data``)."""
        return self.root / DATA_DIR

    @property
    def size(self) -> int:
        return self.manifest.total_bytes

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "key": self.key, "path": str(self.path), "bytes": self.size,
                "files": len(self.manifest.files), "created": self.manifest.created,
                "last_used": self.last_used, "meta": self.manifest.meta}


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


def check_name(stage: str, key: str) -> None:
    if not _NAME.match(stage):
        raise UsageError(f"invalid stage name {stage!r} (lowercase letters, digits, '-', '_')")
    if not _KEY.match(key):
        raise UsageError(f"invalid cache key {key!r} (letters, digits, '.', '-', '_'; at most 128)")


class Store:
    """Stage artifacts by (stage, key) under ``cache_dir``. Safe for concurrent processes."""

    def __init__(self, cache_dir: Path, *, hasher: Hasher = sha256_file, lock_timeout: float | None = None,
                 clock: Callable[[], float] = time.time):
        self.cache_dir = Path(cache_dir)
        self._hasher = hasher
        self._lock_timeout = -1.0 if lock_timeout is None else lock_timeout
        self._clock = clock

    @classmethod
    def open(cls, cache_dir: str | os.PathLike[str] | None = None, **kw: Any) -> Store:
        """The store at ``resolve_cache_dir(cache_dir)``."""
        return cls(resolve_cache_dir(cache_dir), **kw)

    @property
    def store_dir(self) -> Path:
        return self.cache_dir / "store"

    def stat_cache(self, hasher: Hasher = sha256_file) -> StatCache:
        """The stat cache that lives beside the store (for hashing model files, publishing)."""
        return StatCache.in_dir(self.cache_dir, hasher=hasher)

    def entry_dir(self, stage: str, key: str) -> Path:
        check_name(stage, key)
        return self.store_dir / stage / key

    def lock(self, stage: str, key: str, timeout: float | None = None) -> filelock.BaseFileLock:
        """The per-key lock (held by ``put`` while building; ``gc`` skips locked keys)."""
        check_name(stage, key)
        path = self.cache_dir / "locks" / f"{stage}-{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(path, timeout=self._lock_timeout if timeout is None else timeout)

    # -- reading ------------------------------------------------------------------------------
    def _load(self, root: Path, stage: str, key: str) -> EntryManifest | None:
        try:
            raw = (root / MANIFEST_NAME).read_bytes()
            m = EntryManifest.model_validate_json(raw)
        except (OSError, ValidationError, ValueError):
            return None
        if m.format != STORE_FORMAT or m.stage != stage or m.key != key:
            return None
        return m

    def _quick_ok(self, root: Path, m: EntryManifest) -> bool:
        data = root / DATA_DIR
        if any(not os.path.islink(data / rel) for rel in m.links):
            return False
        for rel, rec in m.files.items():
            try:
                st = os.lstat(data / rel)
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode) or st.st_size != rec.size:
                return False
        return data.is_dir()

    def entry(self, stage: str, key: str, *, touch: bool = True) -> CacheEntry | None:
        """The complete entry for (stage, key), or None. Checks presence and sizes, not content."""
        root = self.entry_dir(stage, key)
        m = self._load(root, stage, key)
        if m is None or not self._quick_ok(root, m):
            return None
        mpath = root / MANIFEST_NAME
        if touch:
            now = self._clock()
            with contextlib.suppress(OSError):
                os.utime(mpath, (now, now))
        try:
            last_used = mpath.stat().st_mtime
        except OSError:
            return None
        return CacheEntry(stage, key, root, m, last_used)

    def get(self, stage: str, key: str) -> Path | None:
        """The artifact directory of (stage, key) if it is cached and complete, else None."""
        e = self.entry(stage, key)
        return e.path if e else None

    def _entry_roots(self) -> Iterator[tuple[str, str, Path]]:
        if not self.store_dir.is_dir():
            return
        for sdir in sorted(self.store_dir.iterdir()):
            if not sdir.is_dir() or not _NAME.match(sdir.name):
                continue
            for kdir in sorted(sdir.iterdir()):
                if kdir.is_dir() and not kdir.name.startswith(".") and _KEY.match(kdir.name):
                    yield sdir.name, kdir.name, kdir

    def entries(self) -> list[CacheEntry]:
        """Every complete entry (not touched), sorted by stage then key."""
        out = []
        for stage, key, _ in self._entry_roots():
            e = self.entry(stage, key, touch=False)
            if e is not None:
                out.append(e)
        return out

    def leftovers(self) -> list[Path]:
        """Staging directories of unfinished puts and entry directories without a valid manifest."""
        out: list[Path] = []
        if not self.store_dir.is_dir():
            return out
        for sdir in sorted(p for p in self.store_dir.iterdir() if p.is_dir()):
            for p in sorted(sdir.iterdir()):
                if p.name.startswith(".") and (".staging-" in p.name or ".old-" in p.name):
                    out.append(p)
        for stage, key, root in self._entry_roots():
            if self._load(root, stage, key) is None:
                out.append(root)
        return out

    # -- writing ------------------------------------------------------------------------------
    def put(self, stage: str, key: str, source: Path | Builder, *,
            meta: Mapping[str, Any] | None = None) -> Path:
        """Store an artifact and return its directory; if (stage, key) is cached, return that.

        ``source`` is a directory to copy, or a builder called with an empty directory to write
        into (no copy; what compile stages should pass). The builder runs under the per-key lock, so
        a concurrent ``put`` of the same key waits and then finds the entry. If the builder raises,
        nothing is stored and the exception propagates.
        """
        check_name(stage, key)
        lock = self.lock(stage, key)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise StageError(stage, f"timed out waiting for another build of key {key} "
                                    f"(lock {lock.lock_file})") from exc
        try:
            cached = self.entry(stage, key)
            if cached is not None:
                return cached.path
            final = self.entry_dir(stage, key)
            with staged_dir(final) as root:
                data = root / DATA_DIR
                if callable(source):
                    data.mkdir()
                    source(data)
                else:
                    src = Path(source)
                    if not src.is_dir():
                        raise UsageError(f"{src}: not a directory")
                    shutil.copytree(src, data, symlinks=True)
                files, links = self._record(stage, data)
                m = EntryManifest(stage=stage, key=key, created=self._clock(), files=files, links=links,
                                  meta=dict(meta or {}))
                write_atomic(root / MANIFEST_NAME, m.model_dump_json(indent=1))
            return final / DATA_DIR
        finally:
            lock.release()

    def _record(self, stage: str, data: Path) -> tuple[dict[str, FileRecord], dict[str, str]]:
        paths, links = scan_tree(data)
        for rel, target in links.items():
            logical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if target.startswith("/") or logical == ".." or logical.startswith("../"):
                raise StageError(stage, f"{rel}: symlink to {target!r} points outside the artifact")
        files: dict[str, FileRecord] = {}
        for rel, p in paths:
            files[rel] = FileRecord(sha256=self._hasher(p), size=p.stat().st_size)
            fd = os.open(p, os.O_RDONLY)  # make the content durable before the entry becomes visible
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return files, links

    def remove(self, stage: str, key: str) -> bool:
        """Remove an entry unless a put of its key is running; True if it was removed."""
        root = self.entry_dir(stage, key)
        lock = self.lock(stage, key, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            return False
        try:
            return remove_tree(root)
        finally:
            lock.release()

    # -- checking -----------------------------------------------------------------------------
    def verify(self) -> list[Problem]:
        """Re-hash every file of every entry against its manifest; the problems found, sorted."""
        problems: list[Problem] = []
        for stage, key, root in self._entry_roots():
            if not (root / MANIFEST_NAME).exists():
                continue  # never completed: not an entry (gc removes it)
            m = self._load(root, stage, key)
            if m is None:
                problems.append(Problem(stage, key, MANIFEST_NAME, "manifest", "unreadable or invalid"))
                continue
            problems.extend(self._verify_entry(stage, key, root / DATA_DIR, m))
        return sorted(problems)

    def _verify_entry(self, stage: str, key: str, data: Path, m: EntryManifest) -> list[Problem]:
        out = []
        for rel, rec in sorted(m.files.items()):
            p = data / rel
            if not p.exists() and not p.is_symlink():
                out.append(Problem(stage, key, rel, "missing"))
            elif p.is_symlink() or not p.is_file():
                out.append(Problem(stage, key, rel, "not-a-file"))
            elif p.stat().st_size != rec.size:
                out.append(Problem(stage, key, rel, "size", f"expected {rec.size}, found {p.stat().st_size}"))
            elif (got := self._hasher(p)) != rec.sha256:
                out.append(Problem(stage, key, rel, "digest", f"expected {rec.sha256[:16]}…, found {got[:16]}…"))
        for rel, target in sorted(m.links.items()):
            p = data / rel
            if not p.is_symlink():
                out.append(Problem(stage, key, rel, "missing", "symlink"))
            elif os.readlink(p) != target:
                out.append(Problem(stage, key, rel, "link", f"expected -> {target}, found -> {os.readlink(p)}"))
        if data.is_dir():
            try:
                paths, links = scan_tree(data)
            except StageError as exc:
                return [*out, Problem(stage, key, "", "unexpected", str(exc))]
            for rel in sorted({r for r, _ in paths} | set(links)):
                if rel not in m.files and rel not in m.links:
                    out.append(Problem(stage, key, rel, "unexpected", "not in the manifest"))
        return out

    def gc(self, **kw: Any) -> GcReport:
        """See ``trtbuild.cache.gc.collect``."""
        from trtbuild.cache.gc import collect

        return collect(self, **kw)


def remove_tree(root: Path) -> bool:
    """Rename ``root`` aside (atomically invisible), then delete it. False if it did not exist."""
    if not root.exists():
        return False
    aside = root.parent / f".{root.name}.old-{os.getpid()}-{int(time.time() * 1e6) % 10**9}"
    try:
        os.replace(root, aside)
    except FileNotFoundError:
        return False
    shutil.rmtree(aside, ignore_errors=True)
    return True
