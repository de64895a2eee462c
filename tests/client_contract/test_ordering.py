"""Streaming stays in order under several instances and concurrency, with an instant engine.

The CPU reference generates a token every few milliseconds, so responses never overtake each other
behind it; the real engine is fast. The stand-in engine (benchmarks/serving_standin_model.py) answers
64 tokens at once, one response per token, as fast as Triton takes them, and every Python model runs
2 instances. Without `dynamic_batching { preserve_ordering: true }` on postprocessing, streamed
ensemble text came back scrambled here in 28 of 30 requests (issue 10; Triton's own mechanism fixes
it: tensorrtllm_backend issue #614). The tokenizer is character-level, so the ensemble may stream.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import STANDIN_TOKENS, Contract

pytestmark = pytest.mark.slow

PROMPTS = ["the quick brown fox", "你好世界 café", "ünïcode ✓ 🙂 lazy dog", "jumps over the lazy dog 你好",
           "brown 🙂 fox", "café ✓ world"]
COUNTS = {"return_num_input_tokens": True, "return_num_output_tokens": True}


def _concurrently(contract: Contract, model: str, requests: int, workers: int = 16, **params):
    def one(i: int):
        prompt = PROMPTS[i % len(PROMPTS)]
        from . import nvclient

        return prompt, nvclient.grpc_stream(contract.grpc, model, nvclient.inputs(prompt, 100, **params))
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(requests)))


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_streams_join_in_order_under_concurrency(standin: Contract, model: str) -> None:
    whole = {p: standin.ask(model, p, 100, **COUNTS) for p in PROMPTS}
    for answer in whole.values():
        assert answer.error is None, answer.error
        assert answer.completion_tokens[0] == STANDIN_TOKENS
    scrambled = []
    for prompt, answer in _concurrently(standin, model, 48, stream=True, **COUNTS):
        assert answer.error is None, answer.error
        assert answer.responses > 1
        if answer.text() != whole[prompt].text():
            scrambled.append((prompt, answer.chunks[0][:6]))
        assert answer.completion_tokens[0] == STANDIN_TOKENS  # per-response counts sum to the total
        assert answer.prompt_tokens == whole[prompt].prompt_tokens
    assert not scrambled, f"{len(scrambled)} of 48 streams joined to other text, e.g. {scrambled[:2]}"


@pytest.mark.parametrize("stream", [False, True])
def test_batched_bls_request_gets_batch_index_and_each_row_its_text(standin: Contract, stream: bool) -> None:
    rows = PROMPTS[:3]
    batched = standin.ask("tensorrt_llm_bls", rows, 100, stream=stream, **COUNTS)
    assert batched.error is None, batched.error
    assert batched.batch_index_seen and None not in batched.batch_index_seen  # [E2E]: batch_index[0][0]
    for r, prompt in enumerate(rows):
        assert batched.text(r) == standin.ask("tensorrt_llm_bls", prompt, 100).text()
        assert batched.completion_tokens[r] == STANDIN_TOKENS


def test_ensemble_batched_request_gets_batch_index(standin: Contract) -> None:
    rows = PROMPTS[:2]
    batched = standin.ask("ensemble", rows, 100)
    assert batched.error is None, batched.error
    assert sorted(i for i in batched.batch_index_seen if i is not None) == [0, 1]
    for r, prompt in enumerate(rows):
        assert batched.text(r) == standin.ask("ensemble", prompt, 100).text()


def test_coalescing_sends_fewer_responses_with_the_same_text_and_counts(standin_coalescing: Contract) -> None:
    model = "tensorrt_llm_bls"
    whole = {p: standin_coalescing.ask(model, p, 100, **COUNTS) for p in PROMPTS}
    results = _concurrently(standin_coalescing, model, 24, workers=8, stream=True, **COUNTS)
    for prompt, answer in results:
        assert answer.error is None, answer.error
        assert answer.text() == whole[prompt].text()
        assert answer.completion_tokens[0] == STANDIN_TOKENS
    responses = sum(a.responses for _, a in results)
    assert responses < 0.9 * len(results) * STANDIN_TOKENS, "nothing was coalesced behind an instant engine"
