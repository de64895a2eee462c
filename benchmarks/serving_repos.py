"""Repositories and a client driver shared by the serving benchmarks (serving_overhead.py, serving_cpu.py).

Two repositories, both with an instant stand-in `tensorrt_llm` (benchmarks/serving_standin_model.py), so
what is measured is the serving path around the engine:

- ours: the tiny demo model's CPU-reference repository rendered by trtbuild;
- NVIDIA's: their `all_models/inflight_batcher_llm` templates, filled here (their own placeholders,
  our values) with the stand-in copied over their `tensorrt_llm/1/model.py`. Nothing of theirs is in
  this project: point `--reference-models` at a copy, e.g.

      git -C /work/.mirror/triton-inference-server+tensorrtllm_backend/repo archive c2e65b88 all_models \
          | tar -x -C /tmp/nv          # tensorrtllm_backend r25.05; then DIR=/tmp/nv/all_models/inflight_batcher_llm

  or NVIDIA/TensorRT-LLM `triton_backend/all_models/inflight_batcher_llm` from a checkout. Their
  preprocessing imports `PIL` and `requests`, their BLS `torch`: `pip install pillow requests` into
  the venv first.
"""

from __future__ import annotations

import asyncio
import queue
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
  end_ids: [2]  # the tokenizer's eos only, as NVIDIA's preprocessing (same work on both sides)
{extra}"""
REQUEST_TIMEOUT_S = 120.0
"""A request not done by then counts as an error (a server that lost it must not hang the benchmark)."""
NVIDIA_MODELS = ("preprocessing", "postprocessing", "tensorrt_llm", "tensorrt_llm_bls", "ensemble")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def install_standin(models: Path, tokens: int) -> None:
    """Replace `models/tensorrt_llm` with the instant stand-in (Python backend, `tokens` per request)."""
    trt = models / "tensorrt_llm"
    shutil.copy(ROOT / "benchmarks" / "serving_standin_model.py", trt / "1" / "model.py")
    config = (trt / "config.pbtxt").read_text(encoding="utf-8")
    config = re.sub(r'^backend:\s*"[^"]*"', 'backend: "python"', config, flags=re.M)
    config += f'\nparameters {{ key: "standin_tokens" value {{ string_value: "{tokens}" }} }}\n'
    (trt / "config.pbtxt").write_text(config, encoding="utf-8")


def build_ours(work: Path, instances: int, tokens: int, *, serving_extra: str = "", model: Path | None = None) -> Path:
    """trtbuild's repository of the tiny demo model (made in `work`, or `model`), `tensorrt_llm` swapped
    for the stand-in."""
    from trtbuild.demo.tiny_model import make_tiny_model
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.repository import render_repository

    model = model or work / "model"
    if not model.exists():
        make_tiny_model(model)
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "model").exists():
        (work / "model").symlink_to(model.resolve(), target_is_directory=True)
    (work / "recipe.yaml").write_text(RECIPE.format(n=instances, extra=serving_extra), encoding="utf-8")
    repo = work / "ours"
    render_repository(make_plan(load_recipe(work / "recipe.yaml"), "cpu"), out_dir=repo, tokenizer_dir=model,
                      hf_model_dir=model)
    install_standin(repo / "models", tokens)
    return repo


def nvidia_models_dir(path: Path) -> Path:
    """`inflight_batcher_llm` itself, or a folder above it (`all_models`, a checkout's root)."""
    for candidate in (path, path / "inflight_batcher_llm", path / "all_models" / "inflight_batcher_llm",
                      path / "triton_backend" / "all_models" / "inflight_batcher_llm"):
        if all((candidate / m / "config.pbtxt").is_file() for m in NVIDIA_MODELS):
            return candidate
    raise SystemExit(f"{path}: no NVIDIA inflight_batcher_llm models there (need {', '.join(NVIDIA_MODELS)})")


def fill_placeholders(text: str, values: dict[str, str]) -> str:
    """Their `${name}` placeholders; ones left in string values are what their docs leave unset."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def build_nvidia(work: Path, source: Path, model_dir: Path, instances: int, tokens: int, *,
                 accumulate_tokens: bool = False) -> Path:
    """NVIDIA's reference models, filled as their streaming recipe does (decoupled), stand-in engine."""
    src = nvidia_models_dir(Path(source))
    repo = work / "nvidia"
    models = repo / "models"
    shutil.rmtree(repo, ignore_errors=True)
    values = {
        "triton_max_batch_size": "64", "decoupled_mode": "true", "max_queue_delay_microseconds": "0",
        "max_queue_size": "0", "tokenizer_dir": str(model_dir), "add_special_tokens": "true",
        "skip_special_tokens": "true", "preprocessing_instance_count": str(instances),
        "postprocessing_instance_count": str(instances), "bls_instance_count": str(instances),
        "accumulate_tokens": "true" if accumulate_tokens else "false", "logits_datatype": "TYPE_FP32",
        "encoder_input_features_data_type": "TYPE_FP16", "prompt_embedding_table_data_type": "TYPE_FP16",
        "triton_backend": "python", "batching_strategy": "inflight_fused_batching", "max_beam_width": "1",
        "engine_dir": str(work / "no-engine"), "exclude_input_in_output": "true",
        "enable_kv_cache_reuse": "false", "tensorrt_llm_model_name": "tensorrt_llm",
    }
    for name in NVIDIA_MODELS:
        shutil.copytree(src / name, models / name, ignore=shutil.ignore_patterns("__pycache__"))
        config = models / name / "config.pbtxt"
        config.write_text(fill_placeholders(config.read_text(encoding="utf-8"), values), encoding="utf-8")
    (models / "ensemble" / "1").mkdir(exist_ok=True)
    install_standin(models, tokens)
    return models


# ------------------------------------------------------------------------------------------ client
@dataclass
class Outcome:
    requests: int = 0
    client_cpu: float = 0.0
    responses: int = 0
    bad_utf8: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] | None = None
    first_error: str = ""


async def _one(client, model: str, inputs: list, outcome: Outcome) -> float:
    """One request as NVIDIA's clients consume it: every response's text_output[0], decoded strictly."""
    t0 = time.perf_counter()

    async def requests():
        yield {"model_name": model, "inputs": inputs}

    async for result, error in client.stream_infer(requests()):
        if error is not None:
            outcome.errors += 1
            outcome.first_error = outcome.first_error or str(error)
            break
        text = result.as_numpy("text_output")
        if text is not None:
            outcome.responses += 1
            try:
                text[0].decode("utf-8")
            except (UnicodeDecodeError, AttributeError):
                outcome.bad_utf8 += 1
        if result.get_response().parameters["triton_final_response"].bool_param:
            break
    return time.perf_counter() - t0


async def drive(url: str, model: str, concurrency: int, seconds: float, stream: bool, max_tokens: int,
                on_start=None) -> Outcome:
    """Closed loop: `concurrency` workers send requests back to back for `seconds` (after a warm-up)."""
    import tritonclient.grpc.aio as aioclient

    def tensor(name, arr, dtype):
        t = aioclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        return t

    inputs = [tensor("text_input", np.array([[PROMPT.encode()]], dtype=object), "BYTES"),
              tensor("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32"),
              tensor("stream", np.array([[stream]], dtype=bool), "BOOL")]
    clients = [aioclient.InferenceServerClient(url) for _ in range(min(concurrency, 8))]
    warm = Outcome()
    for _ in range(3):
        await _one(clients[0], model, inputs, warm)
    outcome = Outcome(latencies=[])
    if warm.errors:
        outcome.errors = warm.errors
        for c in clients:
            await c.close()
        return outcome
    deadline = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        client = clients[i % len(clients)]
        while time.perf_counter() < deadline:
            try:
                outcome.latencies.append(await asyncio.wait_for(_one(client, model, inputs, outcome), REQUEST_TIMEOUT_S))
                outcome.requests += 1
            except asyncio.TimeoutError:
                outcome.errors += 1
                outcome.first_error = outcome.first_error or f"no answer within {REQUEST_TIMEOUT_S:.0f} s"

    if on_start is not None:
        on_start()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    outcome.seconds = time.perf_counter() - t0
    for c in clients:
        await c.close()
    return outcome


def run_drive(url: str, model: str, concurrency: int, seconds: float, stream: bool, max_tokens: int,
              on_start=None) -> Outcome:
    return asyncio.run(drive(url, model, concurrency, seconds, stream, max_tokens, on_start))


def _child(args: tuple, ready: Any, go: Any, out: Any) -> None:
    holder: dict[str, float] = {}

    def start() -> None:
        ready.set()
        go.wait()
        holder["cpu0"] = time.process_time()
    outcome = run_drive(*args, on_start=start)
    outcome.client_cpu = time.process_time() - holder.get("cpu0", time.process_time())
    out.put(outcome)


def drive_in_child(url: str, model: str, concurrency: int, seconds: float, stream: bool, max_tokens: int,
                   on_start=None) -> Outcome:
    """run_drive in a fresh process: the client's CPU (`Outcome.client_cpu`) is its own work in the
    measured window, with no threads left over from earlier runs. `on_start` runs in this process
    right before the window opens."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_child, args=((url, model, concurrency, seconds, stream, max_tokens), ready, go, out))
    child.start()
    try:
        while not ready.wait(1.0):
            if not child.is_alive():
                break
        if ready.is_set() and on_start is not None:
            on_start()
        go.set()
        try:
            outcome = out.get(timeout=seconds + REQUEST_TIMEOUT_S + 120)
        except queue.Empty:
            outcome = Outcome(errors=1)
    finally:
        child.join(30)
        if child.is_alive():
            child.kill()
    return outcome


def text_loop(model_dir: Path, tokens: int, seconds: float) -> tuple[int, float, float]:
    """The text work of one request in this process, back to back: tokenize the prompt, stream-decode
    `tokens` tokens. Returns (requests, wall seconds, CPU seconds): the floor of any serving path."""
    sys.path.insert(0, str(ROOT / "repo_templates" / "lib"))
    from trtbuild_text import TextCodec

    codec = TextCodec(str(model_dir), add_special_tokens=True, skip_special_tokens=True)
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        ids = codec.encode_batch([PROMPT])[0]
        det = codec.stream()
        text = "".join(det.push([ids[i % len(ids)]]) for i in range(tokens)) + det.finish()
        assert text
        n += 1
    return n, time.perf_counter() - wall0, time.process_time() - cpu0
