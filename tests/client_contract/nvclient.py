"""Clients that consume `ensemble` / `tensorrt_llm_bls` exactly as NVIDIA's clients and Triton's OpenAI
frontend do (our own code, written from reading theirs). Every expectation names its upstream source:

[E2E] triton-inference-server/tensorrtllm_backend @c2e65b88 (r25.05)
      inflight_batcher_llm/client/end_to_end_grpc_client.py: inputs are `[[value]]` arrays
      (`text_input` object, `max_tokens` int32, `stream` bool, `stop_words`/`bad_words`
      `np.array([words])`); gRPC `start_stream` + `async_stream_infer` + `stop_stream`; every response
      is read as `result.as_numpy('text_output')[0].decode("utf-8")` (strict) and, when streaming with
      beam 1, appended to the text of `batch_index[0][0]` (`sequence_index[0][0]`).
[E2E-TEST] same commit, tools/inflight_batcher_llm/end_to_end_test.py: `client.infer` (unary) on the
      ensemble and the BLS with `bad_words`/`stop_words` = `[[""]]`; preprocessing called directly
      and read for `INPUT_ID`, `REQUEST_INPUT_LEN`, `REQUEST_OUTPUT_LEN`, `DECODER_INPUT_ID`,
      `OUT_END_ID`, `OUT_PAD_ID`; postprocessing's `OUTPUT` equals the ensemble's `text_output`.
[OAI] triton-inference-server/server @6297a6be python/openai/openai_frontend/engine/utils/triton.py:
      `_create_trtllm_generate_request` sends `text_input` [[prompt]], `stream` [[bool]], `max_tokens`
      int32 [[n]], `stop_words` [list], `return_num_input_tokens`/`return_num_output_tokens` [[True]];
      `_to_string` needs exactly one string in `text_output` and decodes it strictly;
      `_StreamingUsageAccumulator` takes `num_input_tokens` once and SUMS `num_output_tokens` over the
      streamed responses (INT32 or UINT32); `_validate_triton_responses_non_streaming` accepts 1 or 2
      responses, the last one final.
[CPP] NVIDIA/TensorRT-LLM @0c8de69a triton_backend/inflight_batcher_llm/src/model_instance_state.cc
      `fillTritonResponse`: `num_output_tokens` counts the tokens of that response; `batch_index` [1, 1]
      on every response of a request with more than one row; `exclude_input_in_output` and
      streaming: the prompt is never streamed.
HTTP: Triton's generate extension (`/v2/models/<m>/generate`, `/generate_stream` server-sent events);
      strict JSON parsers need every body to be valid UTF-8.
"""

from __future__ import annotations

import json
import queue
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

TYPES = {"max_tokens": np.int32, "end_id": np.int32, "pad_id": np.int32, "top_k": np.int32, "beam_width": np.int32,
         "min_tokens": np.int32, "num_return_sequences": np.int32, "seed": np.uint64,
         "prompt_table_extra_id": np.uint64, "temperature": np.float32, "top_p": np.float32,
         "repetition_penalty": np.float32, "presence_penalty": np.float32, "frequency_penalty": np.float32,
         "length_penalty": np.float32, "embedding_bias_weights": np.float32}
LISTS = ("stop_words", "bad_words", "embedding_bias_words", "embedding_bias_weights")


class ContractViolation(AssertionError):
    """A response NVIDIA's clients or the OpenAI frontend could not consume."""


@dataclass
class Answer:
    """What a client made of one request's responses."""

    chunks: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    """Per batch index: every response's `text_output[0]`, decoded strictly."""
    prompt_tokens: int | None = None
    completion_tokens: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    """Per batch index: `num_output_tokens` summed over the responses [OAI]."""
    batch_index_seen: list[int | None] = field(default_factory=list)
    responses: int = 0
    error: str | None = None

    def text(self, row: int = 0) -> str:
        return "".join(self.chunks.get(row, []))


def inputs(prompt: str | list[str], max_tokens: int, **params: Any) -> dict[str, np.ndarray]:
    """Client tensors as NVIDIA's clients build them [E2E]; a list of prompts is a batched request."""
    prompts = prompt if isinstance(prompt, list) else [prompt]
    rows = len(prompts)
    out = {"text_input": np.array([[p.encode() if isinstance(p, str) else p] for p in prompts], dtype=object),
           "max_tokens": np.full((rows, 1), max_tokens, dtype=np.int32)}
    for name, value in params.items():
        if value is None:
            continue
        if name in LISTS:
            dtype = TYPES.get(name, object)
            row = [v.encode() if isinstance(v, str) else v for v in value]
            out[name] = np.array([row] * rows, dtype=dtype)
        elif isinstance(value, (str, bytes)):
            out[name] = np.array([[value.encode() if isinstance(value, str) else value]] * rows, dtype=object)
        elif isinstance(value, bool):
            out[name] = np.full((rows, 1), value, dtype=bool)
        else:
            out[name] = np.full((rows, 1), value, dtype=TYPES.get(name, np.int32))
    return out


def read_response(answer: Answer, get: Any) -> None:
    """One response, as [E2E] and [OAI] read it."""
    answer.responses += 1
    index = get("batch_index")
    row = 0 if index is None else int(index[0][0])
    answer.batch_index_seen.append(None if index is None else row)
    text = get("text_output")
    if text is not None:
        if text.ndim != 1:
            raise ContractViolation(f"text_output has shape {text.shape}: NVIDIA's clients read text_output[0] "
                                    "and decode it, so it must be 1-D (one string per beam)")
        if text.size != 1:
            raise ContractViolation(f"text_output holds {text.size} strings; the OpenAI frontend needs exactly one")
        try:
            answer.chunks[row].append(text[0].decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ContractViolation(f"response {answer.responses} is not valid UTF-8: {text[0]!r} ({exc})") from None
    prompt, completion = get("num_input_tokens"), get("num_output_tokens")
    if prompt is not None and answer.prompt_tokens is None:
        answer.prompt_tokens = int(prompt.reshape(-1)[0])
    if completion is not None:
        answer.completion_tokens[row] += int(completion.reshape(-1)[0])


def _grpc_inputs(module: Any, tensors: dict[str, np.ndarray]) -> list[Any]:
    from tritonclient.utils import np_to_triton_dtype

    out = []
    for name, arr in tensors.items():
        t = module.InferInput(name, list(arr.shape), "BYTES" if arr.dtype == object else np_to_triton_dtype(arr.dtype))
        t.set_data_from_numpy(arr)
        out.append(t)
    return out


def grpc_stream(url: str, model: str, tensors: dict[str, np.ndarray], outputs: list[str] | None = None) -> Answer:
    """[E2E]: start_stream, async_stream_infer, stop_stream (waits for the end), then read every result."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    results: queue.Queue[Any] = queue.Queue()

    def callback(store: queue.Queue[Any], result: Any, error: Any) -> None:
        store.put(error if error is not None else result)

    client = grpcclient.InferenceServerClient(url)
    answer = Answer()
    try:
        client.start_stream(callback=partial(callback, results))
        requested = [grpcclient.InferRequestedOutput(n) for n in outputs] if outputs else None
        client.async_stream_infer(model, _grpc_inputs(grpcclient, tensors), outputs=requested, request_id="1")
        client.stop_stream()
        while not results.empty():
            item = results.get()
            if isinstance(item, InferenceServerException):
                answer.error = item.message()
                continue
            read_response(answer, item.as_numpy)
    finally:
        client.close()
    return answer


def grpc_unary(url: str, model: str, tensors: dict[str, np.ndarray]) -> Answer:
    """[E2E-TEST]: `client.infer` (gRPC ModelInfer): one response."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url)
    answer = Answer()
    try:
        read_response(answer, client.infer(model, _grpc_inputs(grpcclient, tensors)).as_numpy)
    except InferenceServerException as exc:
        answer.error = exc.message()
    finally:
        client.close()
    return answer


def _json_value(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _read_event(answer: Answer, event: dict[str, Any]) -> None:
    if "error" in event:
        answer.error = str(event["error"])
        return

    def get(name: str) -> np.ndarray | None:
        if name not in event:
            return None
        value = event[name]
        if name == "text_output":
            items = value if isinstance(value, list) else [value]
            return np.array([str(v).encode() for v in items], dtype=object)
        return np.array(value).reshape(1, -1)
    read_response(answer, get)


def http_generate(url: str, model: str, payload: dict[str, Any], *, stream: bool = False,
                  timeout: float = 300) -> Answer:
    """Triton's generate extension; every body parsed as strict UTF-8 JSON."""
    body = json.dumps({k: _json_value(v) for k, v in payload.items()}).encode()
    endpoint = "generate_stream" if stream else "generate"
    request = urllib.request.Request(f"http://{url}/v2/models/{model}/{endpoint}", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    answer = Answer()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if not stream:
                _read_event(answer, _strict_json(response.read()))
                return answer
            for raw in response:
                line = raw.strip()
                if line.startswith(b"data:"):
                    _read_event(answer, _strict_json(line[5:]))
    except urllib.error.HTTPError as exc:
        answer.error = f"HTTP {exc.code}: {exc.read().decode('utf-8', 'replace')}"
    return answer


def _strict_json(raw: bytes) -> dict[str, Any]:
    try:
        return dict(json.loads(raw.decode("utf-8")))
    except UnicodeDecodeError as exc:
        raise ContractViolation(f"HTTP body is not valid UTF-8 ({exc}): {raw[:200]!r}") from None
