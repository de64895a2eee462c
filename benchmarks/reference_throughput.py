"""Decoding throughput of the CPU reference `tensorrt_llm` (the tests and the demo serve it).

    .venv/bin/python benchmarks/reference_throughput.py [--tokens 32] [--requests 16] [--model-py OLD.py]

Renders the tiny demo model's reference repository, starts the real tritonserver from nvidia-pytriton
(TRTBUILD_REFERENCE_THREADS=1) and sends `--requests` direct `tensorrt_llm` requests of `--tokens` tokens
each (end_id -1, so every request generates exactly that many), one at a time and then all at once,
non-streamed and streamed, over gRPC streaming. `--model-py` swaps in another model.py (e.g. the previous
reference: `git show 3faa2e3:repo_templates/tensorrt_llm/model.py > /tmp/old.py`) for comparison.
Prints a markdown table. Client and server share this machine's cores. `--in-process` instead times the
reference's decoding loop against transformers' `generate` for one request, without Triton (1 thread).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RECIPE = """\
recipe: 1
name: reference-bench
model:
  source: model
build:
  max_batch_size: 16
  max_input_len: 128
  max_seq_len: 256
runtime:
  streaming: true
"""


def build_repository(work: Path, model_py: Path | None) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.repository import render_repository

    model = make_tiny_model(work / "model")
    (work / "recipe.yaml").write_text(RECIPE, encoding="utf-8")
    repo = work / "repo"
    render_repository(make_plan(load_recipe(work / "recipe.yaml"), "cpu"), out_dir=repo, tokenizer_dir=model,
                      hf_model_dir=model)
    if model_py is not None:
        trt = repo / "models" / "tensorrt_llm"
        shutil.copy(model_py, trt / "1" / "model.py")
        with open(trt / "config.pbtxt", "a", encoding="utf-8") as f:  # parameters older versions read
            for key, value in (("reference_end_id", "2"), ("reference_pad_id", "0")):
                f.write(f'parameters {{ key: "{key}" value {{ string_value: "{value}" }} }}\n')
    return repo


def one(url: str, tokens: int, stream: bool, k: int, latencies: list[float]) -> None:
    from tests.reference.helpers import ask, tensors

    class Server:
        grpc_url = url

    prompt = [1] + [40 + (k * 7 + i) % 400 for i in range(12)]
    start = time.perf_counter()
    got = ask(Server, tensors(prompt, tokens, end_id=-1, streaming=stream))
    assert got[-1].error is None, got[-1].error
    latencies.append(time.perf_counter() - start)


def run(url: str, tokens: int, requests: int, stream: bool, concurrent: bool) -> tuple[float, float]:
    latencies: list[float] = []
    start = time.perf_counter()
    if concurrent:
        threads = [threading.Thread(target=one, args=(url, tokens, stream, k, latencies)) for k in range(requests)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for k in range(requests):
            one(url, tokens, stream, k, latencies)
    wall = time.perf_counter() - start
    latencies.sort()
    return requests * tokens / wall, latencies[len(latencies) // 2] * 1000


def in_process(tokens: int, runs: int = 10) -> None:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from tests.reference.helpers import tensors
    from trtbuild.demo.tiny_model import make_tiny_model
    from trtbuild.repository.render import TEMPLATES_DIR

    sys.path.insert(0, str(TEMPLATES_DIR / "tensorrt_llm"))
    from reference_generate import Generator, Seq
    from reference_requests import Limits, make_requests, validate

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = AutoModelForCausalLM.from_pretrained(make_tiny_model(Path(tmp) / "m"), dtype=torch.float16)
    model.eval()
    model.generation_config = GenerationConfig()
    vocab = int(model.get_output_embeddings().weight.shape[0])
    limits = Limits(decoupled=True, exclude_input_param=True, max_input_len=128, max_seq_len=256,
                    max_beam_width=1, vocab_size=vocab)
    gen = Generator(model, torch, logits_dtype=np.float32, tokens_per_block=32, vocab_size=vocab)
    prompt = [1] + list(range(40, 52))

    def reference() -> None:
        (req,) = make_requests(tensors(prompt, tokens, end_id=-1), limits)
        gen.run([Seq(validate(req, limits), 0, 1, 0)], lambda *a: None, lambda s: None)

    def transformers_generate() -> None:
        ids = torch.tensor([prompt])
        with torch.inference_mode():
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, min_new_tokens=tokens,
                           do_sample=False, pad_token_id=0)

    print(f"| loop | ms per request of {tokens} tokens (median of {runs}) |\n|---|---:|")
    for fn in (reference, transformers_generate):
        fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        print(f"| {fn.__name__} | {sorted(times)[runs // 2] * 1000:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--model-py", type=Path, default=None)
    parser.add_argument("--in-process", action="store_true")
    args = parser.parse_args()
    if args.in_process:
        in_process(args.tokens)
        return
    from trtbuild.repository.server import TritonServer

    with tempfile.TemporaryDirectory() as tmp:
        repo = build_repository(Path(tmp), args.model_py)
        server = TritonServer(repo, env={"TRTBUILD_REFERENCE_THREADS": "1"})
        server.start(timeout=300)
        try:
            run(server.grpc_url, 4, 2, False, False)  # warm up
            print(f"model.py: {args.model_py or 'repo_templates/tensorrt_llm/model.py'}; {args.requests} requests "
                  f"x {args.tokens} tokens\n\n| mode | requests | tokens/s | p50 latency ms |\n|---|---|---:|---:|")
            for stream in (False, True):
                for concurrent in (False, True):
                    rate, p50 = run(server.grpc_url, args.tokens, args.requests, stream, concurrent)
                    print(f"| {'stream' if stream else 'whole'} | {'all at once' if concurrent else 'one at a time'} "
                          f"| {rate:.0f} | {p50:.0f} |")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
