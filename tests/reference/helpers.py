"""Direct `tensorrt_llm` requests over gRPC streaming, every response kept (outputs, final flag, error)."""

from __future__ import annotations

import queue
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import trtbuild

SEMANTICS = Path(trtbuild.__file__).resolve().parent / "contracts" / "trtllm_1_2" / "backend_semantics.json"

DTYPES = {"input_ids": np.int32, "input_lengths": np.int32, "request_output_len": np.int32, "end_id": np.int32,
          "pad_id": np.int32, "beam_width": np.int32, "runtime_top_k": np.int32, "min_tokens": np.int32,
          "num_return_sequences": np.int32, "seed": np.uint64, "stop_words_list": np.int32,
          "bad_words_list": np.int32, "retention_token_range_starts": np.int32,
          "retention_token_range_ends": np.int32, "retention_token_range_priorities": np.int32,
          "early_stopping": np.bool_}
FLOATS = ("temperature", "runtime_top_p", "runtime_top_p_min", "runtime_top_p_decay", "len_penalty",
          "repetition_penalty", "presence_penalty", "frequency_penalty", "beam_search_diversity_rate",
          "embedding_bias")


@dataclass
class Response:
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    final: bool = False
    error: str | None = None

    def ids(self, beam: int = 0) -> list[int]:
        out, lengths = self.arrays["output_ids"], self.arrays["sequence_length"]
        return [int(v) for v in out[0, beam, : int(lengths[0, beam])]]

    def scalar(self, name: str) -> Any:
        return self.arrays[name].reshape(-1)[0].item()


def tensors(prompt: list[int] | list[list[int]], max_new: int, lengths: list[int] | None = None,
            **params: Any) -> dict[str, np.ndarray]:
    """`tensorrt_llm` inputs, one row per prompt (rows padded with 0 unless `lengths` says otherwise)."""
    rows = prompt if prompt and isinstance(prompt[0], list) else [prompt]
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), dtype=np.int32)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
    n = len(rows)
    out = {"input_ids": ids,
           "input_lengths": np.array([[v] for v in (lengths or [len(r) for r in rows])], dtype=np.int32),
           "request_output_len": np.full((n, 1), max_new, dtype=np.int32)}
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, np.ndarray):
            out[name] = value
            continue
        dtype = DTYPES.get(name, np.float32 if name in FLOATS else (np.bool_ if isinstance(value, bool) else np.int32))
        out[name] = np.array([[value]] * n, dtype=dtype)
    return out


CONTEXT = {"vocab_size": 512, "max_input_len": 64, "max_input_len_plus_one": 65, "max_beam_width": 2,
           "max_beam_width_plus_one": 3, "max_seq_len": 512}
"""The tiny model's vocabulary and the test recipe's limits, for the fixture's "{...}" placeholders."""


def case_tensors(case: dict[str, Any], prompt: list[int]) -> dict[str, np.ndarray]:
    """The inputs of one backend_semantics.json validation case (placeholders filled from CONTEXT)."""
    def fill(value: Any) -> Any:
        return int(value.format(**CONTEXT)) if isinstance(value, str) and value.startswith("{") else value

    params: dict[str, Any] = {}
    for name, value in case["inputs"].items():
        if name == "input_ids":
            prompt = list(range(1, fill(value) + 1))
        elif isinstance(value, list):
            params[name] = np.array(value, dtype=np.int32)
        elif isinstance(value, str) and not value.startswith("{"):
            params[name] = np.array([[value.encode()]], dtype=object)
        else:
            params[name] = fill(value)
    return tensors(prompt, params.pop("request_output_len", 4), **params)


def _input(name: str, arr: np.ndarray) -> Any:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import np_to_triton_dtype

    t = grpcclient.InferInput(name, list(arr.shape), "BYTES" if arr.dtype == object else np_to_triton_dtype(arr.dtype))
    t.set_data_from_numpy(arr)
    return t


class Stream:
    """One gRPC stream to the server; several requests may be in flight on it."""

    def __init__(self, url: str) -> None:
        import tritonclient.grpc as grpcclient

        self.client = grpcclient.InferenceServerClient(url)
        self.results: queue.Queue[tuple[Any, Any]] = queue.Queue()
        self.client.start_stream(callback=lambda result, error: self.results.put((result, error)))

    def send(self, inputs: dict[str, np.ndarray], request_id: str = "", outputs: list[str] | None = None,
             model: str = "tensorrt_llm") -> None:
        import tritonclient.grpc as grpcclient

        wanted = [grpcclient.InferRequestedOutput(n) for n in outputs] if outputs else None
        self.client.async_stream_infer(model, [_input(k, v) for k, v in inputs.items()], request_id=request_id,
                                       outputs=wanted, enable_empty_final_response=True)

    def next(self, timeout: float = 60.0) -> tuple[str, Response]:
        result, error = self.results.get(timeout=timeout)
        if error is not None:
            return "", Response(final=True, error=str(error))
        response = result.get_response()
        arrays = {o.name: result.as_numpy(o.name) for o in response.outputs}
        return response.id, Response(arrays, bool(response.parameters["triton_final_response"].bool_param))

    def close(self, cancel: bool = False) -> None:
        self.client.stop_stream(cancel_requests=cancel)
        self.client.close()


def ask(server: Any, inputs: dict[str, np.ndarray], *, outputs: list[str] | None = None,
        model: str = "tensorrt_llm", timeout: float = 60.0) -> list[Response]:
    """Every response of one request, up to and including the final one."""
    stream = Stream(server.grpc_url)
    try:
        stream.send(inputs, outputs=outputs, model=model)
        got: list[Response] = []
        while not got or not got[-1].final:
            got.append(stream.next(timeout)[1])
        return got
    finally:
        stream.close()


def tokens(responses: list[Response], beam: int = 0) -> list[int]:
    return [t for r in responses if "output_ids" in r.arrays for t in r.ids(beam)]
