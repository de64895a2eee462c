"""The local content-addressed store of stage artifacts, keyed by (stage, the stage's fingerprint key).

Layout under the cache directory (``resolve_cache_dir``: ``--cache-dir``, ``TRTBUILD_CACHE_DIR``, or
``platformdirs.user_cache_dir("trtbuild")``)::

    store/<stage>/<key>/data/...         the artifact, as the stage wrote it
    store/<stage>/<key>/manifest.json    every file's sha256 and size, every directory and symlink
    store/<stage>/.<key>.staging-*       a put in progress (or killed); never an entry
    locks/<stage>-<key>.lock             per-key lock: one build of a key at a time
    stat-cache.sqlite3                   digests of unchanged files (``digests.StatCache``)

An entry is built in a staging directory, hashed, its manifest written, then renamed into place, so a
crash never leaves a directory that looks cached. The store owns its inodes: a file the builder hard-linked
from elsewhere (the model, another entry) is copied, so nothing outside the store can change an entry.

Trust (README "Cache trust model"): an entry is exactly what its manifest lists. ``get`` (cheap: stats
only) refuses an entry whose manifest is invalid, or whose tree holds anything the manifest does not list
(an extra file, directory or symlink, a special file) or lacks a listed one or has a wrong size;
``verify_entry`` re-hashes every file (streamed). The build verifies an entry in full before a stage reads
it, and exports it by a verifying copy (:mod:`trtbuild.cache.export`), so a same-size byte flip is never
served: the entry is removed and rebuilt. The manifest's mtime is the entry's last use (``get`` touches
it) and drives ``gc``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock
from pydantic import ValidationError

from trtbuild.cache.digests import Hasher, StatCache, scan_tree
from trtbuild.cache.entry import (
    DATA_DIR,
    MANIFEST_NAME,
    STORE_FORMAT,
    EntryManifest,
    FileRecord,
    Problem,
    own_copy,
    tree_problems,
)
from trtbuild.errors import StageError, UsageError
from trtbuild.fsutil import read_regular_file, sha256_file, staged_dir, write_atomic

if TYPE_CHECKING:
    from trtbuild.cache.gc import GcReport

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
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


def check_name(stage: str, key: str) -> None:
    if not _NAME.match(stage):
        raise UsageError(f"invalid stage name {stage!r} (lowercase letters, digits, '-', '_')")
    if not _KEY.match(key):
        raise UsageError(f"invalid cache key {key!r} (letters, digits, '.', '-', '_'; at most 128)")


def cache_write_error(exc: OSError, cache_dir: Path) -> StageError:
    """A cache directory that cannot be written (a file where a directory belongs, permissions, disk full)."""
    where = Path(exc.filename or cache_dir)
    for p in (where, *where.parents):
        if p.exists() and not p.is_dir():  # what the failure is really about
            return StageError("cache", f"the cache at {cache_dir} is damaged: {p} is a file where the cache "
                                       "keeps a directory. Move it aside (or remove it), or use another --cache-dir")
        if p == cache_dir.parent:
            break
    return StageError("cache", f"cannot write the cache at {cache_dir}: {where}: {exc.strerror or exc}. Fix "
                               "that path, or use another --cache-dir")


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
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cache_write_error(exc, self.cache_dir) from None
        return filelock.FileLock(path, timeout=self._lock_timeout if timeout is None else timeout)

    # -- reading ------------------------------------------------------------------------------
    def _load(self, root: Path, stage: str, key: str) -> EntryManifest | None:
        try:
            raw = read_regular_file(root / MANIFEST_NAME, MAX_MANIFEST_BYTES)
            m = EntryManifest.model_validate_json(raw)
        except (OSError, ValidationError, ValueError):
            return None
        if m.format != STORE_FORMAT or m.stage != stage or m.key != key:
            return None
        return m

    def _quick_ok(self, root: Path, m: EntryManifest) -> bool:
        """The entry's tree is exactly what the manifest lists (types, sizes, link targets); stats only."""
        return not tree_problems(root, m)

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
            entry_meta = dict(meta or {})
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise cache_write_error(exc, self.cache_dir) from None
            with staged_dir(final) as root:
                data = root / DATA_DIR
                if callable(source):
                    data.mkdir()
                    facts = source(data)
                    if isinstance(facts, Mapping) and facts:
                        entry_meta["build"] = dict(facts)
                else:
                    src = Path(source)
                    if not src.is_dir():
                        raise UsageError(f"{src}: not a directory")
                    shutil.copytree(src, data, symlinks=True)
                files, links, dirs = self._record(stage, data)
                m = EntryManifest(stage=stage, key=key, created=self._clock(), files=files, links=links,
                                  dirs=dirs, meta=entry_meta)
                write_atomic(root / MANIFEST_NAME, m.model_dump_json(indent=1))
            return final / DATA_DIR
        finally:
            lock.release()

    def _record(self, stage: str, data: Path) -> tuple[dict[str, FileRecord], dict[str, str], tuple[str, ...]]:
        paths, links = scan_tree(data)
        dirs = tuple(sorted(Path(d).relative_to(data).as_posix() for d, _, _ in os.walk(data) if Path(d) != data))
        for rel, target in links.items():
            logical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if target.startswith("/") or logical == ".." or logical.startswith("../"):
                raise StageError(stage, f"{rel}: symlink to {target!r} points outside the artifact")
        files: dict[str, FileRecord] = {}
        for rel, p in paths:
            st = p.stat()
            if st.st_nlink > 1:
                own_copy(p)  # a hard link into the model or another entry: the store owns its inodes
            files[rel] = FileRecord(sha256=self._hasher(p), size=st.st_size, executable=bool(st.st_mode & 0o111))
            fd = os.open(p, os.O_RDONLY)  # make the content durable before the entry becomes visible
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return files, links, dirs

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
    def verify_entry(self, stage: str, key: str) -> list[Problem]:
        """Re-hash one entry against its manifest (streamed); [] when it is complete and intact."""
        root = self.entry_dir(stage, key)
        m = self._load(root, stage, key)
        if m is None:
            return [Problem(stage, key, MANIFEST_NAME, "manifest", "missing, unreadable or invalid")]
        return self._verify_entry(stage, key, root / DATA_DIR, m)

    def verify(self) -> list[Problem]:
        """Re-hash every file of every entry against its manifest; the problems found, sorted (a file where
        the store keeps a directory is one too)."""
        problems: list[Problem] = []
        misplaced = [self.store_dir] if self.store_dir.exists() and not self.store_dir.is_dir() else (
            [p for p in self.store_dir.iterdir() if not p.is_dir()] if self.store_dir.is_dir() else [])
        problems += [Problem(p.name, "", str(p), "unexpected", "a file where the store keeps a directory")
                     for p in misplaced]
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
        out = tree_problems(data.parent, m, stage, key)
        bad = {p.path for p in out}
        for rel, rec in sorted(m.files.items()):
            if rel in bad:
                continue
            try:
                got = self._hasher(data / rel)
            except OSError as exc:
                out.append(Problem(stage, key, rel, "missing", exc.strerror or str(exc)))
                continue
            if got != rec.sha256:
                out.append(Problem(stage, key, rel, "digest", f"expected {rec.sha256[:16]}…, found {got[:16]}…"))
        return sorted(out)

    # -- exporting ----------------------------------------------------------------------------
    def export(self, stage: str, key: str, dest: Path, *, reflink: bool = True) -> list[Problem]:
        """Copy the entry's artifact into the new directory ``dest``, every file verified against the
        manifest as it is copied (:func:`trtbuild.cache.export.export_tree`); the problems found ([]: ok)."""
        from trtbuild.cache.export import export_tree

        root = self.entry_dir(stage, key)
        m = self._load(root, stage, key)
        if m is None:
            return [Problem(stage, key, MANIFEST_NAME, "manifest", "missing, unreadable or invalid")]
        problems = tree_problems(root, m, stage, key)
        return problems or export_tree(root, m, dest, reflink=reflink)

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
