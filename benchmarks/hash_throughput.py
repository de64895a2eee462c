"""Hashing throughput of `file_digest` (streamed sha256 in Python) vs coreutils `sha256sum` (target ≥ 0.8×).

    .venv/bin/python benchmarks/hash_throughput.py [--size-mib 1024] [--runs 3]

Creates one random file in /tmp (removed afterwards, also on error or Ctrl-C), hashes it alternately with
both tools (page cache warm for both: the file was just written and is read once before timing), checks
they agree, and prints the best run of each in MB/s (10^6 bytes/s), the ratio, and a stat-cache hit for
scale. Both are single-threaded; the number is CPU-bound sha256 speed, not disk speed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trtbuild.cache.digests import StatCache, file_digest  # noqa: E402

TARGET_RATIO = 0.8


def make_file(path: Path, size: int) -> None:
    block = os.urandom(16 * 1024 * 1024)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def time_python(path: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    digest = file_digest(path)
    return time.perf_counter() - t0, digest


def time_sha256sum(path: Path, exe: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - t0, out.split()[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    exe = shutil.which("sha256sum")
    if exe is None:
        print("sha256sum (coreutils) not found", file=sys.stderr)
        return 2
    size = args.size_mib * 1024 * 1024
    workdir = Path(tempfile.mkdtemp(prefix="trtbuild-hashbench-", dir="/tmp"))
    path = workdir / "blob.bin"
    try:
        make_file(path, size)
        file_digest(path)  # warm the page cache
        py_times, sum_times = [], []
        for _ in range(args.runs):
            t, d_py = time_python(path)
            py_times.append(t)
            t, d_sum = time_sha256sum(path, exe)
            sum_times.append(t)
            if d_py != d_sum:
                print(f"digest mismatch: file_digest {d_py} vs sha256sum {d_sum}", file=sys.stderr)
                return 1
        cache = StatCache(workdir / "stat.sqlite3", racy_window_s=0)
        cache.digest(path)
        t0 = time.perf_counter()
        cache.digest(path)
        hit_s = time.perf_counter() - t0
        cache.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    py_mbs = size / min(py_times) / 1e6
    sum_mbs = size / min(sum_times) / 1e6
    ratio = py_mbs / sum_mbs
    print(f"file size:            {args.size_mib} MiB, best of {args.runs} runs, page cache warm")
    print(f"file_digest (python): {py_mbs:8.0f} MB/s")
    print(f"sha256sum (coreutils):{sum_mbs:8.0f} MB/s")
    print(f"ratio:                {ratio:8.2f}x  (target >= {TARGET_RATIO}x: {'ok' if ratio >= TARGET_RATIO else 'MISSED'})")
    print(f"stat-cache hit:       {hit_s * 1e3:8.2f} ms (no read)")
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
