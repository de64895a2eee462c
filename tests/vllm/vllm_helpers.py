"""Shared by the vLLM backend tests (a module name no other test directory uses: no `vllm` package here,
which would shadow the real one)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
VLLM_ENV = Path(os.environ.get("TRTBUILD_VLLM_ENV", ROOT / ".venv-vllm"))
VLLM_READY = any(VLLM_ENV.glob(".trtbuild-vllm-*-installed"))
LOAD_TIMEOUT_S = 600

REQUIRED = os.environ.get("TRTBUILD_REQUIRE_VLLM") == "1"
"""`make test` sets it: a missing .venv-vllm then FAILS the vLLM tests instead of skipping them."""


def require_vllm() -> Path:
    """.venv-vllm, or skip with the reason (fail instead under TRTBUILD_REQUIRE_VLLM=1)."""
    if not VLLM_READY:
        message = (f"vLLM's environment {VLLM_ENV} is not installed (`make vllm-venv` installs it: ~2.6 GB, "
                   "3-7 min)")
        if REQUIRED:
            pytest.fail(f"{message}; TRTBUILD_REQUIRE_VLLM=1 (make test): the vLLM tests must run")
        pytest.skip(message)
    return VLLM_ENV


needs_vllm = pytest.mark.usefixtures("vllm_env")
"""Mark of tests that need .venv-vllm (the fixture `vllm_env` of tests/vllm/conftest.py: require_vllm())."""


def ask(server: Any, prompt: str, max_tokens: int = 16, model: str = "ensemble", **params: Any) -> Any:
    """One request over gRPC streaming (decoupled or not): its text, error and output token count."""
    from types import SimpleNamespace

    out, error = responses(server, model, prompt, max_tokens, **params)
    return SimpleNamespace(text=joined(out).decode("utf-8", "replace"), error=error, num_output_tokens=count(out))


TRITON_TYPES = {"TYPE_STRING": ("BYTES", object), "TYPE_INT32": ("INT32", "int32"), "TYPE_UINT64": ("UINT64", "uint64"),
                "TYPE_FP32": ("FP32", "float32"), "TYPE_FP16": ("FP16", "float16"), "TYPE_BOOL": ("BOOL", bool)}


def contract_inputs(prompt: str, max_tokens: int, **params: Any) -> dict[str, tuple[str, Any]]:
    """Client tensors (batch of one) typed by the contract (ensembles/contract.yaml): name → (dtype, array)."""
    import numpy as np

    from trtbuild.repository.context import load_contract

    types = {t.name: t.data_type for t in load_contract("TYPE_FP32", "TYPE_FP32").inputs}
    out = {}
    for name, value in {"text_input": prompt, "max_tokens": max_tokens, **params}.items():
        triton, numpy_type = TRITON_TYPES[types[name]]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        values = [v.encode() if isinstance(v, str) else v for v in values]
        out[name] = (triton, np.array([values], dtype=numpy_type))
    return out


def serve(repo: Path, **kwargs: Any) -> Iterator[Any]:
    """Start a real tritonserver on ``repo`` (TritonServer keyword arguments), yield it, stop it."""
    from trtbuild.repository.server import TritonServer

    server = TritonServer(repo, **kwargs)
    try:
        server.start(timeout=LOAD_TIMEOUT_S)
        yield server
    finally:
        server.stop()


def responses(server: Any, model: str, prompt: str, max_tokens: int, *, cancel_after: int | None = None,
              timeout: float = 120.0, **params: Any) -> tuple[list[dict[str, Any]], str | None]:
    """Every response of one request, as sent: per response its `text_output` bytes and counts.

    ``cancel_after``: close the stream (cancelling the request) once that many responses arrived.
    Returns (responses, error message or None).
    """
    import queue

    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_url)
    results: queue.Queue[tuple[Any, Any]] = queue.Queue()
    tensors = []
    for name, (dtype, arr) in contract_inputs(prompt, max_tokens, **params).items():
        t = grpcclient.InferInput(name, list(arr.shape), dtype)
        t.set_data_from_numpy(arr)
        tensors.append(t)
    out: list[dict[str, Any]] = []
    error = None
    cancelled = False
    client.start_stream(callback=lambda result, error: results.put((result, error)))
    try:
        client.async_stream_infer(model, tensors, enable_empty_final_response=True)
        while True:
            result, err = results.get(timeout=timeout)
            if err is not None:
                error = str(err)
                break
            response = result.get_response()
            if response.outputs:
                item: dict[str, Any] = {}
                for name in ("text_output", "num_input_tokens", "num_output_tokens", "batch_index",
                             "output_log_probs", "cum_log_probs"):
                    value = result.as_numpy(name)
                    if value is not None:
                        item[name] = value
                out.append(item)
            if response.parameters["triton_final_response"].bool_param:
                break
            if cancel_after is not None and len(out) >= cancel_after:
                cancelled = True
                break
    finally:
        client.stop_stream(cancel_requests=cancelled)
        client.close()
    return out, error


def joined(items: list[dict[str, Any]]) -> bytes:
    return b"".join(bytes(i["text_output"].reshape(-1)[0]) for i in items if "text_output" in i)


def count(items: list[dict[str, Any]], name: str = "num_output_tokens") -> int:
    return sum(int(i[name].reshape(-1)[0]) for i in items if name in i)
