"""Issue 11, finding 2: a corrupted cache entry is never served, and the output never shares the cache's inodes.

Tampering as an unlucky user or a failing disk would: a same-size byte flip in a cached file, an extra
directory or file injected into an entry, an edit of an exported file, a damaged cache layout. Each compile
afterwards must produce exactly the pristine artifact, say what it did, and leave a cache that verifies.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from trtbuild.cache.store import Store

from .faultlib import Project

pytestmark = pytest.mark.slow


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _stages(stdout: str, target: int = 0) -> dict[str, dict]:
    return {s["stage"]: s for s in json.loads(stdout)["targets"][target]["stages"]}


def _entry(project: Project, stage: str, gpu: str = "h100-sxm") -> Path:
    store = Store(project.cache)
    [entry] = [e for e in store.entries() if e.stage == stage and (stage not in ("engine", "repository")
                                                                    or e.manifest.meta.get("gpu") == gpu)]
    return entry.path


def _flip(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))  # same size


@pytest.mark.parametrize("stage, rel", [("repository", "models/tensorrt_llm/config.pbtxt"),
                                        ("engine", "rank0.engine")])
def test_same_size_byte_flip_is_rebuilt_not_served(project: Project, built: Project, stage: str, rel: str) -> None:
    victim = _entry(project, stage) / rel
    _flip(victim)
    r = project.compile(gpus=("h100",))
    assert r.returncode == 0, r.stderr[-3000:]
    report = _stages(r.stdout)[stage]
    assert report["status"] == "built" and "corrupt" in report["reasons"][0] and rel in report["reasons"][0]
    assert _tree(project.out / "h100-sxm") == _tree(built.out / "h100-sxm")
    assert project.trtbuild("cache", "verify", "--cache-dir", str(project.cache)).returncode == 0


def test_checkpoint_flip_is_caught_before_an_engine_is_built_from_it(project: Project, built: Project) -> None:
    """A stage about to read a cached entry re-hashes it first: a corrupt checkpoint never becomes an engine."""
    _flip(_entry(project, "checkpoint") / "rank0.safetensors", offset=4000)
    store = Store(project.cache)
    for e in store.entries():
        if e.stage in ("engine", "repository"):
            assert store.remove(e.stage, e.key)
    r = project.compile(gpus=("h100",))
    assert r.returncode == 0, r.stderr[-3000:]
    stages = _stages(r.stdout)
    assert stages["checkpoint"]["status"] == "built" and "corrupt" in stages["checkpoint"]["reasons"][0]
    assert _tree(project.out / "h100-sxm") == _tree(built.out / "h100-sxm")


@pytest.mark.parametrize("extra", ["dir-with-file", "empty-dir", "file", "symlink"])
def test_entry_with_anything_unlisted_is_refused(project: Project, built: Project, extra: str) -> None:
    data = _entry(project, "repository", gpu="cpu")
    target = data / "models" / "evil"
    if extra == "dir-with-file":
        target.mkdir()
        (target / "config.pbtxt").write_text('name: "evil"\nbackend: "python"\n')
    elif extra == "empty-dir":
        target.mkdir()
    elif extra == "file":
        (data / "models" / "preprocessing" / "1" / "numpy.py").write_text("raise SystemExit('evil')\n")
    else:
        (data / "escape").symlink_to("/etc")
    r = project.compile(gpus=("cpu",))
    assert r.returncode == 0, r.stderr[-3000:]
    # A tree with unlisted content is not an entry (stats only): the stage is built again, and what is
    # exported is exactly the pristine artifact.
    assert _stages(r.stdout)["repository"]["status"] == "built"
    assert _tree(project.out / "cpu") == _tree(built.out / "cpu")
    assert not (project.out / "cpu" / "repository" / "models" / "evil").exists()


def test_exported_files_never_share_an_inode_with_the_store(project: Project) -> None:
    r = project.compile(gpus=("h100",))
    assert r.returncode == 0, r.stderr[-3000:]
    out = project.out / "h100-sxm"
    store_inodes = {(p.stat().st_dev, p.stat().st_ino) for p in (project.cache / "store").rglob("*") if p.is_file()}
    for p in out.rglob("*"):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            assert st.st_nlink == 1 and (st.st_dev, st.st_ino) not in store_inodes, p
            assert st.st_mode & 0o777 in (0o644, 0o755) or st.st_mode & 0o022 == 0
    # Editing the output in place changes nothing in the cache.
    config = out / "repository" / "models" / "tensorrt_llm" / "config.pbtxt"
    pristine = config.read_bytes()
    config.write_text(config.read_text() + "\n# edited by hand\n")
    assert project.trtbuild("cache", "verify", "--cache-dir", str(project.cache)).returncode == 0
    r = project.compile(gpus=("h100",))
    assert r.returncode == 0 and set(s["status"] for s in _stages(r.stdout).values()) == {"cached"}
    assert config.read_bytes() == pristine


def test_store_owns_its_inodes(tmp_path: Path) -> None:
    """A builder that hard-links a file from elsewhere (the model, another entry) gets a private copy stored."""
    outside = tmp_path / "model-file"
    outside.write_bytes(b"weights")
    store = Store(tmp_path / "cache")
    path = store.put("fetch", "k" * 64, lambda d: os.link(outside, d / "linked"))
    assert (path / "linked").stat().st_ino != outside.stat().st_ino and outside.stat().st_nlink == 1
    (path / "linked").write_bytes(b"changed")  # the store's copy, not the model
    assert outside.read_bytes() == b"weights"


def test_export_is_verified_as_it_copies(tmp_path: Path) -> None:
    """Store.export hashes what lands in the destination: a flip is reported even though sizes match."""
    store = Store(tmp_path / "cache")
    store.put("engine", "e" * 64, lambda d: (d / "rank0.engine").write_bytes(b"E" * 5000))
    assert store.export("engine", "e" * 64, tmp_path / "ok") == []
    assert (tmp_path / "ok" / "rank0.engine").read_bytes() == b"E" * 5000
    _flip(store.get("engine", "e" * 64) / "rank0.engine")
    problems = store.export("engine", "e" * 64, tmp_path / "bad")
    assert [(p.path, p.kind) for p in problems] == [("rank0.engine", "digest")]
    assert store.get("engine", "e" * 64) is not None  # stats match: only content hashing tells
    assert [p.kind for p in store.verify_entry("engine", "e" * 64)] == ["digest"]


@pytest.mark.parametrize("damage", ["store/fetch", "store", "locks"])
def test_damaged_cache_layout_is_a_clear_error(project: Project, damage: str) -> None:
    import shutil

    store = Store(project.cache)
    for e in store.entries():  # nothing cached: the damaged part must be written
        store.remove(e.stage, e.key)
    path = project.cache / damage
    shutil.rmtree(path, ignore_errors=True)
    path.write_text("not a directory")
    r = project.compile(gpus=("h100",))
    assert r.returncode == 4, r.stderr
    assert f"{path} is a file where the cache keeps a directory" in r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
