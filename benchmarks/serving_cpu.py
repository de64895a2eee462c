"""CPU milliseconds per request and per streamed response of each served path, over every process.

    .venv/bin/python benchmarks/serving_cpu.py [--seconds 6] [--tokens 32] [--instances 2]
        [--concurrency 1 16 64] [--rounds 1] [--reference-models DIR] [--accumulate-tokens] [--coalescing MS]
        [--forwarder]

Serves trtbuild's repository of the tiny demo model with an instant stand-in `tensorrt_llm`
(benchmarks/serving_standin_model.py: `--tokens` tokens per request at once, one response per token
when streaming), and with `--reference-models DIR`, NVIDIA's own `inflight_batcher_llm` models filled
the same way (see benchmarks/serving_repos.py for how to get them; nothing of theirs is committed).
For each client-facing model (`ensemble`, `tensorrt_llm_bls`), non-streamed and streamed, at each
concurrency: a closed-loop gRPC streaming client (a fresh process per cell) consumes every response as
NVIDIA's clients do (`text_output[0]`, strict UTF-8 decode); CPU time is summed over that client and the
server's whole process tree (tritonserver + one Python stub per model instance), read from
`/proc/<pid>/stat` before and after the measured window. All servers run at once and every cell is
measured on each in turn (`--rounds` times, median kept), so load that drifts weighs on all alike.
Alongside: the floor, the same tokenize + detokenize work in process (trtbuild_text). `--coalescing MS` adds our repository with
`serving.stream_coalescing_ms: MS` (its streamed BLS path); `--forwarder` adds the floors: our
repository with Python models that do no text work at all (benchmarks/serving_forwarder_model.py), i.e.
what any ensemble of three Python steps, or any BLS answering one response per engine response, costs. Prints a markdown table; `--json` for machines.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from serving_repos import ROOT, build_nvidia, build_ours, drive_in_child, text_loop

TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------ process CPU
def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def _label(pid: int) -> str:
    """tritonserver, or the model a Python stub serves (its model path is on its command line)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    for arg in argv:
        text = arg.decode(errors="replace")
        if text.endswith("/model.py"):
            return Path(text).parent.parent.name
    return Path(argv[0].decode(errors="replace")).name or "?"


def tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds of `root` and every descendant, summed per label."""
    parents: dict[int, list[int]] = defaultdict(list)
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None:
                parents[st[0]].append(int(entry))
                cpu[int(entry)] = st[1]
    out: dict[str, float] = defaultdict(float)
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in cpu:
            out[_label(pid)] += cpu[pid]
        todo.extend(parents.get(pid, ()))
    return dict(out)


class CpuWindow:
    """CPU seconds spent by a server's process tree between start() and stop(), plus the client's."""

    def __init__(self, server_pid: int):
        self.pid = server_pid
        self.before: dict[str, float] = {}

    def start(self) -> None:
        self.before = tree_cpu(self.pid)

    def stop(self, client_cpu: float) -> dict[str, float]:
        after = tree_cpu(self.pid)
        out = {"client": client_cpu}
        for label, value in after.items():
            out[label] = value - self.before.get(label, 0.0)
        return out


# ------------------------------------------------------------------------------------------ main
ALL_PATHS = (("tensorrt_llm_bls", False), ("tensorrt_llm_bls", True), ("ensemble", False), ("ensemble", True))


def measure(targets: list[tuple[str, Path, tuple[tuple[str, bool], ...]]], args: argparse.Namespace) -> list[dict]:
    """Every server up at once; each cell measured on each server in turn, `--rounds` times (the median
    is kept), so a load that drifts over the run weighs on every repository alike."""
    from trtbuild.repository.server import TritonServer

    env = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    servers = [TritonServer(repo, env=env) for _, repo, _ in targets]
    results: dict[tuple, list[dict]] = defaultdict(list)
    try:
        for server in servers:
            server.start(timeout=600)
        for _ in range(args.rounds):
            for (model, stream), conc in itertools.product(ALL_PATHS, args.concurrency):
                for (name, _, paths), server in zip(targets, servers):
                    if (model, stream) in paths:
                        assert server.process is not None
                        row = measure_cell(server.grpc_url, server.process.pid, name, model, stream, conc, args)
                        results[(name, model, stream, conc)].append(row)
    finally:
        for server in servers:
            server.stop()
    rows = []
    names = [name for name, _, _ in targets]
    for key in sorted(results, key=lambda k: (names.index(k[0]), ALL_PATHS.index((k[1], k[2])), k[3])):
        done = sorted((r for r in results[key] if r["requests"]), key=lambda r: r["cpu_ms_per_request"])
        rows.append(done[len(done) // 2] if done else results[key][0])
    return rows


def measure_cell(url: str, pid: int, name: str, model: str, stream: bool, conc: int,
                 args: argparse.Namespace) -> dict:
    window = CpuWindow(pid)
    outcome = drive_in_child(url, model, conc, args.seconds, stream, args.tokens, on_start=window.start)
    cpu = window.stop(outcome.client_cpu) if outcome.requests else {}
    total = sum(cpu.values())
    n = outcome.requests
    row = {"repository": name, "model": model, "mode": "stream" if stream else "whole", "concurrency": conc,
           "requests": n, "responses": outcome.responses, "errors": outcome.errors, "bad_utf8": outcome.bad_utf8,
           "rps": n / outcome.seconds if outcome.seconds else 0.0,
           "cpu_ms_per_request": total * 1e3 / n if n else None,
           "cpu_ms_per_response": total * 1e3 / outcome.responses if outcome.responses else None,
           "cpu_ms_by_process": {k: round(v * 1e3 / n, 3) for k, v in sorted(cpu.items())} if n else {}}
    print(f"  {name:15} {model:17} {row['mode']:6} c={conc:<3} "
          + (f"{row['cpu_ms_per_request']:7.2f} CPU ms/req  {row['rps']:7.1f} req/s" if n
             else f"refused or failed ({outcome.errors} errors)")
          + (f"  ({outcome.errors} requests failed or timed out)" if n and outcome.errors else ""),
          file=sys.stderr, flush=True)
    return row


def table(rows: list[dict], floor: float, args: argparse.Namespace) -> str:
    lines = [f"CPU per request summed over client + tritonserver + every model process; stand-in engine, "
             f"{args.tokens} tokens per request; {args.instances} instance(s) of each Python model; "
             f"{os.cpu_count()} cores shared by client and server.", "",
             "| repository | model | mode | concurrency | CPU ms / request | CPU ms / response | req/s | "
             "responses / request | invalid UTF-8 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if not r["requests"]:
            lines.append(f"| {r['repository']} | {r['model']} | {r['mode']} | {r['concurrency']} | refused | | | | |")
            continue
        lines.append(f"| {r['repository']} | {r['model']} | {r['mode']} | {r['concurrency']} | "
                     f"{r['cpu_ms_per_request']:.2f} | {r['cpu_ms_per_response']:.3f} | {r['rps']:.1f} | "
                     f"{r['responses'] / r['requests']:.1f} | {r['bad_utf8']} |")
    lines.append(f"| in-process tokenize + detokenize (floor) | | loop | 1 | {floor:.3f} | | | | |")
    return "\n".join(lines)


def ratios(rows: list[dict]) -> str:
    """Ours / NVIDIA's, CPU per request, at each concurrency."""
    def cell(repo, model, mode, conc):
        for r in rows:
            if (r["repository"], r["model"], r["mode"], r["concurrency"]) == (repo, model, mode, conc) and r["requests"]:
                return r["cpu_ms_per_request"]
        return None
    out = ["", "| ours / NVIDIA (CPU per request) | concurrency | ratio |", "|---|---:|---:|"]
    pairs = [("stream: our tensorrt_llm_bls / their tensorrt_llm_bls", "tensorrt_llm_bls", "stream", "tensorrt_llm_bls"),
             ("stream: our tensorrt_llm_bls, stream_coalescing_ms / their tensorrt_llm_bls", "tensorrt_llm_bls+c", "stream",
              "tensorrt_llm_bls"),
             ("whole: our tensorrt_llm_bls / their ensemble", "tensorrt_llm_bls", "whole", "ensemble"),
             ("whole: our ensemble / their ensemble", "ensemble", "whole", "ensemble"),
             ("whole: our tensorrt_llm_bls / their tensorrt_llm_bls", "tensorrt_llm_bls", "whole", "tensorrt_llm_bls")]
    concs = sorted({r["concurrency"] for r in rows})
    for label, ours, mode, theirs in pairs:
        for conc in concs:
            repo = "ours+coalescing" if ours.endswith("+c") else "ours"
            a, b = cell(repo, ours.removesuffix("+c"), mode, conc), cell("nvidia", theirs, mode, conc)
            if a is not None and b:
                out.append(f"| {label} | {conc} | {a / b:.2f}× |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=6.0, help="measured window per cell")
    ap.add_argument("--rounds", type=int, default=1, help="measure every cell this many times; keep the median")
    ap.add_argument("--tokens", type=int, default=32, help="tokens the stand-in returns per request")
    ap.add_argument("--instances", type=int, default=2, help="instances of each Python model (both repositories)")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--reference-models", type=Path, help="NVIDIA's inflight_batcher_llm models (see serving_repos.py)")
    ap.add_argument("--accumulate-tokens", action="store_true", help="NVIDIA's BLS with accumulate_tokens:true")
    ap.add_argument("--coalescing", type=int, default=0, metavar="MS",
                    help="also measure our BLS streaming with serving.stream_coalescing_ms: MS")
    ap.add_argument("--forwarder", action="store_true",
                    help="also measure the floors: Python models that do no text work (serving_forwarder_model.py)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    work = Path(tempfile.mkdtemp(prefix="trtbuild-cpu-"))
    try:
        ours = build_ours(work / "default", args.instances, args.tokens)
        model = work / "default" / "model"
        coalescing = (build_ours(work / "coalescing", args.instances, args.tokens, model=model,
                                 serving_extra=f"  stream_coalescing_ms: {args.coalescing}\n")
                      if args.coalescing else None)
        nvidia = (build_nvidia(work, args.reference_models, work / "default" / "model", args.instances,
                               args.tokens, accumulate_tokens=args.accumulate_tokens) if args.reference_models else None)
        targets = [("ours", ours, ALL_PATHS)]
        if coalescing is not None:
            targets.append(("ours+coalescing", coalescing, (("tensorrt_llm_bls", True),)))
        if args.forwarder:
            floor_repo = build_ours(work / "forwarder", args.instances, args.tokens, model=model)
            for name in ("preprocessing", "postprocessing", "tensorrt_llm_bls"):
                shutil.copy(ROOT / "benchmarks" / "serving_forwarder_model.py",
                            floor_repo / "models" / name / "1" / "model.py")
            targets.append(("no text work (floor)", floor_repo, (("tensorrt_llm_bls", False),
                                                                ("tensorrt_llm_bls", True), ("ensemble", False))))
        if nvidia is not None:
            targets.append(("nvidia", nvidia, ALL_PATHS))
        rows = measure(targets, args)
        n, _, cpu = text_loop(work / "default" / "model", args.tokens, min(args.seconds, 3.0))
        floor = cpu * 1e3 / n
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps({"rows": rows, "floor_cpu_ms_per_request": floor, "tokens": args.tokens,
                          "instances": args.instances}, indent=2))
        return
    print(table(rows, floor, args))
    if args.reference_models:
        print(ratios(rows))


if __name__ == "__main__":
    main()
