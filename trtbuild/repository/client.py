"""A small client of the generated repository's contract (`ensemble` / `tensorrt_llm_bls`).

gRPC streaming (`ModelStreamInfer`) works for decoupled and non-decoupled models alike, so it is the
default; `generate_http` uses Triton's HTTP `generate` / `generate_stream` endpoints. Token counts are
read as Triton's OpenAI frontend reads them: `num_input_tokens` once, `num_output_tokens` summed over
the responses of a stream.
"""

from __future__ import annotations

import json
import queue
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from trtbuild.errors import RepositoryError

NUMPY_TYPES: dict[str, tuple[str, Any]] = {
    "text_input": ("BYTES", object), "system_prompt": ("BYTES", object), "stop_words": ("BYTES", object),
    "bad_words": ("BYTES", object), "max_tokens": ("INT32", np.int32), "end_id": ("INT32", np.int32),
    "pad_id": ("INT32", np.int32), "top_k": ("INT32", np.int32), "min_tokens": ("INT32", np.int32),
    "beam_width": ("INT32", np.int32), "seed": ("UINT64", np.uint64), "top_p": ("FP32", np.float32),
    "temperature": ("FP32", np.float32), "repetition_penalty": ("FP32", np.float32),
    "presence_penalty": ("FP32", np.float32), "frequency_penalty": ("FP32", np.float32),
    "length_penalty": ("FP32", np.float32),
}


@dataclass
class Generation:
    text: str = ""
    chunks: list[bytes] = field(default_factory=list)
    num_input_tokens: int | None = None
    num_output_tokens: int | None = None
    error: str | None = None


def build_inputs(prompt: str, max_tokens: int, **params: Any) -> dict[str, npt.NDArray[Any]]:
    """Client tensors, batch of one: strings, ints, floats and bools by the contract's types."""
    values: dict[str, Any] = {"text_input": prompt, "max_tokens": max_tokens, **params}
    out: dict[str, npt.NDArray[Any]] = {}
    for name, value in values.items():
        if value is None:
            continue
        _, dtype = NUMPY_TYPES.get(name, ("BOOL", bool) if isinstance(value, bool) else ("INT32", np.int32))
        if isinstance(value, (list, tuple)):
            arr = np.array([[v.encode() if isinstance(v, str) else v for v in value]], dtype=dtype)
        else:
            arr = np.array([[value.encode() if isinstance(value, str) else value]], dtype=dtype)
        out[name] = arr
    return out


def _triton_dtype(arr: npt.NDArray[Any]) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return "BYTES" if arr.dtype == object else str(np_to_triton_dtype(arr.dtype))


def generate_grpc(url: str, model: str, inputs: dict[str, npt.NDArray[Any]], *, timeout: float = 120.0) -> Generation:
    """One request over gRPC streaming; collects every response until the final one."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(url)
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    tensors = []
    for name, arr in inputs.items():
        t = grpcclient.InferInput(name, list(arr.shape), _triton_dtype(arr))
        t.set_data_from_numpy(arr)
        tensors.append(t)
    gen = Generation()
    try:
        client.start_stream(callback=lambda result, error: results.put((result, error)))
        try:
            client.async_stream_infer(model, tensors, enable_empty_final_response=True)
        except InferenceServerException as exc:  # the stream broke before the request left
            results.put((None, exc))
        while True:
            try:
                result, error = results.get(timeout=timeout)
            except queue.Empty:
                raise RepositoryError(f"{model}: no response within {timeout:.0f}s") from None
            if error is not None:
                gen.error = str(error)
                break
            response = result.get_response()
            if response.outputs:
                _collect(gen, result.as_numpy)
            if response.parameters["triton_final_response"].bool_param:
                break
    finally:
        client.stop_stream(cancel_requests=gen.error is not None)
        client.close()
    gen.text = b"".join(gen.chunks).decode("utf-8", "replace")
    return gen


def _collect(gen: Generation, get: Any) -> None:
    text = get("text_output")
    if text is not None:
        gen.chunks.append(b"".join(x if isinstance(x, bytes) else str(x).encode() for x in text.reshape(-1)[:1]))
    _count(gen, get("num_input_tokens"), get("num_output_tokens"))


def _count(gen: Generation, prompt: Any, completion: Any) -> None:
    """num_input_tokens once; num_output_tokens summed (streamed responses count their own tokens)."""
    if prompt is not None and gen.num_input_tokens is None:
        gen.num_input_tokens = int(np.asarray(prompt).reshape(-1)[0])
    if completion is not None:
        gen.num_output_tokens = (gen.num_output_tokens or 0) + int(np.asarray(completion).reshape(-1)[0])


def generate_http(url: str, model: str, payload: dict[str, Any], *, stream: bool = False,
                  timeout: float = 120.0) -> Generation:
    """One request over Triton's HTTP generate extension (`generate` or `generate_stream`)."""
    endpoint = "generate_stream" if stream else "generate"
    body = json.dumps(payload).encode()
    request = urllib.request.Request(f"http://{url}/v2/models/{model}/{endpoint}", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    gen = Generation()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            # Triton writes BYTES outputs into JSON strings as they are: a chunk may hold part of a
            # UTF-8 character, so read with surrogateescape and give the chunk its exact bytes back.
            if not stream:
                _collect_json(gen, json.loads(response.read().decode("utf-8", "surrogateescape")))
            else:
                for raw in response:
                    line = raw.decode("utf-8", "surrogateescape").strip()
                    if line.startswith("data:"):
                        event = json.loads(line[5:])
                        if "error" in event:
                            gen.error = str(event["error"])
                            break
                        _collect_json(gen, event)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")
        gen.error = f"HTTP {exc.code}: {detail}"
    gen.text = b"".join(gen.chunks).decode("utf-8", "replace")
    return gen


def _collect_json(gen: Generation, event: dict[str, Any]) -> None:
    if "error" in event:
        gen.error = str(event["error"])
        return
    text = event.get("text_output")
    if text is not None:
        gen.chunks.append((text[0] if isinstance(text, list) else str(text)).encode("utf-8", "surrogateescape"))
    _count(gen, event.get("num_input_tokens"), event.get("num_output_tokens"))
