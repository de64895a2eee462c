"""File digests with a stat cache, so unchanged files are not read twice.

``file_digest(path)`` is a streamed sha256 (``fsutil.sha256_file``). ``StatCache`` remembers digests in a
small sqlite file under the cache directory, keyed by (absolute path, size, mtime_ns, inode, device,
ctime_ns): a file whose stat matches is not re-read. sqlite (WAL, busy timeout) makes the cache safe
under concurrent processes; a cache that cannot be opened or written only costs a re-read.

Racy files: a file modified in the same clock tick as it was hashed keeps its mtime while its content
changes (git's "racy clean" problem). Digests of files modified less than ``racy_window_s`` ago are
therefore returned but not remembered.

``digest_tree(dir)`` maps every regular file below ``dir`` (POSIX relative paths, sorted; symlinks to
files are followed, symlinked directories are walked once) to its sha256.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from trtbuild.errors import StageError
from trtbuild.fsutil import sha256_file

Hasher = Callable[[Path], str]
"""Reads a file and returns its hex sha256 (``fsutil.sha256_file``; tests inject a counting one)."""

STAT_CACHE_NAME = "stat-cache.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    dev INTEGER NOT NULL,
    sha256 TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class StatKey:
    """What must be unchanged for a remembered digest to still hold."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int

    @classmethod
    def of(cls, st: os.stat_result) -> StatKey:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


class StatCache:
    """Digests remembered by file identity and stat; one sqlite file, shared by processes."""

    def __init__(self, path: Path, *, hasher: Hasher = sha256_file, racy_window_s: float = 2.0,
                 clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self._hasher = hasher
        self._racy_ns = int(racy_window_s * 1e9)
        self._clock = clock
        self._local = threading.local()
        self._broken = False
        self.hits = 0
        self.misses = 0

    @classmethod
    def in_dir(cls, cache_dir: Path, *, hasher: Hasher = sha256_file) -> StatCache:
        """The stat cache of a trtbuild cache directory."""
        return cls(Path(cache_dir) / STAT_CACHE_NAME, hasher=hasher)

    # -- sqlite, one connection per thread, opened lazily (no I/O at construction) -------------
    def _db(self) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if getattr(self._local, "pid", None) != os.getpid():
            conn = None  # a connection must not cross fork()
        if conn is not None or self._broken:
            return conn
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
        except (sqlite3.Error, OSError):
            self._broken = True  # an unusable cache only costs re-reads
            return None
        self._local.conn = conn
        self._local.pid = os.getpid()
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def lookup(self, path: Path, key: StatKey) -> str | None:
        db = self._db()
        if db is None:
            return None
        try:
            row = db.execute("SELECT size, mtime_ns, ctime_ns, ino, dev, sha256 FROM digests WHERE path = ?",
                             (str(path),)).fetchone()
        except sqlite3.Error:
            return None
        if row is None or StatKey(*row[:5]) != key:
            return None
        return str(row[5])

    def remember(self, path: Path, key: StatKey, sha256: str) -> None:
        db = self._db()
        if db is None:
            return
        with contextlib.suppress(sqlite3.Error):
            db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (str(path), key.size, key.mtime_ns, key.ctime_ns, key.ino, key.dev, sha256))

    def forget_missing(self) -> int:
        """Drop rows of files that no longer exist; returns how many were dropped."""
        db = self._db()
        if db is None:
            return 0
        gone = [p for (p,) in db.execute("SELECT path FROM digests").fetchall() if not os.path.exists(p)]
        with contextlib.suppress(sqlite3.Error):
            db.executemany("DELETE FROM digests WHERE path = ?", [(p,) for p in gone])
        return len(gone)

    def digest(self, path: Path) -> str:
        """sha256 of ``path``: remembered if its stat is unchanged, otherwise read (and remembered)."""
        apath = Path(os.path.abspath(path))
        before = apath.stat()
        key = StatKey.of(before)
        known = self.lookup(apath, key)
        if known is not None:
            self.hits += 1
            return known
        self.misses += 1
        sha = self._hasher(apath)
        after = apath.stat()
        # Remember only a file that did not change while read and is not racy.
        if StatKey.of(after) == key and int(self._clock() * 1e9) - after.st_mtime_ns >= self._racy_ns:
            self.remember(apath, key, sha)
        return sha


def file_digest(path: Path, cache: StatCache | None = None) -> str:
    """Hex sha256 of a file, streamed; through ``cache`` when given."""
    if cache is not None:
        return cache.digest(Path(path))
    return sha256_file(Path(path))


def iter_tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    """(POSIX relative path, path) of every regular file below ``root``, sorted by relative path.

    Symlinks to files are followed; symlinked directories are walked, each real directory once.
    """
    root = Path(root)
    found: list[tuple[str, Path]] = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_file():
                found.append((p.relative_to(root).as_posix(), p))
    found.sort(key=lambda t: t[0])
    return iter(found)


def digest_tree(root: Path, cache: StatCache | None = None) -> dict[str, str]:
    """``{relative POSIX path: sha256}`` for every file below ``root``, in sorted order."""
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a directory")
    return {rel: file_digest(p, cache) for rel, p in iter_tree_files(root)}


def scan_tree(data: Path) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """Regular files (sorted) and symlinks (not followed) below ``data``; anything else is refused."""
    files: list[tuple[str, Path]] = []
    links: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(data):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(data).as_posix()
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                links[rel] = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                files.append((rel, p))
            elif not stat.S_ISDIR(st.st_mode):
                raise StageError("cache", f"{rel}: not a regular file, directory or symlink")
    files.sort(key=lambda t: t[0])
    return files, dict(sorted(links.items()))
