"""What the cache's trust model costs: verifying and exporting a cached engine, relative to `sha256sum`.

    .venv/bin/python benchmarks/verify_export.py [--sizes-gib 1 10] [--runs 2] [--dir DIR]

For each size, one store entry holding one random "rank0.engine" of that size is created in a temporary
cache under DIR (default: /tmp; removed afterwards, also on error or Ctrl-C), then timed, best of --runs:

- ``sha256sum FILE`` (Debian coreutils), the baseline;
- ``Store.verify_entry``: the full re-hash a stage does before reading a cached entry;
- ``Store.export``: what compile does to put an entry into OUT/<gpu>/: a copy into a new inode with every
  byte hashed as it is copied and checked against the manifest (a reflink where the filesystem clones:
  then the hash reads the clone);
- a plain ``shutil.copyfile`` into a new file, the cost of the copy alone (what export costs beyond it is the
  price of the verification).

Each export's destination is deleted before the next run. The page cache is whatever it is: a 1 GiB file
stays cached (CPU-bound figures); a 10 GiB file on a 24 GiB machine is partly read from disk.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hash_throughput import make_file  # noqa: E402  (benchmarks/ is sys.path[0])

from trtbuild.cache.store import Store  # noqa: E402

GIB = 1024**3
KEY = "b" * 64


def best(runs: int, fn: Callable[[], object], cleanup: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cleanup()
    return min(times)


def measure(root: Path, size: int, runs: int) -> dict[str, float]:
    store = Store(root / "cache")
    store.put("engine", KEY, lambda d: make_file(d / "rank0.engine", size))
    engine = store.get("engine", KEY)
    assert engine is not None
    src = engine / "rank0.engine"
    out = root / "out"

    def sha256sum() -> None:
        subprocess.run(["sha256sum", str(src)], check=True, capture_output=True)

    def verify() -> None:
        assert store.verify_entry("engine", KEY) == []

    def export() -> None:
        assert store.export("engine", KEY, out) == []

    def copy() -> None:
        out.mkdir()
        shutil.copyfile(src, out / "rank0.engine")

    def clear() -> None:
        shutil.rmtree(out, ignore_errors=True)

    sha256sum()  # one read before timing: every tool starts from the same page-cache state
    return {"sha256sum": best(runs, sha256sum), "verify_entry": best(runs, verify),
            "export (verified copy)": best(runs, export, clear), "plain copy (no hash)": best(runs, copy, clear)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-gib", type=float, nargs="+", default=[1, 10])
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    if shutil.which("sha256sum") is None:
        print("sha256sum (coreutils) not found", file=sys.stderr)
        return 2
    print("| size | operation | seconds | MB/s | × sha256sum time |")
    print("|---|---|---|---|---|")
    for gib in args.sizes_gib:
        size = int(gib * GIB)
        root = Path(tempfile.mkdtemp(prefix="trtbuild-verify-bench-", dir=args.dir))
        try:
            figures = measure(root, size, args.runs)
        finally:
            shutil.rmtree(root, ignore_errors=True)  # the big files never outlive the run
        base = figures["sha256sum"]
        for name, seconds in figures.items():
            print(f"| {gib:g} GiB | {name} | {seconds:.2f} | {size / seconds / 1e6:.0f} | {seconds / base:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
