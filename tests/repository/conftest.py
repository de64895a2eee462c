"""Fixtures of the repository tests: one tiny model, its reference repository, one real server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .helpers import plan_for, write_tiny_recipe

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("repo-model") / "tiny-llama", family="llama")


@pytest.fixture(scope="session")
def tiny_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    return write_tiny_recipe(tmp_path_factory.mktemp("recipe"), tiny_model)


def _render(tmp: Path, recipe: Path, model: Path) -> Path:
    from trtbuild.repository import render_repository

    out = tmp / "repo"
    render_repository(plan_for(recipe, "cpu"), out_dir=out, tokenizer_dir=model, hf_model_dir=model)
    return out


@pytest.fixture(scope="session")
def reference_repo(tmp_path_factory: pytest.TempPathFactory, tiny_recipe: Path, tiny_model: Path) -> Path:
    """The CPU reference repository of the tiny model (streaming, topology both)."""
    return _render(tmp_path_factory.mktemp("reference"), tiny_recipe, tiny_model)


@pytest.fixture(scope="session")
def unary_repo(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The same, with runtime.streaming: false (nothing decoupled: plain HTTP/gRPC infer works)."""
    tmp = tmp_path_factory.mktemp("unary")
    return _render(tmp, write_tiny_recipe(tmp / "recipe", tiny_model, streaming=False), tiny_model)


def _serve(repo: Path) -> Iterator[object]:
    from trtbuild.repository.server import TritonServer

    server = TritonServer(repo, env={"TRTBUILD_REFERENCE_THREADS": "1"})
    try:
        server.start(timeout=240)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(reference_repo: Path) -> Iterator[object]:
    """One real tritonserver (from nvidia-pytriton) on the reference repository, for the session."""
    yield from _serve(reference_repo)


@pytest.fixture(scope="module")
def unary_server(unary_repo: Path) -> Iterator[object]:
    yield from _serve(unary_repo)


@pytest.fixture(scope="session")
def hf_reference(tiny_model: Path) -> object:
    """transformers' own greedy generation of the tiny model, for comparison (1 thread, same dtype)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trtbuild.demo.tiny_model import END_IDS, PAD_ID

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float16)
    model.eval()

    class Greedy:
        def __init__(self) -> None:
            self.tokenizer = tokenizer

        def tokens(self, prompt: str, max_new_tokens: int) -> list[int]:
            enc = tokenizer(prompt, return_tensors="pt")
            with torch.inference_mode():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=list(END_IDS),
                                     pad_token_id=PAD_ID)
            return out[0, enc.input_ids.shape[1]:].tolist()

        def text(self, ids: list[int]) -> str:
            return tokenizer.decode(ids, skip_special_tokens=True)

    return Greedy()
