"""Start-up cost of the planning path: `trtbuild plan` of the 70B recipe vs a bare `python -c pass`.

    .venv/bin/python benchmarks/plan_startup.py [--runs 21] [--target 6]

Both run in fresh processes, interleaved (plan, bare, plan, bare, ...) so that load on a shared machine
hits both alike; prints the median of each, the ratio (issue 12's measure: at most 6×), and which heavy
modules the plan path imported. Exits 1 when the ratio is over --target, so it can gate a change.
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
HEAVY = ("torch", "transformers", "modelopt", "numpy", "jinja2", "rich", "typer", "click")


def _time(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return elapsed


def heavy_imports(py: str) -> list[str]:
    """The heavy modules a `plan` run leaves in sys.modules."""
    code = (f"import sys; from trtbuild.cli import main; rc = main(['plan', {str(RECIPE)!r}, '--gpu', 'h100']);"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    r = subprocess.run([py, "-c", code], cwd=ROOT, capture_output=True, text=True)
    return [r.stderr.strip().splitlines()[-1]] if r.stderr.strip() else []


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--target", type=float, default=6.0, help="largest acceptable ratio")
    args = ap.parse_args()
    py = sys.executable
    plan = [py, "-m", "trtbuild", "plan", str(RECIPE), "--gpu", "h100"]
    bare = [py, "-c", "pass"]
    _time(plan), _time(bare)  # warm the page cache and the .pyc files; not counted
    plans, bares = [], []
    for _ in range(args.runs):
        plans.append(_time(plan))
        bares.append(_time(bare))
    p, b = statistics.median(plans), statistics.median(bares)
    ratio = p / b
    print(f"runs: {args.runs} each, interleaved; heavy modules imported by plan: {' '.join(heavy_imports(py))}")
    print("| command | median s | min s | max s |")
    print("|---|---|---|---|")
    print(f"| python -c pass | {b:.3f} | {min(bares):.3f} | {max(bares):.3f} |")
    print(f"| trtbuild plan 70B --gpu h100 | {p:.3f} | {min(plans):.3f} | {max(plans):.3f} |")
    print(f"ratio plan / bare: {ratio:.1f}x (target <= {args.target:g}x)")
    return 0 if ratio <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
