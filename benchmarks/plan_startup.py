"""Start-up cost of the planning path: `trtbuild plan` of the 70B recipe vs a bare `python -c pass`.

    .venv/bin/python benchmarks/plan_startup.py [--runs 21] [--target 6]

All commands run in fresh processes, interleaved (plan, bare, floor, plan, ...) so that load on a shared
machine hits them alike; prints the median wall and CPU (user+sys) time of each, the ratios (issue 12's
measure: at most 6×), and which heavy modules the plan path imported. "floor" only imports what the plan
path cannot do without (typer, pydantic's BaseModel, PyYAML): no trtbuild code; "+ one pydantic model
built" adds what the first validator costs (pydantic's schema machinery and plugin scan). Bytecode is compiled
first (`compileall`, as `pip install` does): this machine sets PYTHONDONTWRITEBYTECODE, and without it
every run would also compile trtbuild's sources. Exits 1 when the wall ratio is over --target.
"""

from __future__ import annotations

import argparse
import compileall
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "llama-3.1-70b-fp8-tp4.yaml"
HEAVY = ("torch", "transformers", "modelopt", "numpy", "jinja2", "rich", "typer", "click")


def _time(cmd: list[str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


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
    compileall.compile_dir(str(ROOT / "trtbuild"), quiet=1)
    rows = {
        "python -c pass": [py, "-c", "pass"],
        "floor: import typer, pydantic, yaml": [py, "-c", "import typer.main, yaml; from pydantic import BaseModel"],
        "floor + one pydantic model built": [py, "-c", "import typer.main, yaml; from pydantic import BaseModel\n"
                                             "class M(BaseModel):\n    x: int = 0\nM(x=1)"],
        "trtbuild plan 70B --gpu h100": [py, "-m", "trtbuild", "plan", str(RECIPE), "--gpu", "h100"],
    }
    for cmd in rows.values():
        _time(cmd)  # warm the page cache; not counted
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
    for _ in range(args.runs):
        for name, cmd in rows.items():
            times[name].append(_time(cmd))
    wall = {name: statistics.median(w for w, _ in t) for name, t in times.items()}
    cpu = {name: statistics.median(c for _, c in t) for name, t in times.items()}
    bare = "python -c pass"
    print(f"runs: {args.runs} each, interleaved; heavy modules imported by plan: {' '.join(heavy_imports(py))}")
    print("| command | median wall s | min wall s | median CPU s | wall / bare | CPU / bare |")
    print("|---|---|---|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {wall[name]:.3f} | {min(w for w, _ in t):.3f} | {cpu[name]:.3f} | "
              f"{wall[name] / wall[bare]:.1f}x | {cpu[name] / cpu[bare]:.1f}x |")
    ratio = wall["trtbuild plan 70B --gpu h100"] / wall[bare]
    print(f"ratio plan / bare: {ratio:.1f}x wall (target <= {args.target:g}x)")
    return 0 if ratio <= args.target else 1

if __name__ == "__main__":
    sys.exit(main())
