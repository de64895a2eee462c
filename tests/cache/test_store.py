"""The store in one process: put/get, atomicity on failure, verify, gc, and the `cache` commands."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from trtbuild.cache.gc import parse_duration, parse_size
from trtbuild.cache.store import MANIFEST_NAME, Store, resolve_cache_dir
from trtbuild.canon import format_bytes as format_size
from trtbuild.errors import StageError, UsageError

KEY = "a" * 64


def _builder(files: dict[str, bytes]):  # type: ignore[no-untyped-def]
    calls: list[Path] = []

    def build(out: Path) -> None:
        calls.append(out)
        for rel, data in files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)

    build.calls = calls  # type: ignore[attr-defined]
    return build


def _age(store: Store, stage: str, key: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(store.entry_dir(stage, key) / MANIFEST_NAME, (t, t))


def test_put_get_roundtrip(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    assert store.get("engine", KEY) is None
    build = _builder({"rank0.engine": b"E" * 1000, "config.json": b"{}"})
    path = store.put("engine", KEY, build, meta={"gpu": "h100"})
    assert path == store.get("engine", KEY) == tmp_path / "cache/store/engine" / KEY / "data"
    assert (path / "rank0.engine").read_bytes() == b"E" * 1000
    # cached: the builder does not run again
    assert store.put("engine", KEY, build) == path and len(build.calls) == 1
    [entry] = store.entries()
    assert (entry.stage, entry.key, entry.size, entry.manifest.meta) == ("engine", KEY, 1002, {"gpu": "h100"})
    assert store.verify() == [] and store.leftovers() == []


def test_put_copies_a_directory(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "1").mkdir(parents=True)
    (src / "1" / "model.py").write_text("print('hi')")
    store = Store(tmp_path / "cache")
    path = store.put("repository", "k1", src)
    assert (path / "1" / "model.py").read_text() == "print('hi')"
    with pytest.raises(UsageError):
        store.put("repository", "k2", tmp_path / "missing")


def test_failed_builder_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")

    def broken(out: Path) -> None:
        (out / "half.engine").write_bytes(b"partial")
        raise RuntimeError("trtllm-build crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        store.put("engine", KEY, broken)
    assert store.get("engine", KEY) is None
    assert store.entries() == [] and store.leftovers() == []
    assert list((tmp_path / "cache/store/engine").iterdir()) == []


def test_directory_without_manifest_is_not_cached(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    fake = store.entry_dir("engine", KEY) / "data"
    fake.mkdir(parents=True)
    (fake / "rank0.engine").write_bytes(b"looks complete")
    assert store.get("engine", KEY) is None
    assert store.leftovers() == [store.entry_dir("engine", KEY)]
    assert store.verify() == []  # never cached, so not corrupt
    path = store.put("engine", KEY, _builder({"rank0.engine": b"real"}))
    assert (path / "rank0.engine").read_bytes() == b"real"


def test_get_checks_sizes_and_verify_rehashes(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    path = store.put("engine", KEY, _builder({"rank0.engine": b"E" * 100, "rank1.engine": b"F" * 100}))
    (path / "rank0.engine").write_bytes(b"X" * 100)  # same size: only a full verify sees it
    assert store.get("engine", KEY) == path
    (path / "extra.txt").write_text("?")
    problems = store.verify()
    assert [(p.path, p.kind) for p in problems] == [("extra.txt", "unexpected"), ("rank0.engine", "digest")]
    (path / "rank1.engine").write_bytes(b"short")
    assert store.get("engine", KEY) is None  # size differs: not served
    (path / "rank1.engine").unlink()
    assert ("rank1.engine", "missing") in [(p.path, p.kind) for p in store.verify()]
    assert store.remove("engine", KEY) and store.verify() == [] and store.entries() == []


def test_symlinks_inside_an_entry(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")

    def build(out: Path) -> None:
        (out / "tokenizer").mkdir()
        (out / "tokenizer" / "tokenizer.json").write_text("{}")
        (out / "postprocessing").mkdir()
        (out / "postprocessing" / "tokenizer").symlink_to("../tokenizer")

    path = store.put("repository", "r1", build)
    assert (path / "postprocessing" / "tokenizer" / "tokenizer.json").read_text() == "{}"
    [entry] = store.entries()
    assert entry.manifest.links == {"postprocessing/tokenizer": "../tokenizer"}
    assert list(entry.manifest.files) == ["tokenizer/tokenizer.json"] and store.verify() == []
    (path / "postprocessing" / "tokenizer").unlink()
    (path / "postprocessing" / "tokenizer").symlink_to("../elsewhere")
    assert [p.kind for p in store.verify()] == ["link"]

    def escaping(out: Path) -> None:
        (out / "weights").symlink_to("/etc/passwd")

    with pytest.raises(StageError, match="points outside the artifact"):
        store.put("repository", "r2", escaping)
    assert store.get("repository", "r2") is None and store.leftovers() == []


def test_invalid_names_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    for stage, key in (("../x", KEY), ("engine", "../../etc"), ("engine", ".hidden"), ("Engine", KEY)):
        with pytest.raises(UsageError):
            store.get(stage, key)


def test_gc_policies(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    for i, age_days in enumerate((40, 20, 10, 1)):
        store.put("engine", f"k{i}", _builder({"f": b"x" * 1000}))
        _age(store, "engine", f"k{i}", age_days * 86400)

    dry = store.gc(older_than=30 * 86400, dry_run=True)
    assert [e.key for e in dry.removed] == ["k0"] and len(store.entries()) == 4

    report = store.gc(older_than=parse_duration("15d"), keep={"k1"})
    assert [e.key for e in report.removed] == ["k0"] and report.freed_bytes == 1000
    assert [e.key for e in store.entries()] == ["k1", "k2", "k3"]

    report = store.gc(max_bytes=1500)  # least recently used first, until <= 1500 bytes remain
    assert [e.key for e in report.removed] == ["k1", "k2"] and report.remaining_bytes == 1000
    assert [e.key for e in store.entries()] == ["k3"]

    store.get("engine", "k3")  # a get is a use
    assert store.gc(older_than=3600).removed == ()


def test_gc_skips_a_key_being_built(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.put("engine", "busy", _builder({"f": b"x"}))
    _age(store, "engine", "busy", 100 * 86400)
    with store.lock("engine", "busy"):
        report = store.gc(older_than=86400)
    assert report.removed == () and report.skipped_locked == ("engine/busy",)
    assert store.get("engine", "busy") is not None


def test_resolve_cache_dir_precedence(tmp_path: Path) -> None:
    assert resolve_cache_dir(tmp_path / "cli", env={"TRTBUILD_CACHE_DIR": str(tmp_path / "env")}) == tmp_path / "cli"
    assert resolve_cache_dir(None, env={"TRTBUILD_CACHE_DIR": str(tmp_path / "env")}) == tmp_path / "env"
    assert resolve_cache_dir(None, env={}).name == "trtbuild"


def test_units() -> None:
    assert parse_size("100GiB") == 100 * 1024**3 and parse_size("500MB") == 500 * 10**6
    assert parse_size("2T") == 2 * 1024**4 and parse_size("1.5K") == 1536 and parse_size("42") == 42
    assert parse_duration("30d") == 30 * 86400 and parse_duration("1w2d") == 9 * 86400
    assert parse_duration("90m") == 5400
    for bad in ("", "10 parsecs", "-5GiB"):
        with pytest.raises(UsageError):
            parse_size(bad)
    for bad in ("", "30", "3x", "1d junk"):
        with pytest.raises(UsageError):
            parse_duration(bad)
    assert format_size(1536) == "1.5 KiB"


def test_cache_commands(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    cache = tmp_path / "cache"
    store = Store(cache)
    path = store.put("engine", KEY, _builder({"rank0.engine": b"E" * 100}))
    store.put("repository", "b" * 64, _builder({"ensemble/config.pbtxt": b"name: 'ensemble'"}))
    env = {"TRTBUILD_CACHE_DIR": str(cache)}

    ls = cli("cache", "ls", "--json", env=env)
    assert ls.returncode == 0, ls.stderr
    data = json.loads(ls.stdout)
    assert [(e["stage"], e["key"]) for e in data["entries"]] == [("engine", KEY), ("repository", "b" * 64)]
    assert cli("cache", "ls", "--cache-dir", str(cache)).stdout.count("a" * 16) == 1

    assert cli("cache", "verify", env=env).returncode == 0
    (path / "rank0.engine").write_bytes(b"X" * 100)
    bad = cli("cache", "verify", "--json", env=env)
    assert bad.returncode == 4 and json.loads(bad.stdout)["problems"][0]["kind"] == "digest"
    fixed = cli("cache", "verify", "--remove", env=env)
    assert fixed.returncode == 4 and f"removed engine/{KEY}" in fixed.stderr
    assert cli("cache", "verify", env=env).returncode == 0

    _age(store, "repository", "b" * 64, 40 * 86400)
    dry = cli("cache", "gc", "--older-than", "30d", "--dry-run", env=env)
    assert dry.returncode == 0 and "would remove repository/" in dry.stdout
    assert len(store.entries()) == 1
    done = cli("cache", "gc", "--older-than", "30d", "--max-size", "100GiB", "--json", env=env)
    assert done.returncode == 0 and len(json.loads(done.stdout)["removed"]) == 1
    assert store.entries() == []
    assert cli("cache", "gc", "--older-than", "soon", env=env).returncode == 2


def test_gc_removes_orphan_logs_and_old_upload_sessions(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    store.put("engine", KEY, _builder({"rank0.engine": b"E"}))
    logs = tmp_path / "cache" / "logs"
    logs.mkdir()
    kept, orphan = logs / f"engine-{KEY}.trtllm-build.log", logs / f"engine-{'c' * 64}.trtllm-build.log"
    kept.write_text("log")
    orphan.write_text("log")
    uploads = tmp_path / "cache" / "uploads"
    uploads.mkdir()
    fresh, old = uploads / "fresh.json", uploads / "old.json"
    fresh.write_text("{}")
    old.write_text("{}")
    week_ago = time.time() - 8 * 86400
    os.utime(old, (week_ago, week_ago))
    assert set(store.gc(dry_run=True).leftovers) == {orphan, old} and orphan.exists()
    report = store.gc()
    assert set(report.leftovers) == {orphan, old}
    assert kept.exists() and fresh.exists() and not orphan.exists() and not old.exists()


def test_old_format_entries_are_not_served_and_gc_removes_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache")
    path = store.put("engine", KEY, _builder({"rank0.engine": b"E"}))
    manifest = path.parent / MANIFEST_NAME
    manifest.write_text(manifest.read_text().replace('"format": 2', '"format": 1'))
    assert store.get("engine", KEY) is None
    assert store.gc().leftovers == (path.parent,) and not path.parent.exists()
