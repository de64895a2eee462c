"""Second `trtbuild compile` of an unchanged recipe: every stage cached, <= 1 s beyond process start.

    .venv/bin/python benchmarks/compile_noop.py [--runs 5]

Compiles the tiny demo model (fp8 + fp8 KV for H100, fake toolchain for the engine step) once, then
times the unchanged compile in fresh processes, next to `trtbuild --version` (interpreter + CLI
start-up) for scale. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = """recipe: 1
name: bench-noop
model: {source: model}
quantization: {weights: fp8, kv_cache: fp8, calibration: {samples: 8, max_seq_len: 64}}
build: {max_seq_len: 256, max_input_len: 128, max_batch_size: 4, max_num_tokens: 512}
"""


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return wall, r.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from trtbuild.demo.tiny_model import make_tiny_model

    work = Path(tempfile.mkdtemp(prefix="trtbuild-noop-bench-"))
    try:
        make_tiny_model(work / "model")
        (work / "recipe.yaml").write_text(RECIPE)
        env = {**os.environ, "TRTBUILD_CACHE_DIR": str(work / "cache"), "TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1"}
        py = [sys.executable, "-m", "trtbuild"]
        compile_cmd = [*py, "compile", "recipe.yaml", "--gpu", "h100", "--executor", "fake", "--out", "out", "--json"]
        first, out = timed(compile_cmd, work, env)
        assert {s["status"] for s in json.loads(out)["targets"][0]["stages"]} == {"built"}
        starts = [timed([*py, "--version"], work, env)[0] for _ in range(args.runs)]
        noops = []
        for _ in range(args.runs):
            wall, out = timed(compile_cmd, work, env)
            assert {s["status"] for s in json.loads(out)["targets"][0]["stages"]} == {"cached"}
            noops.append(wall)
        start, noop = statistics.median(starts), statistics.median(noops)
        print(f"first compile (everything built): {first:.1f} s")
        print()
        print("| measure | median s | min s | max s |")
        print("|---|---|---|---|")
        print(f"| `trtbuild --version` (process start) | {start:.3f} | {min(starts):.3f} | {max(starts):.3f} |")
        print(f"| second `trtbuild compile` (all cached) | {noop:.3f} | {min(noops):.3f} | {max(noops):.3f} |")
        print(f"| beyond process start | {noop - start:.3f} | | |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
