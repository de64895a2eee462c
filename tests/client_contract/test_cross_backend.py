"""Issue 13 item 4: greedy decoding of the same fp32 weights gives the same tokens on every backend.

The engine path's CPU reference repository of SmolLM2-135M-Instruct and the `contract` server of another
backend (vLLM's CPU build; the LLM-API repository with its test double) answer the same prompts, read
through the same NVIDIA-style clients (nvclient.py): the same text and the same `num_output_tokens`, at
max_tokens that cut inside multi-byte characters too (the U+FFFD ending must agree). Same text at every
prefix length k with the same count k means the same token sequence up to tokenization of the text.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import ONE_STEP, Contract, only, render, serve

pytestmark = pytest.mark.slow

PROMPTS = ["日本の首都は", "한국어로 인사해 주세요:", "Emoji story: 🙂🚀🎉", "The capital of France is",
           "Café naïve résumé — über"]
COUNTS = {"return_num_input_tokens": True, "return_num_output_tokens": True}


@pytest.fixture(scope="module")
def engine_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    """The engine path's CPU reference of SmolLM2 (fp32), one instance of each model."""
    from trtbuild.demo.smollm2 import smollm2_checkpoint

    repo = render(tmp_path_factory.mktemp("cross-reference"), smollm2_checkpoint(), streaming=True, instances=1)
    for server in serve(repo):
        yield Contract(grpc=server.grpc_url, http=server.http_url, local=True)


def test_greedy_tokens_match_the_cpu_reference(contract: Contract, request: pytest.FixtureRequest) -> None:
    only(contract, *ONE_STEP, why="the reference itself")
    engine_reference: Contract = request.getfixturevalue("engine_reference")
    for prompt in PROMPTS:
        for k in (1, 2, 3, 12):
            theirs = engine_reference.ask("tensorrt_llm_bls", prompt, k, **COUNTS)
            ours = contract.ask("tensorrt_llm_bls", prompt, k, **COUNTS)
            assert theirs.error is None and ours.error is None, (theirs.error, ours.error)
            assert ours.text() == theirs.text(), (prompt, k)
            assert ours.completion_tokens[0] == theirs.completion_tokens[0], (prompt, k)
            assert ours.prompt_tokens == theirs.prompt_tokens, prompt
        streamed = contract.ask("ensemble", prompt, 12, stream=True, **COUNTS)
        assert streamed.error is None and streamed.text() == theirs.text(), prompt
