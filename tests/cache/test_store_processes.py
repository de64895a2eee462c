"""The store across real processes: concurrent puts of one key, and a put killed with SIGKILL."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

from trtbuild.cache.store import Store

KEY = "e" * 64
CTX = multiprocessing.get_context("fork")


def _put_counting(cache: str, log: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    def build(out: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # long enough for the other process to reach the lock
        (out / "rank0.engine").write_bytes(b"engine" * 1000)

    barrier.wait(10)
    path = Store(Path(cache), lock_timeout=60).put("engine", KEY, build)
    results.put((os.getpid(), str(path)))


def test_concurrent_puts_build_once(tmp_path: Path) -> None:
    cache, log = tmp_path / "cache", tmp_path / "builds.log"
    barrier, results = CTX.Barrier(2), CTX.Queue()
    procs = [CTX.Process(target=_put_counting, args=(str(cache), str(log), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    try:
        got = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]
    assert len(log.read_text().splitlines()) == 1  # one build; the other process waited, then found it
    assert got[0][1] == got[1][1]
    store = Store(cache)
    assert [e.key for e in store.entries()] == [KEY] and store.verify() == [] and store.leftovers() == []


def _put_then_hang(cache: str, started) -> None:  # type: ignore[no-untyped-def]
    def build(out: Path) -> None:
        (out / "rank0.engine").write_bytes(b"half of an engine")
        started.set()
        time.sleep(120)  # killed long before this returns

    Store(Path(cache)).put("engine", KEY, build)


def _put_after(cache: str, results) -> None:  # type: ignore[no-untyped-def]
    path = Store(Path(cache), lock_timeout=60).put(
        "engine", KEY, lambda out: (out / "rank0.engine").write_bytes(b"a whole engine"))
    results.put(str(path))


def test_sigkill_during_put_leaves_nothing_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    started, results = CTX.Event(), CTX.Queue()
    victim = CTX.Process(target=_put_then_hang, args=(str(cache), started))
    victim.start()
    waiter = None
    try:
        assert started.wait(30), "the builder never started"
        waiter = CTX.Process(target=_put_after, args=(str(cache), results))
        waiter.start()
        time.sleep(0.3)
        assert results.empty()  # the waiter is blocked on the key's lock

        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        assert victim.exitcode == -signal.SIGKILL

        # The killed put left a staging directory; it is not an entry and not corrupt.
        store = Store(cache)
        path = results.get(timeout=30)  # the waiter got the lock (the kernel released it) and built
        waiter.join(10)
        assert waiter.exitcode == 0
    finally:
        for p in (victim, waiter):
            if p is not None and p.is_alive():
                p.kill()
                p.join(5)
    assert Path(path, "rank0.engine").read_bytes() == b"a whole engine"
    assert store.verify() == []
    leftovers = store.leftovers()
    assert len(leftovers) == 1 and ".staging-" in leftovers[0].name
    report = store.gc()
    assert report.leftovers == tuple(leftovers) and report.removed == ()
    assert store.leftovers() == [] and store.get("engine", KEY) == Path(path)


def test_sigkill_alone_means_not_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    started = CTX.Event()
    victim = CTX.Process(target=_put_then_hang, args=(str(cache), started))
    victim.start()
    try:
        assert started.wait(30)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
    finally:
        if victim.is_alive():
            victim.kill()
            victim.join(5)
    store = Store(cache, lock_timeout=5)
    assert store.get("engine", KEY) is None and store.entries() == [] and store.verify() == []
    path = store.put("engine", KEY, lambda out: (out / "rank0.engine").write_bytes(b"rebuilt"))
    assert (path / "rank0.engine").read_bytes() == b"rebuilt"
