"""The vLLM repository with runtime.streaming: false: not decoupled, so plain HTTP and gRPC infer work."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from vllm_helpers import ask, contract_inputs, needs_vllm

pytestmark = [needs_vllm, pytest.mark.slow]


def _http_infer(server: Any, model: str, prompt: str, max_tokens: int, **params: Any) -> Any:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.http_url)
    inputs = []
    for name, (dtype, arr) in contract_inputs(prompt, max_tokens, **params).items():
        t = httpclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        inputs.append(t)
    try:
        return client.infer(model, inputs)
    finally:
        client.close()


@pytest.mark.parametrize("model", ["ensemble", "tensorrt_llm_bls"])
def test_plain_http_infer(unary_vllm_server: Any, model: str) -> None:
    result = _http_infer(unary_vllm_server, model, "héllo wörld ✓", 16, return_num_output_tokens=True)
    text = result.as_numpy("text_output")
    assert text.shape == (1,)  # 1-D: NVIDIA's clients read text_output[0]
    assert bytes(text[0]).decode("utf-8") == ask(unary_vllm_server, "héllo wörld ✓", 16, model=model).text
    assert 0 < int(result.as_numpy("num_output_tokens")[0, 0]) <= 16


def test_concurrent_unary_requests(unary_vllm_server: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    prompts = [f"Hello world {i}" for i in range(8)]
    alone = [ask(unary_vllm_server, p, 12).text for p in prompts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(lambda p: ask(unary_vllm_server, p, 12).text, prompts))
    assert together == alone


def test_streaming_and_batched_rows_are_refused(unary_vllm_server: Any) -> None:
    from tritonclient.utils import InferenceServerException

    assert "decoupled" in (ask(unary_vllm_server, "Hello world", 8, stream=True).error or "")
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(unary_vllm_server.http_url)
    text = httpclient.InferInput("text_input", [2, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"a"], [b"b"]], dtype=object))
    limit = httpclient.InferInput("max_tokens", [2, 1], "INT32")
    limit.set_data_from_numpy(np.array([[4], [4]], dtype=np.int32))
    with pytest.raises(InferenceServerException, match="decoupled"):
        client.infer("tensorrt_llm_bls", [text, limit])
    client.close()
