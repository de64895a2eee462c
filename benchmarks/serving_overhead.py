"""Serving overhead of the generated Triton repository itself (no model compute): throughput and latency.

    .venv/bin/python benchmarks/serving_overhead.py [--seconds 5] [--tokens 32] [--instances 2]

Renders the tiny model's CPU-reference repository, swaps `tensorrt_llm` for a stand-in that returns
`--tokens` tokens instantly (benchmarks/serving_standin_model.py), starts the real tritonserver from
nvidia-pytriton and drives `ensemble` and `tensorrt_llm_bls` over gRPC streaming at concurrency 1, 16
and 64, non-streamed and streamed (the ensemble refuses streaming for this byte-level tokenizer).
Alongside: the same tokenize + detokenize work done in process in a loop (the limit). Prints a
markdown table. Client and server share this machine's cores. CPU per request: serving_cpu.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from serving_repos import build_ours, run_drive, text_loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement")
    ap.add_argument("--tokens", type=int, default=32, help="tokens the stand-in returns per request")
    ap.add_argument("--instances", type=int, default=2, help="instances of preprocessing/postprocessing/BLS")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    args = ap.parse_args()
    from trtbuild.repository.server import TritonServer

    work = Path(tempfile.mkdtemp(prefix="trtbuild-bench-"))
    rows = []
    try:
        repo = build_ours(work, args.instances, args.tokens)
        with TritonServer(repo) as server:
            for model in ("tensorrt_llm_bls", "ensemble"):
                for stream in (False, True):
                    for conc in args.concurrency:
                        r = run_drive(server.grpc_url, model, conc, args.seconds, stream, args.tokens)
                        lat = sorted(r.latencies or [0.0])
                        row = (model, "stream" if stream else "whole", conc, r.requests / r.seconds if r.seconds else 0.0,
                               lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, r.requests)
                        rows.append(row)
                        print(f"  {model:17} {row[1]:6} c={conc:<3} {row[3]:8.1f} req/s  p50 {row[4]:7.1f} ms  "
                              f"p99 {row[5]:7.1f} ms", file=sys.stderr, flush=True)
        n, wall, _ = text_loop(work / "model", args.tokens, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nServing overhead, {args.tokens} tokens per request from an instant stand-in `tensorrt_llm`; "
          f"{args.instances} instance(s) each of pre/post/BLS; {os.cpu_count()} cores shared by client and "
          f"server.\n")
    print("| path | mode | concurrency | req/s | p50 ms | p99 ms | requests |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model, mode, conc, rps, p50, p99, count in rows:
        if count:
            print(f"| {model} | {mode} | {conc} | {rps:.1f} | {p50:.1f} | {p99:.1f} | {count} |")
        else:
            print(f"| {model} | {mode} | {conc} | refused | | | |")
    print(f"| in-process tokenize + detokenize (limit) | loop | 1 | {n / wall:.1f} | {wall / n * 1e3:.3f} | | {n} |")


if __name__ == "__main__":
    main()
