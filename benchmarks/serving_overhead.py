"""Serving overhead of the generated Triton repository itself (no model compute).

    .venv/bin/python benchmarks/serving_overhead.py [--seconds 5] [--tokens 32] [--instances 2]

Renders the tiny model's CPU-reference repository, swaps `tensorrt_llm` for a stand-in that returns
`--tokens` tokens instantly (benchmarks/serving_standin_model.py), starts the real tritonserver from
nvidia-pytriton and drives `ensemble` and `tensorrt_llm_bls` over gRPC streaming at concurrency 1, 16
and 64, non-streamed and streamed. Alongside: the same tokenize + detokenize work done in process in a
loop (the limit). Prints a markdown table. Client and server share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROMPT = ("Write a short story about a lighthouse keeper who finds a message in a bottle, "
          "and tell it in the voice of an old sailor.")
RECIPE = """\
recipe: 1
name: serving-bench
model:
  source: model
build:
  max_batch_size: 64
  max_input_len: 512
  max_seq_len: 1024
runtime:
  streaming: true
serving:
  instances: {{preprocessing: {n}, postprocessing: {n}, bls: {n}}}
"""


def build_repository(work: Path, instances: int, tokens: int) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.repository import render_repository

    model = make_tiny_model(work / "model")
    (work / "recipe.yaml").write_text(RECIPE.format(n=instances), encoding="utf-8")
    repo = work / "repo"
    render_repository(make_plan(load_recipe(work / "recipe.yaml"), "cpu"), out_dir=repo, tokenizer_dir=model,
                      hf_model_dir=model)
    trt = repo / "models" / "tensorrt_llm"
    shutil.copy(ROOT / "benchmarks" / "serving_standin_model.py", trt / "1" / "model.py")
    with open(trt / "config.pbtxt", "a", encoding="utf-8") as f:
        f.write(f'parameters {{ key: "standin_tokens" value {{ string_value: "{tokens}" }} }}\n')
    return repo


async def _one(client, model: str, inputs: list) -> float:
    t0 = time.perf_counter()

    async def requests():
        yield {"model_name": model, "inputs": inputs}

    async for result, error in client.stream_infer(requests()):
        if error is not None:
            raise RuntimeError(str(error))
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    return time.perf_counter() - t0


async def drive(url: str, model: str, concurrency: int, seconds: float, stream: bool, max_tokens: int) -> dict:
    import tritonclient.grpc.aio as aioclient

    def tensor(name, arr, dtype):
        t = aioclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        return t

    inputs = [tensor("text_input", np.array([[PROMPT.encode()]], dtype=object), "BYTES"),
              tensor("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32"),
              tensor("stream", np.array([[stream]], dtype=bool), "BOOL")]
    clients = [aioclient.InferenceServerClient(url) for _ in range(min(concurrency, 8))]
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        client = clients[i % len(clients)]
        while time.perf_counter() < deadline:
            latencies.append(await _one(client, model, inputs))

    for _ in range(2):  # warm-up
        await _one(clients[0], model, inputs)
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    for c in clients:
        await c.close()
    lat = sorted(latencies)
    return {"rps": len(lat) / elapsed, "p50": lat[len(lat) // 2] * 1e3,
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, "n": len(lat)}


def in_process_limit(model_dir: Path, tokens: int, seconds: float) -> dict:
    """The same text work in this process, one request after another: encode + stream-decode."""
    sys.path.insert(0, str(ROOT / "repo_templates" / "lib"))
    from trtbuild_text import TextCodec

    codec = TextCodec(str(model_dir), add_special_tokens=True, skip_special_tokens=True)
    n, lat = 0, []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        ids = codec.encode_batch([PROMPT])[0]
        det = codec.stream()
        text = "".join(det.push([ids[i % len(ids)]]) for i in range(tokens)) + det.finish()
        assert text
        lat.append(time.perf_counter() - t0)
        n += 1
    lat.sort()
    return {"rps": n / sum(lat), "p50": lat[len(lat) // 2] * 1e3, "p99": lat[int(len(lat) * 0.99)] * 1e3, "n": n}


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
        repo = build_repository(work, args.instances, args.tokens)
        with TritonServer(repo) as server:
            for model in ("ensemble", "tensorrt_llm_bls"):
                for stream in (False, True):
                    for conc in args.concurrency:
                        r = asyncio.run(drive(server.grpc_url, model, conc, args.seconds, stream, args.tokens))
                        rows.append((model, "stream" if stream else "whole", conc, r))
                        print(f"  {model:17} {'stream' if stream else 'whole':6} c={conc:<3} "
                              f"{r['rps']:8.1f} req/s  p50 {r['p50']:7.1f} ms  p99 {r['p99']:7.1f} ms",
                              file=sys.stderr, flush=True)
        limit = in_process_limit(work / "model", args.tokens, args.seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nServing overhead, {args.tokens} tokens per request from an instant stand-in `tensorrt_llm`; "
          f"{args.instances} instance(s) each of pre/post/BLS; {os.cpu_count()} cores shared by client and "
          f"server.\n")
    print("| path | mode | concurrency | req/s | p50 ms | p99 ms | requests |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for model, mode, conc, r in rows:
        print(f"| {model} | {mode} | {conc} | {r['rps']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['n']} |")
    print(f"| in-process tokenize + detokenize (limit) | loop | 1 | {limit['rps']:.1f} | {limit['p50']:.2f} | "
          f"{limit['p99']:.2f} | {limit['n']} |")


if __name__ == "__main__":
    main()
