"""Checkpoint stage cost per format on a ~150M-parameter random Llama, CPU only.

    python benchmarks/checkpoint_formats.py [--workdir DIR] [--formats none,none:modelopt,fp8,...]

Builds the model offline (trtbuild.demo.tiny_model with a larger size), then runs the checkpoint
stage once per format, each in a fresh subprocess so peak RSS (ru_maxrss) belongs to that format
alone. A format may name the converter (``none:modelopt``; default: the stage's choice, which is the
streaming converter for none/int8_wo/int4_wo). The child imports only trtbuild's checkpoint stage
before starting it; whatever the stage imports (torch, transformers, modelopt for ModelOpt runs)
counts in its wall time and peak RSS. Prints a markdown table: wall time of the stage, wall time of
the whole process, peak RSS, RSS before the stage ran, and the checkpoint size. Asserts nothing;
reports whether full-precision peak RSS stays within 2x model bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORMATS = ("none", "none:modelopt", "fp8", "int8_sq", "int4_awq", "nvfp4")
CALIBRATION = {"calib_dataset": "builtin", "calib_samples": 32, "calib_max_seq_len": 128, "calib_batch_size": 4}


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS: now, VmHWM: peak) in MiB.

    VmHWM, not getrusage's ru_maxrss: Linux folds the RSS of the forking parent at exec time into the
    child's ru_maxrss, so a child of a big parent would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_model(path: Path) -> Path:
    from trtbuild.demo.tiny_model import ModelSize, make_tiny_model

    size = ModelSize(vocab=32000, hidden=1024, intermediate=2816, layers=8, heads=16, kv_heads=8)
    return make_tiny_model(path, family="llama", llama3_rope=True, size=size)


def run_one(model_dir: Path, fmt: str, out_dir: Path) -> dict[str, object]:
    """Child process: one checkpoint run; returns timings and memory."""
    started = time.monotonic()
    os.environ["HF_HUB_OFFLINE"] = "1"
    weights, _, converter = fmt.partition(":")
    from trtbuild.stages.checkpoint import CheckpointInputs, run_checkpoint

    baseline = status_mib("VmRSS")
    inputs = CheckpointInputs(
        model_dir=model_dir, architecture="LlamaForCausalLM", decoder_type="llama", dtype="float16",
        weights=weights, kv_cache="none", awq_block_size=128, calib_seed=1234, tp=1, pp=1,
        trust_remote_code=False, **CALIBRATION)  # type: ignore[arg-type]
    t0 = time.monotonic()
    manifest = run_checkpoint(inputs, out_dir, converter=converter or "auto")
    stage_s = time.monotonic() - t0
    peak = status_mib("VmHWM")
    return {"weights": fmt, "converter": manifest.converter, "quant_algo": manifest.quant_algo,
            "stage_s": round(stage_s, 2),
            "process_s": round(time.monotonic() - started, 2), "peak_rss_mib": round(peak, 1),
            "baseline_rss_mib": round(baseline, 1),
            "ckpt_bytes": sum(f.size for f in manifest.files if f.path.startswith("rank")),
            "calibration": dict(manifest.calibration)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--child", nargs=3, metavar=("MODEL", "WEIGHTS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_one(Path(args.child[0]), args.child[1], Path(args.child[2]))))
        return

    work = args.workdir or Path(tempfile.mkdtemp(prefix="trtbuild-bench-"))
    t0 = time.monotonic()
    model = build_model(work / "llama-150m")
    model_bytes = (model / "model.safetensors").stat().st_size
    cfg = json.loads((model / "config.json").read_text())
    print(f"model: {model} ({model_bytes / 2**20:.1f} MiB fp16 safetensors, "
          f"hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, vocab {cfg['vocab_size']}; "
          f"built in {time.monotonic() - t0:.1f} s)")
    print(f"calibration: {CALIBRATION}; cpu cores: {os.cpu_count()}\n")
    rows = []
    for weights in args.formats.split(","):
        out = work / f"ckpt-{weights.replace(':', '-')}"
        child = subprocess.run([sys.executable, __file__, "--child", str(model), weights, str(out)],
                               capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if child.returncode != 0:
            print(f"{weights}: FAILED\n{child.stderr[-2000:]}")
            continue
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(f"  done: {weights}", file=sys.stderr)
    print("| format | converter | quant_algo | stage wall (s) | process wall (s) | peak RSS (MiB) "
          "| peak / model bytes | RSS before the stage (MiB) | checkpoint (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['weights']} | {r['converter']} | {r['quant_algo']} | {r['stage_s']} | {r['process_s']} | "
              f"{r['peak_rss_mib']} | {float(r['peak_rss_mib']) * 2**20 / model_bytes:.2f} | "
              f"{r['baseline_rss_mib']} | {int(r['ckpt_bytes']) / 2**20:.1f} |")
    full = next((r for r in rows if r["weights"] == "none"), None)
    if full is not None:
        limit = 2 * model_bytes / 2**20
        peak, extra = float(full["peak_rss_mib"]), float(full["peak_rss_mib"]) - float(full["baseline_rss_mib"])
        print(f"\nfull precision ({full['converter']}): peak RSS {peak:.0f} MiB vs 2x model bytes {limit:.0f} MiB -> "
              f"{'within' if peak <= limit else 'ABOVE'}; above the process baseline: {extra:.0f} MiB")


if __name__ == "__main__":
    main()
