"""file_digest, StatCache and digest_tree: correct digests, and files not re-read when unchanged."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from pathlib import Path

from trtbuild.cache.digests import StatCache, digest_tree, file_digest
from trtbuild.fsutil import sha256_file

OLD = time.time() - 3600  # an mtime well outside the racy window


class CountingHasher:
    """The injected hasher: counts the files it actually reads."""

    def __init__(self) -> None:
        self.reads: list[Path] = []

    def __call__(self, path: Path) -> str:
        self.reads.append(Path(path))
        return sha256_file(path)


def _old_file(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (OLD, OLD))
    return path


def test_file_digest_is_sha256(tmp_path: Path) -> None:
    data = os.urandom(5 * 1024 * 1024 + 17)  # more than one read chunk
    p = _old_file(tmp_path / "w.bin", data)
    assert file_digest(p) == hashlib.sha256(data).hexdigest()
    assert file_digest(p, StatCache(tmp_path / "c.sqlite3")) == hashlib.sha256(data).hexdigest()


def test_stat_cache_avoids_rereading_unchanged_files(tmp_path: Path) -> None:
    p = _old_file(tmp_path / "model.safetensors", b"weights" * 1000)
    hasher = CountingHasher()
    cache = StatCache(tmp_path / "stat.sqlite3", hasher=hasher)
    first = cache.digest(p)
    assert cache.digest(p) == first and len(hasher.reads) == 1

    # A new StatCache over the same file (another process, a later run) still does not read it.
    other = CountingHasher()
    assert StatCache(tmp_path / "stat.sqlite3", hasher=other).digest(p) == first and other.reads == []

    # Same size, same mtime, different content: ctime/inode still give it away.
    p.write_bytes(b"WEIGHTS" * 1000)
    os.utime(p, (OLD, OLD))
    assert cache.digest(p) == hashlib.sha256(b"WEIGHTS" * 1000).hexdigest() and len(hasher.reads) == 2

    # Replaced by another file (new inode) with identical stat times: re-read.
    tmp = _old_file(tmp_path / "new", b"x" * 7000)
    os.replace(tmp, p)
    assert cache.digest(p) == hashlib.sha256(b"x" * 7000).hexdigest() and len(hasher.reads) == 3
    assert cache.hits == 1 and cache.misses == 3


def test_racy_files_are_not_remembered(tmp_path: Path) -> None:
    p = tmp_path / "fresh.bin"
    p.write_bytes(b"just written")
    hasher = CountingHasher()
    cache = StatCache(tmp_path / "stat.sqlite3", hasher=hasher, racy_window_s=60)
    cache.digest(p)
    cache.digest(p)
    assert len(hasher.reads) == 2  # modified "now": could change again within the same mtime tick


def test_unusable_cache_only_costs_rereads(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the cache directory should be")
    p = _old_file(tmp_path / "f", b"data")
    hasher = CountingHasher()
    cache = StatCache(tmp_path / "blocker" / "stat.sqlite3", hasher=hasher)
    assert cache.digest(p) == cache.digest(p) == hashlib.sha256(b"data").hexdigest()
    assert len(hasher.reads) == 2


def test_digest_tree(tmp_path: Path) -> None:
    root = tmp_path / "model"
    _old_file(root / "config.json", b"{}")
    _old_file(root / "sub" / "b.bin", b"b")
    _old_file(tmp_path / "blobs" / "weights", b"w")
    (root / "model.safetensors").symlink_to(tmp_path / "blobs" / "weights")  # HF cache style
    (root / "sub" / "loop").symlink_to("..")  # a cycle must not hang the walk
    tree = digest_tree(root)
    assert list(tree) == sorted(tree)
    assert tree["config.json"] == hashlib.sha256(b"{}").hexdigest()
    assert tree["model.safetensors"] == hashlib.sha256(b"w").hexdigest()
    assert tree["sub/b.bin"] == hashlib.sha256(b"b").hexdigest()
    assert not any(k.startswith("sub/loop") for k in tree)

    hasher = CountingHasher()
    cache = StatCache(tmp_path / "stat.sqlite3", hasher=hasher)
    assert digest_tree(root, cache) == tree and len(hasher.reads) == 3
    assert digest_tree(root, cache) == tree and len(hasher.reads) == 3


def _hash_many(db: str, files: list[str], rounds: int) -> None:
    cache = StatCache(Path(db))
    for _ in range(rounds):
        for f in files:
            cache.digest(Path(f))


def test_stat_cache_shared_by_concurrent_processes(tmp_path: Path) -> None:
    files = [str(_old_file(tmp_path / f"f{i}", os.urandom(1000))) for i in range(40)]
    db = str(tmp_path / "stat.sqlite3")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_hash_many, args=(db, files, 3)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    hasher = CountingHasher()
    cache = StatCache(Path(db), hasher=hasher)
    for f in files:
        assert cache.digest(Path(f)) == sha256_file(Path(f))
    assert hasher.reads == []
