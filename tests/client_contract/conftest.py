"""Servers for the client-contract suite.

By default (`make test`): the CPU reference repository of SmolLM2-135M-Instruct (a real byte-level BPE
model: CJK and emoji characters span several tokens), streaming build, two instances of every Python
model; a non-decoupled build of it for gRPC unary; and the tiny model with an instant stand-in engine
and a character-level tokenizer, to reproduce ordering bugs that a slow reference hides.

Against another server (the GPU acceptance script runs this suite against the real C++ backend):

    pytest tests/client_contract --contract-repository DIR     # serve DIR (tritonserver on PATH, else pytriton's)
    pytest tests/client_contract --contract-url grpc=HOST:PORT,http=HOST:PORT [--contract-tokenizer DIR]

Then the stand-in tests skip, the unary tests run only if that server is not decoupled, and checks that
need the tokenizer (exact stop-word cuts, a cut that lands inside a character) use the repository's
`tokenizer/` (or `--contract-tokenizer`) and skip without one.

The local servers run the model in float32: the reference decodes a wave of requests as one left-padded
batch, and in bfloat16 a padded row's greedy tokens can differ from the same prompt alone (as they can on
a real engine), which would make "a batched row equals the single request" a test of rounding.

Three servers run the same suite (the session fixture `contract` is parametrized by backend, test ids
`[engine]`, `[vllm]`, `[llmapi]`):
- `engine`: the engine-path repository (the CPU reference above, or the --contract-* server);
- `vllm`: the vLLM repository of the same SmolLM2 checkpoint (fp32, enforce_eager), served by vLLM's CPU
  build in .venv-vllm (`make vllm-venv`); without it these tests skip with that reason, and fail instead
  when TRTBUILD_REQUIRE_VLLM=1 (`make test` sets it);
- `llmapi`: the LLM-API repository (planned for h100) served with the TEST DOUBLE of `tensorrt_llm`
  (tests/llmapi/fake_trtllm: transformers on CPU behind the LLM API's interface).
Checks a backend legitimately cannot meet say so with `only(contract, ...)` (e.g. the engine path's
preprocessing/postprocessing models exist only there; the one-step ensemble of vLLM / LLM-API streams).
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import nvclient

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("engine", "vllm", "llmapi")
ONE_STEP = ("vllm", "llmapi")
"""Backends whose `ensemble` is one step over `tensorrt_llm_bls` (no preprocessing/postprocessing models)."""
RECIPE = """\
recipe: 1
name: contract
model:
  source: model
dtype: float32
build:
  max_batch_size: {batch}
  max_input_len: 256
  max_seq_len: 512
runtime:
  streaming: {streaming}
serving:
  instances: {{preprocessing: {n}, postprocessing: {n}, bls: {n}}}
{extra}"""


@dataclass
class Contract:
    """One server under test and what the suite knows about it."""

    grpc: str
    http: str
    tokenizer: Any = None
    local: bool = False
    """The suite started this server on SmolLM2 itself (model-specific preconditions hold)."""
    backend: str = "engine"
    cache: dict[Any, nvclient.Answer] = field(default_factory=dict)

    def decoupled(self, model: str) -> bool:
        with urllib.request.urlopen(f"http://{self.http}/v2/models/{model}/config", timeout=30) as r:
            config = json.loads(r.read())
        return bool((config.get("model_transaction_policy") or {}).get("decoupled", False))

    def ask(self, model: str, prompt: str | list[str], max_tokens: int, *, via: str = "grpc",
            **params: Any) -> nvclient.Answer:
        """One request (memoized: greedy requests are deterministic)."""
        key = (model, json.dumps(prompt), max_tokens, via, json.dumps(params, sort_keys=True, default=str))
        if key not in self.cache:
            if via == "grpc":
                answer = nvclient.grpc_stream(self.grpc, model, nvclient.inputs(prompt, max_tokens, **params))
            elif via == "unary":
                answer = nvclient.grpc_unary(self.grpc, model, nvclient.inputs(prompt, max_tokens, **params))
            else:
                payload = {"text_input": prompt, "max_tokens": max_tokens, **params}
                answer = nvclient.http_generate(self.http, model, payload, stream=via == "http_stream")
            self.cache[key] = answer
        return self.cache[key]


def _option(config: pytest.Config, name: str) -> Any:
    try:
        return config.getoption(name)
    except ValueError:
        return None


def external(config: pytest.Config) -> bool:
    return bool(_option(config, "--contract-url") or _option(config, "--contract-repository"))


def _tokenizer(path: Path | None) -> Any:
    if path is None or not Path(path).is_dir():
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


def only(contract: Contract, *backends: str, why: str) -> None:
    """Skip a check the server's backend legitimately cannot meet, with the reason."""
    if contract.backend not in backends:
        pytest.skip(f"{contract.backend} backend: {why}")


def render(tmp: Path, model_dir: Path, *, streaming: bool, instances: int, tokenizer_dir: Path | None = None,
           batch: int = 8, extra: str = "", backend: str = "engine") -> Path:
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "model").symlink_to(Path(model_dir).resolve(), target_is_directory=True)
    recipe = RECIPE.format(streaming="true" if streaming else "false", n=instances, batch=batch, extra=extra)
    (tmp / "recipe.yaml").write_text(recipe, encoding="utf-8")
    out = tmp / "repo"
    if backend == "vllm":
        from trtbuild.backends.vllm.render import render_vllm_repository

        render_vllm_repository(make_plan(load_recipe(tmp / "recipe.yaml"), "cpu"), out_dir=out, hf_model_dir=model_dir)
    elif backend == "llmapi":
        from trtbuild.backends.llmapi.render import render_llmapi_repository

        render_llmapi_repository(make_plan(load_recipe(tmp / "recipe.yaml"), "h100"), out_dir=out,
                                 hf_model_dir=model_dir)
    else:
        from trtbuild.repository import render_repository

        render_repository(make_plan(load_recipe(tmp / "recipe.yaml"), "cpu"), out_dir=out,
                          tokenizer_dir=tokenizer_dir or model_dir, hf_model_dir=model_dir)
    return out


def _sibling(directory: str) -> None:
    """tests/vllm and tests/llmapi helpers (plain modules there, not packages)."""
    path = str(ROOT / "tests" / directory)
    if path not in sys.path:
        sys.path.insert(0, path)


def vllm_env_or_skip() -> Path:
    """.venv-vllm, or skip with the reason (fail instead under TRTBUILD_REQUIRE_VLLM=1, as `make test` runs)."""
    _sibling("vllm")
    from vllm_helpers import require_vllm

    return Path(require_vllm())


def serve(repo: Path, install: Any = None, backend: str = "engine",
          tmp: Path | None = None) -> Iterator[Any]:
    from trtbuild.repository.server import TritonServer

    kwargs: dict[str, Any] = {}
    if backend == "vllm":
        kwargs["python_env"] = vllm_env_or_skip()
    elif backend == "llmapi":
        _sibling("vllm")
        _sibling("llmapi")
        from llmapi_helpers import double_env

        from trtbuild.repository.server import pytriton_install

        install = pytriton_install()
        kwargs["python_env"] = double_env(tmp or repo.parent)
    server = TritonServer(repo, install=install, env={"TRTBUILD_REFERENCE_THREADS": "1"}, **kwargs)
    try:
        server.start(timeout=600 if backend == "vllm" else 300)  # vLLM loads in 25-125 s on 2 busy cores
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def contract(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    """The (streaming) server under test, per backend."""
    backend = request.param
    if backend != "engine":
        if external(request.config):
            pytest.skip("--contract-repository/--contract-url: the suite runs against that server only")
        yield from _one_step_server(tmp_path_factory, backend, streaming=True)
        return
    url = _option(request.config, "--contract-url")
    repository = _option(request.config, "--contract-repository")
    tokenizer_dir = _option(request.config, "--contract-tokenizer")
    if url:
        parts = dict(p.split("=", 1) for p in url.split(","))
        yield Contract(grpc=parts["grpc"], http=parts["http"],
                       tokenizer=_tokenizer(Path(tokenizer_dir) if tokenizer_dir else None))
        return
    if repository:
        from trtbuild.repository.server import preferred_install

        repo = Path(repository).resolve()
        tok = Path(tokenizer_dir) if tokenizer_dir else repo / "tokenizer"
        for server in serve(repo, preferred_install()):
            yield Contract(grpc=server.grpc_url, http=server.http_url, tokenizer=_tokenizer(tok))
        return
    from trtbuild.demo.smollm2 import smollm2_checkpoint

    model = smollm2_checkpoint()
    repo = render(tmp_path_factory.mktemp("contract"), model, streaming=True, instances=2)
    for server in serve(repo):
        yield Contract(grpc=server.grpc_url, http=server.http_url, tokenizer=_tokenizer(model), local=True)


@pytest.fixture(scope="module")
def contract_unary(request: pytest.FixtureRequest, contract: Contract,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    """A non-decoupled server (gRPC ModelInfer and HTTP infer work on it)."""
    if contract.backend != "engine":
        yield from _one_step_server(tmp_path_factory, contract.backend, streaming=False)
        return
    if external(request.config):
        if contract.decoupled("tensorrt_llm_bls"):
            pytest.skip("the server under test is decoupled: the unary checks need a runtime.streaming: false build")
        yield contract
        return
    from trtbuild.demo.smollm2 import smollm2_checkpoint

    model = smollm2_checkpoint()
    repo = render(tmp_path_factory.mktemp("contract-unary"), model, streaming=False, instances=1)
    for server in serve(repo):
        yield Contract(grpc=server.grpc_url, http=server.http_url, tokenizer=contract.tokenizer, local=True)


def _one_step_server(factory: pytest.TempPathFactory, backend: str, *, streaming: bool) -> Iterator[Contract]:
    """The vLLM or LLM-API repository of SmolLM2 (fp32), served (vLLM: .venv-vllm; LLM-API: the double)."""
    if backend == "vllm":
        vllm_env_or_skip()
    from trtbuild.demo.smollm2 import smollm2_checkpoint

    model = smollm2_checkpoint()
    tmp = factory.mktemp(f"contract-{backend}{'' if streaming else '-unary'}")
    repo = render(tmp, model, streaming=streaming, instances=1, backend=backend)
    for server in serve(repo, backend=backend, tmp=tmp):
        yield Contract(grpc=server.grpc_url, http=server.http_url, tokenizer=_tokenizer(model), local=True,
                       backend=backend)


# ----------------------------------------------------------------------------------- stand-in
STANDIN_TOKENS = 64
STANDIN_TEXT = "the quick brown fox jumps over the lazy dog 你好世界 café ünïcode ✓ 🙂"
def write_char_tokenizer(directory: Path) -> Path:
    """A character-level tokenizer (every token is whole characters, so the ensemble may stream)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    directory.mkdir(parents=True, exist_ok=True)
    chars = sorted(set(STANDIN_TEXT) - {" "})
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "\u2581": 3, **{c: 4 + i for i, c in enumerate(chars)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="never")
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "</s>", "model_max_length": 4096}), encoding="utf-8")
    return directory


def install_standin(repo: Path, tokens: int) -> None:
    trt = repo / "models" / "tensorrt_llm"
    shutil.copy(ROOT / "benchmarks" / "serving_standin_model.py", trt / "1" / "model.py")
    with open(trt / "config.pbtxt", "a", encoding="utf-8") as f:
        f.write(f'\nparameters {{ key: "standin_tokens" value {{ string_value: "{tokens}" }} }}\n')


def _standin(request: pytest.FixtureRequest, tmp: Path, *, instances: int, coalesce: bool) -> Iterator[Contract]:
    if external(request.config):
        pytest.skip("the stand-in engine runs only on the suite's own server")
    from trtbuild.demo.smollm2 import smollm2_checkpoint

    tokenizer = write_char_tokenizer(tmp / "tokenizer")
    extra = f"  end_ids: [2]\n  stream_coalescing_ms: {5 if coalesce else 0}\n"
    # the checkpoint is only rendered (hard-linked), never loaded: the stand-in replaces the engine
    repo = render(tmp / "render", smollm2_checkpoint(), streaming=True, instances=instances,
                  tokenizer_dir=tokenizer, batch=64, extra=extra)
    install_standin(repo, STANDIN_TOKENS)
    for server in serve(repo):
        yield Contract(grpc=server.grpc_url, http=server.http_url, tokenizer=_tokenizer(tokenizer), local=True)


@pytest.fixture(scope="module")
def standin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    """Character tokenizer, instant stand-in engine, 2 instances of each Python model."""
    yield from _standin(request, tmp_path_factory.mktemp("standin"), instances=2, coalesce=False)


@pytest.fixture(scope="module")
def standin_coalescing(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Contract]:
    """The same with `serving.stream_coalescing_ms: 5`, one instance of each model."""
    yield from _standin(request, tmp_path_factory.mktemp("standin-c"), instances=1, coalesce=True)
