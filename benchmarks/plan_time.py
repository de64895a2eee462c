"""Wall time of `trtbuild plan` for the 70B recipe in a fresh process (target: <= 0.5 s).

    .venv/bin/python benchmarks/plan_time.py [--runs 20]

Prints a markdown row per command: median / min / max wall seconds over the runs, next to a bare
`python -c pass` (interpreter start-up) for scale, and which heavy modules the plan imported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "llama-3.1-70b-fp8-tp4.yaml"


def wall(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        out.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    py = sys.executable
    rows = [
        ("python -c pass (start-up)", [py, "-c", "pass"]),
        ("trtbuild plan 70B --gpu h100", [py, "-m", "trtbuild", "plan", str(RECIPE), "--gpu", "h100"]),
        ("trtbuild plan 70B --gpu h100 --json", [py, "-m", "trtbuild", "plan", str(RECIPE), "--gpu", "h100", "--json"]),
        ("trtbuild validate recipes/*.yaml", [py, "-m", "trtbuild", "validate", *map(str, sorted((ROOT / "recipes").glob("*.yaml")))]),
    ]
    probe = subprocess.run([py, "-c", (
        f"import sys; from trtbuild.cli import main; main(['plan', {str(RECIPE)!r}, '--gpu', 'h100', '--json']);"
        "print(sorted(m for m in ('torch','transformers','modelopt','numpy','jinja2') if m in sys.modules), file=sys.stderr)"
    )], cwd=ROOT, capture_output=True, text=True)
    print(f"runs per command: {args.runs}; heavy modules imported by plan: {probe.stderr.strip().splitlines()[-1]}")
    print()
    print("| command | median s | min s | max s |")
    print("|---|---|---|---|")
    for name, cmd in rows:
        w = wall(cmd, args.runs)
        print(f"| {name} | {statistics.median(w):.3f} | {min(w):.3f} | {max(w):.3f} |")


if __name__ == "__main__":
    main()
