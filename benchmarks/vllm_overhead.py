"""Tokens/s of the vLLM repository (Triton + our Python model) vs vLLM's own OpenAI server vs the CPU reference.

    .venv/bin/python benchmarks/vllm_overhead.py [--model tiny|smollm2] [--tokens 64] [--requests 48]

Same model (fp32), same machine, same run, one server at a time: renders the vLLM repository and the CPU
reference repository from one plan (`--gpu cpu`), starts each in the real tritonserver (nvidia-pytriton;
the vLLM one in .venv-vllm), then `python -m vllm.entrypoints.openai.api_server` from .venv-vllm with the
same engine arguments (trtbuild.backends.vllm.settings), on 127.0.0.1. Every request is greedy with
min_tokens = max_tokens = --tokens, so every server generates exactly the same number of tokens; load at
concurrency 1 and 16 (client threads, each sending its share of --requests in turn), streamed and not.
Needs `make vllm-venv`. Prints a markdown table; client and servers share this machine's cores.
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
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VLLM_ENV = ROOT / ".venv-vllm"
PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
RECIPE = """\
recipe: 1
name: vllm-bench
dtype: float32
model:
  source: model
build:
  max_batch_size: 16
  max_input_len: 256
  max_seq_len: 512
runtime:
  streaming: true
serving:
  instances: {preprocessing: 2, postprocessing: 2, bls: 2}
"""


def model_dir(kind: str, work: Path) -> Path:
    if kind == "smollm2":
        from trtbuild.demo.smollm2 import smollm2_checkpoint

        return smollm2_checkpoint()
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(work / "tiny", family="llama", dtype="float32")


def triton_request(server: Any, model: str, tokens: int, stream: bool) -> int:
    """One greedy request over gRPC streaming; returns the tokens generated.

    num_output_tokens is per response (summed here, as Triton's OpenAI frontend does); the CPU reference
    of 2026-11 sends the running total instead, so the largest value counts when the sum overshoots."""
    import queue

    import numpy as np
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    got: queue.Queue[Any] = queue.Queue()
    inputs = []
    for name, arr, dtype in (("text_input", np.array([[PROMPT.encode()]], dtype=object), "BYTES"),
                             ("max_tokens", np.array([[tokens]], dtype=np.int32), "INT32"),
                             ("min_tokens", np.array([[tokens]], dtype=np.int32), "INT32"),
                             ("stream", np.array([[stream]], dtype=bool), "BOOL"),
                             ("return_num_output_tokens", np.array([[True]], dtype=bool), "BOOL")):
        t = grpcclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    total, largest = 0, 0
    client.start_stream(callback=lambda result, error: got.put((result, error)))
    try:
        client.async_stream_infer(model, inputs, enable_empty_final_response=True)
        while True:
            result, error = got.get(timeout=600)
            if error is not None:
                raise RuntimeError(str(error))
            n = result.as_numpy("num_output_tokens")
            value = int(n.reshape(-1)[0]) if n is not None else 0
            total, largest = total + value, max(largest, value)
            if result.get_response().parameters["triton_final_response"].bool_param:
                return total if total <= tokens else largest
    finally:
        client.stop_stream()
        client.close()


def openai_request(url: str, name: str, tokens: int, stream: bool) -> int:
    body = {"model": name, "prompt": PROMPT, "max_tokens": tokens, "min_tokens": tokens, "temperature": 0.0,
            "stream": stream}
    if stream:
        body["stream_options"] = {"include_usage": True}
    req = urllib.request.Request(f"{url}/v1/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as response:
        if not stream:
            return int(json.loads(response.read())["usage"]["completion_tokens"])
        used = 0
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                event = json.loads(line[5:])
                if event.get("usage"):
                    used = int(event["usage"]["completion_tokens"])
        return used


def load(send: Callable[[], int], concurrency: int, requests: int) -> tuple[float, int]:
    """Send ``requests`` requests from ``concurrency`` threads; (tokens/s, tokens)."""
    per = max(1, requests // concurrency)

    def worker(_: int) -> int:
        return sum(send() for _ in range(per))

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        tokens = sum(pool.map(worker, range(concurrency)))
    return tokens / (time.perf_counter() - start), tokens


def cli_flags(engine_args: dict[str, Any]) -> list[str]:
    flags = []
    for key, value in sorted(engine_args.items()):
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                flags.append(flag)
            elif key in ("enable_prefix_caching", "enable_chunked_prefill"):
                flags.append("--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


def start_openai(model: Path, engine_args: dict[str, Any], port: int, log: Path) -> subprocess.Popen[bytes]:
    args = {k: v for k, v in engine_args.items() if k not in ("enable_log_requests",)}
    argv = [str(VLLM_ENV / "bin" / "python"), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--served-model-name", "bench", "--host", "127.0.0.1", "--port", str(port), *cli_flags(args)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LC_ALL": "C.UTF-8"}
    return subprocess.Popen(argv, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                            start_new_session=True)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vLLM's OpenAI server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("vLLM's OpenAI server did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=48)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--skip-reference", action="store_true")
    opts = parser.parse_args()
    if not any(VLLM_ENV.glob(".trtbuild-vllm-*-installed")):
        sys.exit("needs vLLM's environment: `make vllm-venv`")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from trtbuild.backends.vllm.render import render_vllm_repository
    from trtbuild.backends.vllm.settings import vllm_settings
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.repository import render_repository
    from trtbuild.repository.server import TritonServer, free_port

    work = Path(tempfile.mkdtemp(prefix="vllm-bench-"))
    rows: list[tuple[str, str, int, float, int]] = []
    loads: dict[str, float] = {}
    try:
        model = model_dir(opts.model, work)
        (work / "model").symlink_to(model.resolve(), target_is_directory=True)
        (work / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
        plan = make_plan(load_recipe(work / "recipe.yaml"), "cpu")
        render_vllm_repository(plan, out_dir=work / "vllm", hf_model_dir=model)
        render_repository(plan, out_dir=work / "reference", tokenizer_dir=model, hf_model_dir=model)

        def bench(label: str, send: Callable[[bool], int], concurrencies: list[int]) -> None:
            send(False)  # warm-up
            for stream in (False, True):
                for c in concurrencies:
                    rate, tokens = load(lambda s=stream: send(s), c, opts.requests if c > 1 else max(4, c))
                    rows.append((label, "streamed" if stream else "whole", c, rate, tokens))
                    print(f"{label} {'stream' if stream else 'whole'} c={c}: {rate:.0f} tok/s", flush=True)

        for name, repo, kwargs in (("vLLM repository (Triton)", work / "vllm", {"python_env": VLLM_ENV}),
                                   ("CPU reference (Triton)", work / "reference",
                                    {"env": {"TRTBUILD_REFERENCE_THREADS": "1"}})):
            if "reference" in name and opts.skip_reference:
                continue
            started = time.perf_counter()
            with TritonServer(repo, **kwargs) as server:  # type: ignore[arg-type]
                loads[name] = time.perf_counter() - started
                # the reference's ensemble refuses to stream a byte-level tokenizer's text (issue 10): its
                # default entry point, tensorrt_llm_bls, streams
                for entry in (("tensorrt_llm_bls",) if "reference" in name else ("ensemble", "tensorrt_llm_bls")):
                    bench(f"{name}: {entry}", lambda s, e=entry: triton_request(server, e, opts.tokens, s),
                          [1] if "reference" in name else opts.concurrency)

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        proc = start_openai(model, vllm_settings(plan).engine_args, port, work / "openai.log")
        try:
            wait_http(url, proc, 900)
            loads["vLLM OpenAI server"] = time.perf_counter() - started
            bench("vLLM OpenAI server: /v1/completions", lambda s: openai_request(url, "bench", opts.tokens, s),
                  opts.concurrency)
        finally:
            stop(proc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nmodel {opts.model} (fp32), {opts.tokens} tokens per request (greedy, min_tokens = max_tokens)\n")
    print("| server | output | concurrency | tokens/s | tokens |\n|---|---|---|---|---|")
    for label, mode, c, rate, tokens in rows:
        print(f"| {label} | {mode} | {c} | {rate:.0f} | {tokens} |")
    print("\n| server | load (s, to ready) |\n|---|---|")
    for name, seconds in loads.items():
        print(f"| {name} | {seconds:.1f} |")


if __name__ == "__main__":  # vLLM and the servers spawn processes: nothing runs on import
    main()
