"""Garbage collection of the store, and the size/duration units its command line takes.

Policy (``collect``): leftovers of unfinished puts (staging directories, entry directories without a valid
manifest, entries of an older store format) whose key is not locked are always removed, and so are build
logs of engines no longer stored and upload sessions older than a week. Then, never touching a key in ``keep`` nor a key
whose lock is held (a build in progress):

- ``older_than``: entries not used for longer than that are removed;
- ``max_bytes``: the least recently used entries are removed until the store holds at most that.

With neither, only leftovers go. ``dry_run`` reports what would be removed and removes nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import filelock

from trtbuild.cache.store import CacheEntry, Store, remove_tree
from trtbuild.errors import UsageError

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str) -> int:
    """``"100GiB"`` → bytes. Binary units: K/M/G/T, KiB/MiB/GiB/TiB; decimal: KB/MB/GB/TB."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise UsageError(f"invalid size {text!r}; expected e.g. 500MB, 100GiB, 2T")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_duration(text: str) -> float:
    """``"30d"``, ``"12h"``, ``"1w2d"``, ``"90m"``, ``"45s"`` → seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise UsageError(f"invalid duration {text!r}; expected e.g. 30d, 12h, 1w2d, 90m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


@dataclass(frozen=True)
class GcReport:
    """What ``collect`` removed (or, with ``dry_run``, would remove)."""

    removed: tuple[CacheEntry, ...] = ()
    leftovers: tuple[Path, ...] = ()
    skipped_locked: tuple[str, ...] = field(default=())
    """``stage/key`` of entries that qualified but were being built."""
    freed_bytes: int = 0
    remaining_bytes: int = 0
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "freed_bytes": self.freed_bytes,
                "remaining_bytes": self.remaining_bytes,
                "removed": [e.to_json() for e in self.removed],
                "leftovers": [str(p) for p in self.leftovers],
                "skipped_locked": list(self.skipped_locked)}


def _leftover_key(path: Path) -> str:
    name = path.name
    for marker in (".staging-", ".old-"):
        if name.startswith(".") and marker in name:
            return name[1:].split(marker)[0]
    return name


def _try_lock(store: Store, stage: str, key: str) -> filelock.BaseFileLock | None:
    try:
        lock = store.lock(stage, key, timeout=0)
        lock.acquire()
    except (filelock.Timeout, UsageError):
        return None
    return lock


UPLOAD_SESSION_MAX_AGE_S = 7 * 86400
"""Registries purge unfinished uploads after about a week (distribution's default): older sessions are gone."""


def _stale_side_files(store: Store, now: float, dry_run: bool) -> list[Path]:
    """Build logs of engine keys no longer in the store, and upload sessions older than a week."""
    out: list[Path] = []
    logs = store.cache_dir / "logs"
    if logs.is_dir():
        for log in sorted(logs.glob("engine-*.trtllm-build.log")):
            key = log.name[len("engine-"):-len(".trtllm-build.log")]
            if store.entry("engine", key, touch=False) is None and (lock := _try_lock(store, "engine", key)):
                try:
                    out.append(log)
                    if not dry_run:
                        log.unlink(missing_ok=True)
                finally:
                    lock.release()
    uploads = store.cache_dir / "uploads"
    if uploads.is_dir():
        for session in sorted(uploads.glob("*.json")):
            if now - session.stat().st_mtime > UPLOAD_SESSION_MAX_AGE_S:
                out.append(session)
                if not dry_run:
                    session.unlink(missing_ok=True)
    return out


def collect(store: Store, *, keep: Iterable[str] = (), older_than: float | timedelta | None = None,
            max_bytes: int | None = None, dry_run: bool = False, now: float | None = None) -> GcReport:
    """Remove leftovers and the entries the policy selects; see the module docstring."""
    keep_set = set(keep)
    now = time.time() if now is None else now
    max_age = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than

    leftovers: list[Path] = []
    for path in store.leftovers():
        lock = _try_lock(store, path.parent.name, _leftover_key(path))
        if lock is None:
            continue
        try:
            leftovers.append(path)
            if not dry_run:
                remove_tree(path)
        finally:
            lock.release()

    leftovers += _stale_side_files(store, now, dry_run)
    entries = sorted(store.entries(), key=lambda e: (e.last_used, e.stage, e.key))
    total = sum(e.size for e in entries)
    chosen: list[CacheEntry] = []
    for e in entries:
        if e.key in keep_set or f"{e.stage}/{e.key}" in keep_set:
            continue
        too_old = max_age is not None and now - e.last_used > max_age
        too_big = max_bytes is not None and total > max_bytes
        if too_old or too_big:
            chosen.append(e)
            total -= e.size

    removed: list[CacheEntry] = []
    locked: list[str] = []
    for e in chosen:
        if dry_run:
            removed.append(e)
            continue
        if store.remove(e.stage, e.key):
            removed.append(e)
        else:
            locked.append(f"{e.stage}/{e.key}")
    freed = sum(e.size for e in removed)
    remaining = sum(e.size for e in entries) - freed
    return GcReport(removed=tuple(removed), leftovers=tuple(leftovers), skipped_locked=tuple(locked),
                    freed_bytes=freed, remaining_bytes=remaining, dry_run=dry_run)
