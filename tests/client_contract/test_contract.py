"""`ensemble` and `tensorrt_llm_bls` consumed as NVIDIA's clients and Triton's OpenAI frontend consume them.

Sources of every expectation: see nvclient.py ([E2E], [E2E-TEST], [OAI], [CPP]). By default the
server is the CPU reference of SmolLM2-135M-Instruct (byte-level BPE: the Japanese and Korean prompts
below make it emit characters whose bytes span tokens, so max_tokens can cut inside one); the same
tests run against another server with --contract-repository / --contract-url (conftest.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from . import nvclient
from .conftest import ONE_STEP, Contract, only

pytestmark = pytest.mark.slow

BLS, ENSEMBLE = "tensorrt_llm_bls", "ensemble"
CUTTING = ["日本の首都は", "한국어로 인사해 주세요:"]
"""Greedy SmolLM2 answers these in CJK: characters of 3 bytes over 2 tokens (cuts land inside them)."""
PROMPTS = [*CUTTING, "Emoji story: 🙂🚀🎉", "Café naïve résumé — über; e\u0301 n\u0303 a\u0308 (combining marks)"]
COUNTS = {"return_num_input_tokens": True, "return_num_output_tokens": True}
N = 16


def _ok(answer: nvclient.Answer) -> nvclient.Answer:
    assert answer.error is None, answer.error
    return answer


# ------------------------------------------------------------------------------- text and shape
@pytest.mark.parametrize("via", ["grpc", "http"])
@pytest.mark.parametrize("model", [ENSEMBLE, BLS])
def test_non_streamed_text_is_one_valid_string(contract: Contract, model: str, via: str) -> None:
    """[E2E] `text_output[0].decode("utf-8")`, [OAI] one string decoded strictly, strict JSON over HTTP."""
    for prompt in PROMPTS:
        answer = _ok(contract.ask(model, prompt, N, via=via, **COUNTS))  # nvclient raises on a violation
        assert answer.responses == 1  # [OAI] non-streaming: one response
        assert answer.text()
        assert answer.completion_tokens[0] >= 1 and answer.prompt_tokens >= 1


def test_both_entry_points_generate_the_same_text(contract: Contract) -> None:
    for prompt in PROMPTS:
        assert contract.ask(ENSEMBLE, prompt, N, **COUNTS).text() == contract.ask(BLS, prompt, N, **COUNTS).text()


@pytest.mark.parametrize("model", [BLS, ENSEMBLE])
@pytest.mark.parametrize("via", ["grpc", "http_stream"])
def test_stream_joins_to_the_non_streamed_text_and_usage(contract: Contract, via: str, model: str) -> None:
    """Every chunk is whole characters ([E2E] decodes each one); [OAI] sums num_output_tokens."""
    if model == ENSEMBLE:
        only(contract, *ONE_STEP, why="the engine path's ensemble refuses to stream (next test)")
    for prompt in PROMPTS:
        whole = _ok(contract.ask(model, prompt, N, **COUNTS))
        streamed = _ok(contract.ask(model, prompt, N, via=via, stream=True, **COUNTS))
        assert streamed.text() == whole.text(), prompt
        assert streamed.completion_tokens[0] == whole.completion_tokens[0], prompt
        assert streamed.prompt_tokens == whole.prompt_tokens
        assert len(streamed.chunks[0]) > 1


@pytest.mark.parametrize("via", ["grpc", "http_stream"])
def test_ensemble_refuses_to_stream_and_names_the_bls(contract: Contract, via: str) -> None:
    """Its stateless postprocessing cannot stream split characters exactly (see ensembles/ensemble.yaml)."""
    only(contract, "engine", why="its ensemble is one step over the model that streams (it streams correctly)")
    answer = contract.ask(ENSEMBLE, CUTTING[0], N, via=via, stream=True)
    assert answer.error and "tensorrt_llm_bls" in answer.error
    assert "Traceback" not in answer.error
    assert _ok(contract.ask(ENSEMBLE, CUTTING[0], N)).text()  # and keeps serving


@pytest.mark.parametrize("prompt", CUTTING)
def test_max_tokens_cutting_a_character_gives_valid_text_everywhere(contract: Contract, prompt: str) -> None:
    """A cut inside a character ends the text with U+FFFD (as Hugging Face's decode), never raw bytes."""
    full = contract.ask(BLS, prompt, N).text()
    cut_inside = []
    for k in (1, 2, 3, 4):
        whole = _ok(contract.ask(ENSEMBLE, prompt, k, **COUNTS))
        assert _ok(contract.ask(BLS, prompt, k, **COUNTS)).text() == whole.text()
        streamed = _ok(contract.ask(BLS, prompt, k, stream=True, **COUNTS))
        assert streamed.text() == whole.text()
        assert streamed.completion_tokens[0] == whole.completion_tokens[0] == k
        if whole.text().endswith("\ufffd"):
            cut_inside.append(k)
            assert full.startswith(whole.text()[:-1])
        else:
            assert full.startswith(whole.text())
    if contract.local:  # the precondition this test is about, on the suite's own SmolLM2 server
        assert cut_inside, "no cut landed inside a character: pick other prompts"


# --------------------------------------------------------------------------------- request options
def _stop_word(contract: Contract, text: str) -> str:
    """A word of `text` that is one token with its leading space (so the engine's stop rule meets it)."""
    words = [w for w in text.split(" ")[1:] if w.strip()]
    if contract.tokenizer is None:
        pytest.skip("exact stop-word checks need the tokenizer (--contract-tokenizer)")
    for word in words[1:]:
        if len(contract.tokenizer(" " + word, add_special_tokens=False)["input_ids"]) == 1:
            return " " + word
    pytest.skip(f"no single-token word in {text!r}")


def test_stop_words_end_the_text_after_the_word(contract: Contract) -> None:
    prompt = "Once upon a time, in a small village,"
    full = _ok(contract.ask(BLS, prompt, 24)).text()
    word = _stop_word(contract, full)
    expected = full[: full.index(word) + len(word)]
    assert _ok(contract.ask(ENSEMBLE, prompt, 24, stop_words=[word])).text() == expected
    assert _ok(contract.ask(BLS, prompt, 24, stop_words=[word])).text() == expected
    assert _ok(contract.ask(BLS, prompt, 24, stop_words=[word], stream=True)).text() == expected
    # [E2E-TEST] sends empty word lists as [[""]]
    assert _ok(contract.ask(ENSEMBLE, prompt, 24, stop_words=[""], bad_words=[""])).text() == full


def test_the_prompt_is_never_streamed(contract: Contract) -> None:
    """[CPP]: with exclude_input_in_output false, non-streamed text starts with the prompt; streamed never."""
    prompt = "Hello, my name is"
    generated = _ok(contract.ask(BLS, prompt, 8)).text()
    for model in (ENSEMBLE, BLS):
        echoed = _ok(contract.ask(model, prompt, 8, exclude_input_in_output=False)).text()
        assert echoed.startswith(prompt) and echoed.endswith(generated)
    streamed = _ok(contract.ask(BLS, prompt, 8, exclude_input_in_output=False, stream=True))
    assert streamed.text() == generated
    assert not streamed.chunks[0][0].startswith(prompt)


@pytest.mark.parametrize("stream", [False, True])
def test_batched_bls_request_returns_batch_index(contract: Contract, stream: bool) -> None:
    """[E2E] reads `batch_index[0][0]` of every response of a batched request ([CPP] sends it)."""
    rows = PROMPTS[:2]
    answer = _ok(contract.ask(BLS, rows, 8, stream=stream, **COUNTS))
    assert None not in answer.batch_index_seen and set(answer.batch_index_seen) == {0, 1}
    for r, prompt in enumerate(rows):
        single = contract.ask(BLS, prompt, 8, **COUNTS)
        assert answer.text(r) == single.text()
        assert answer.completion_tokens[r] == single.completion_tokens[0]


def test_concurrent_unicode_streams_each_get_their_own_text(contract: Contract) -> None:
    expected = {p: contract.ask(BLS, p, 12).text() for p in PROMPTS}

    def one(prompt: str) -> tuple[str, nvclient.Answer]:
        return prompt, nvclient.grpc_stream(contract.grpc, BLS, nvclient.inputs(prompt, 12, stream=True))
    with ThreadPoolExecutor(len(PROMPTS) * 2) as pool:
        for prompt, answer in pool.map(one, PROMPTS * 2):
            assert _ok(answer).text() == expected[prompt]


# ------------------------------------------------------------------------ NVIDIA's optional inputs
@pytest.mark.parametrize("model", [ENSEMBLE, BLS])
def test_nvidia_optional_inputs_are_accepted_or_refused_clearly(contract: Contract, model: str) -> None:
    prompt = "The capital of France is"
    _ok(contract.ask(model, prompt, 4, embedding_bias_words=[" Paris", " London"], embedding_bias_weights=[-5.0, 1.0]))
    _ok(contract.ask(model, prompt, 4, decoder_text_input=""))
    _ok(contract.ask(model, prompt, 4, prompt_table_extra_id=7))
    refused = {
        "decoder_text_input": contract.ask(model, prompt, 4, decoder_text_input="Bonjour"),
        "embedding_bias_weights": contract.ask(model, prompt, 4, embedding_bias_words=["a", "b"],
                                               embedding_bias_weights=[1.0]),
    }
    for name, answer in refused.items():
        assert answer.error and name in answer.error and "Traceback" not in answer.error, (name, answer.error)


def test_preprocessing_and_postprocessing_called_directly(contract: Contract) -> None:
    """[E2E-TEST]: preprocessing's outputs (DECODER_INPUT_ID included) feed tensorrt_llm; postprocessing's
    OUTPUT equals the ensemble's text_output."""
    only(contract, "engine", why="no preprocessing/postprocessing models: the ensemble is one step over the model")
    import tritonclient.grpc as grpcclient

    prompt = CUTTING[0]
    client = grpcclient.InferenceServerClient(contract.grpc)
    try:
        pre = [grpcclient.InferInput("QUERY", [1, 1], "BYTES"), grpcclient.InferInput("REQUEST_OUTPUT_LEN", [1, 1], "INT32"),
               grpcclient.InferInput("BAD_WORDS_DICT", [1, 1], "BYTES"), grpcclient.InferInput("STOP_WORDS_DICT", [1, 1], "BYTES")]
        pre[0].set_data_from_numpy(np.array([[prompt.encode()]], dtype=object))
        pre[1].set_data_from_numpy(np.array([[N]], dtype=np.int32))
        pre[2].set_data_from_numpy(np.array([[b""]], dtype=object))
        pre[3].set_data_from_numpy(np.array([[b""]], dtype=object))
        result = client.infer("preprocessing", pre)
        for name in ("INPUT_ID", "REQUEST_INPUT_LEN", "REQUEST_OUTPUT_LEN", "DECODER_INPUT_ID", "OUT_END_ID", "OUT_PAD_ID"):
            assert result.as_numpy(name) is not None, name
        assert int(result.as_numpy("REQUEST_INPUT_LEN")[0][0]) == result.as_numpy("INPUT_ID").shape[1]
        ids = result.as_numpy("INPUT_ID")
        post = [grpcclient.InferInput("TOKENS_BATCH", [1, 1, ids.shape[1]], "INT32"),
                grpcclient.InferInput("SEQUENCE_LENGTH", [1, 1], "INT32")]
        post[0].set_data_from_numpy(ids.reshape(1, 1, -1).astype(np.int32))
        post[1].set_data_from_numpy(np.array([[ids.shape[1]]], dtype=np.int32))
        output = client.infer("postprocessing", post).as_numpy("OUTPUT")
        assert output.ndim == 1 and output[0].decode("utf-8") == prompt  # the prompt's ids decode to the prompt
    finally:
        client.close()


# ----------------------------------------------------------------------------------- bad requests
def _refused(answer: nvclient.Answer, *words: str) -> None:
    assert answer.error, "accepted"
    for word in words:
        assert word in answer.error, answer.error
    assert "Traceback" not in answer.error and ".py" not in answer.error and "/models/" not in answer.error, answer.error


@pytest.mark.parametrize("model", [ENSEMBLE, BLS])
def test_bad_text_gets_a_clear_error_and_the_server_keeps_serving(contract: Contract, model: str) -> None:
    bad = b"caf\xe9 \xff"
    for name in ("text_input", "stop_words", "bad_words", "system_prompt", "embedding_bias_words"):
        tensors = nvclient.inputs("Hello", 4)
        tensors[name] = np.array([[bad]], dtype=object)
        if name == "embedding_bias_words":
            tensors["embedding_bias_weights"] = np.array([[1.0]], dtype=np.float32)
        _refused(nvclient.grpc_stream(contract.grpc, model, tensors), name, "UTF-8")
    _refused(contract.ask(model, "Hello", 4, end_id=10**7), "end_id", "vocabulary")
    huge = "x" * (1 << 20)
    _refused(nvclient.grpc_stream(contract.grpc, model, nvclient.inputs(huge, 4)), "bytes", "max_input_len")
    assert _ok(contract.ask(model, "Hello", 2)).text()


@pytest.mark.parametrize(("name", "value"), [("temperature", -1.0), ("beam_width", 0), ("top_p", 1.5),
                                             ("repetition_penalty", 0.0), ("min_tokens", 9)])
def test_bls_refuses_sampling_values_the_executor_refuses(contract: Contract, name: str, value: float) -> None:
    _refused(contract.ask(BLS, "Hello", 4, **{name: value}), name)


# ------------------------------------------------------------------------------ not decoupled
@pytest.mark.parametrize("model", [ENSEMBLE, BLS])
def test_unary_clients_read_text_output_zero(contract_unary: Contract, model: str) -> None:
    """[E2E-TEST] `client.infer`: one response, `text_output[0]` decodes, even when max_tokens cuts a character."""
    for prompt in CUTTING:
        for k in (3, N):
            answer = _ok(contract_unary.ask(model, prompt, k, via="unary", **COUNTS))
            assert answer.text() == contract_unary.ask(BLS, prompt, k, via="http").text()
    refused = contract_unary.ask(model, CUTTING[0], 4, via="unary", stream=True)
    assert refused.error and "decoupled" in refused.error
