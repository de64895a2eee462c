"""No-op `trtbuild status` over 20 recipes x 3 GPUs with a warm stat cache (target: <= 2 s wall),
and proof that it reads no weight bytes.

    .venv/bin/python benchmarks/status_noop.py [--weights-mib 512]

Builds (once, in a temp dir) a Llama-shaped model whose safetensors holds one large tensor, 20
recipes that differ in run-time settings and batch limits, compiles all 60 targets with the fake
toolchain (full precision: the streaming checkpoint path), then times `trtbuild status` in a fresh
process and reads the child's /proc/<pid>/io `rchar` (every byte it read through read()).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GPUS = ["h100", "h200", "l40s"]


def make_model(d: Path, weights_mib: int) -> None:
    import numpy as np
    from safetensors.numpy import save_file

    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(d)
    tensors = {}
    from safetensors import safe_open

    with safe_open(str(d / "model.safetensors"), "numpy") as f:
        for k in f.keys():  # noqa: SIM118 (safe_open is not a dict)
            tensors[k] = f.get_tensor(k)
    tensors["zz_padding.weight"] = np.zeros((weights_mib, 1024 * 512), dtype=np.float16)  # weights_mib MiB
    save_file(tensors, str(d / "model.safetensors"))


def run(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rchar = 0
    while p.poll() is None:
        try:
            for line in Path(f"/proc/{p.pid}/io").read_text().splitlines():
                if line.startswith("rchar:"):
                    rchar = int(line.split()[1])
        except OSError:
            pass
        time.sleep(0.005)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err[-3000:]}")
    return wall, rchar, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights-mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trtbuild-status-bench-"))
    try:
        make_model(work / "model", args.weights_mib)
        recipes = []
        for i in range(20):
            p = work / f"r{i:02d}.yaml"
            p.write_text(f"recipe: 1\nname: bench-{i:02d}\nmodel: {{source: model}}\n"
                         f"build: {{max_seq_len: 256, max_input_len: 128, max_batch_size: {4 + i % 4}}}\n"
                         f"runtime: {{max_queue_delay_us: {i * 100}}}\n")
            recipes.append(p.name)
        env = {**os.environ, "TRTBUILD_CACHE_DIR": str(work / "cache"), "TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1",
               "HF_HUB_OFFLINE": "1"}
        py = [sys.executable, "-m", "trtbuild"]
        gpu_args = [a for g in GPUS for a in ("--gpu", g)]
        t0 = time.perf_counter()
        for r in recipes:
            run([*py, "compile", r, *gpu_args, "--executor", "fake", "--out", "out", "--quiet"], env, work)
        build_s = time.perf_counter() - t0
        status = [*py, "status", *recipes, *gpu_args, "--executor", "fake", "--json"]
        walls, reads = [], []
        for _ in range(args.runs):
            wall, rchar, out = run(status, env, work)
            rows = json.loads(out)["targets"]
            assert len(rows) == 60 and all(r["state"] == "fresh" for r in rows), rows[:2]
            walls.append(wall)
            reads.append(rchar)
        weights = (work / "model" / "model.safetensors").stat().st_size
        print(f"setup: 20 recipes x 3 GPUs compiled in {build_s:.0f} s; weights file {weights / 2**20:.0f} MiB")
        print()
        print("| measure | value |")
        print("|---|---|")
        print(f"| `trtbuild status` 60 targets, all fresh: median wall | {sorted(walls)[len(walls) // 2]:.2f} s |")
        print(f"| min / max wall over {args.runs} runs | {min(walls):.2f} / {max(walls):.2f} s |")
        print(f"| bytes read by the status process (rchar, max) | {max(reads) / 2**20:.1f} MiB |")
        print(f"| weights file size | {weights / 2**20:.0f} MiB |")
        print(f"| read fewer bytes than the weights file | {'yes' if max(reads) < weights else 'NO'} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
