"""The generated reference repository in a REAL tritonserver (nvidia-pytriton's), queried with tritonclient.

One server for the session (streaming repository: `ensemble` + `tensorrt_llm_bls`), plus one per module
for the non-streaming variant. Greedy output is compared with transformers' own `generate`.
"""

from __future__ import annotations

import numpy as np
import pytest

from trtbuild.repository.client import build_inputs, generate_grpc, generate_http

pytestmark = pytest.mark.slow

MODELS = ("ensemble", "tensorrt_llm_bls")
BLS = "tensorrt_llm_bls"
PROMPTS = ["Hello world", "The quick brown fox", "héllo wörld — ünïcode", "你好，世界", "emoji 🙂🚀 test",
           " leading space", "tabs\tand\nnewlines", "Once upon a time", "a b c d e f", "Ωmega ≠ alpha ∑"]


def _ask(server, model, prompt, max_tokens=24, **params):
    result = generate_grpc(server.grpc_url, model, build_inputs(prompt, max_tokens, **params))
    assert result.error is None, result.error
    return result


def _strip_end(ids: list[int]) -> list[int]:
    from trtbuild.demo.tiny_model import EOS_ID

    return ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids


@pytest.mark.parametrize("model", MODELS)
def test_greedy_output_equals_transformers_generate(server, hf_reference, model) -> None:
    for prompt in PROMPTS[:6]:
        expected = _strip_end(hf_reference.tokens(prompt, 24))
        got = _ask(server, model, prompt, return_num_output_tokens=True, return_num_input_tokens=True)
        assert got.text == hf_reference.text(expected), prompt
        assert got.num_output_tokens == len(expected)
        assert got.num_input_tokens == len(hf_reference.tokenizer(prompt)["input_ids"])


def test_bls_stream_joins_to_the_non_streamed_text(server) -> None:
    for prompt in PROMPTS:
        whole = _ask(server, BLS, prompt, 32)
        streamed = _ask(server, BLS, prompt, 32, stream=True, return_num_output_tokens=True)
        assert len(whole.chunks) == 1
        assert "".join(c.decode("utf-8") for c in streamed.chunks) == whole.text  # every chunk whole characters
        assert len(streamed.chunks) > 1 or len(whole.text) < 3
        assert streamed.num_output_tokens == _ask(server, BLS, prompt, 32, return_num_output_tokens=True).num_output_tokens


def test_stream_keeps_leading_spaces_and_multibyte_characters(server, hf_reference) -> None:
    """No lost space, no broken character: the joined stream decodes exactly as transformers decodes."""
    for prompt in PROMPTS:
        expected = hf_reference.text(_strip_end(hf_reference.tokens(prompt, 32)))
        bls = _ask(server, BLS, prompt, 32, stream=True)
        assert "".join(c.decode("utf-8") for c in bls.chunks) == expected, prompt
        assert _ask(server, "ensemble", prompt, 32).text == expected, prompt


def test_ensemble_refuses_streaming_for_a_byte_level_tokenizer(server) -> None:
    result = generate_grpc(server.grpc_url, "ensemble", build_inputs("Hello world", 8, stream=True))
    assert result.error and "tensorrt_llm_bls" in result.error


def test_http_generate_and_generate_stream(server) -> None:
    for model in MODELS:
        whole = generate_http(server.http_url, model, {"text_input": "Hello world", "max_tokens": 16})
        assert whole.error is None
        assert whole.chunks[0].decode("utf-8") == _ask(server, BLS, "Hello world", 16).text
    streamed = generate_http(server.http_url, BLS, {"text_input": "Hello world", "max_tokens": 16, "stream": True},
                             stream=True)
    assert streamed.error is None
    assert b"".join(streamed.chunks) == _ask(server, BLS, "Hello world", 16).chunks[0]
    assert len(streamed.chunks) > 1


def test_max_tokens_is_honoured(server, hf_reference) -> None:
    prompt = "The quick brown fox"
    expected = hf_reference.tokens(prompt, 5)
    assert len(_strip_end(expected)) == 5  # this prompt does not end early
    for model in MODELS:
        got = _ask(server, model, prompt, 5, return_num_output_tokens=True)
        assert got.num_output_tokens == 5
        assert got.text == hf_reference.text(expected)


def _single_token_word(hf_reference, ids: list[int]) -> tuple[int, str]:
    tok = hf_reference.tokenizer
    for k in range(1, len(ids)):
        word = tok.decode([ids[k]])
        if word.strip() and tok(word, add_special_tokens=False)["input_ids"] == [ids[k]]:
            return k, word
    raise AssertionError("no re-encodable token in the greedy output")


@pytest.mark.parametrize("model", MODELS)
def test_stop_words_stop_generation_after_the_word(server, hf_reference, model) -> None:
    prompt = "Once upon a time"
    ids = _strip_end(hf_reference.tokens(prompt, 24))
    k, word = _single_token_word(hf_reference, ids)
    first = ids.index(ids[k])
    for stream in (False, True) if model == BLS else (False,):
        got = _ask(server, model, prompt, 24, stop_words=[word], stream=stream, return_num_output_tokens=True)
        assert got.text == hf_reference.text(ids[: first + 1])
        assert got.num_output_tokens == first + 1


def test_client_end_id_stops_before_that_token(server, hf_reference) -> None:
    prompt = "The quick brown fox"
    ids = _strip_end(hf_reference.tokens(prompt, 24))
    end = ids[3]
    cut = ids.index(end)
    for model in MODELS:
        assert _ask(server, model, prompt, 24, end_id=end).text == hf_reference.text(ids[:cut])


def test_bad_words_are_never_generated(server, hf_reference) -> None:
    prompt = "The quick brown fox"
    ids = _strip_end(hf_reference.tokens(prompt, 12))
    k, word = _single_token_word(hf_reference, ids)
    for model in MODELS:
        got = _ask(server, model, prompt, 12, bad_words=[word])
        got_ids = hf_reference.tokenizer(got.text, add_special_tokens=False)["input_ids"]
        assert ids[k] not in got_ids
        assert got.text != hf_reference.text(ids)


def test_system_prompt_is_prepended(server) -> None:
    for model in MODELS:
        with_system = _ask(server, model, "Hello", 8, system_prompt="You are terse.", return_num_input_tokens=True)
        plain = _ask(server, model, "Hello", 8, return_num_input_tokens=True)
        assert with_system.num_input_tokens > plain.num_input_tokens


def test_retention_overrides_pass_through_and_are_checked(server) -> None:
    for model in MODELS:
        ok = _ask(server, model, "Hello", 4, system_prompt="Be brief.", retention_token_range_starts=[0],
                  retention_token_range_ends=[-1], retention_token_range_priorities=[80],
                  retention_token_range_durations_ms=[1000], retention_decode_priority=20)
        assert ok.text
        bad = generate_grpc(server.grpc_url, model, build_inputs("Hello", 4, retention_token_range_starts=[0, 4],
                                                                 retention_token_range_ends=[-1]))
        assert bad.error and "retention_token_range_ends" in bad.error


def test_sampling_is_reproducible_by_seed(server) -> None:
    for model in MODELS:
        a = _ask(server, model, "Once upon a time", 16, top_k=20, top_p=0.9, temperature=1.0, seed=7)
        b = _ask(server, model, "Once upon a time", 16, top_k=20, top_p=0.9, temperature=1.0, seed=7)
        assert a.text == b.text


@pytest.mark.parametrize("model", MODELS)
def test_bad_requests_get_errors_and_the_server_keeps_serving(server, model) -> None:
    good = build_inputs("Hello world", 4)
    cases = {
        "missing max_tokens": {"text_input": good["text_input"]},
        "max_tokens past max_seq_len": build_inputs("Hello world", 400),
        "empty prompt": build_inputs("", 4),
        "wrong dtype": {**good, "max_tokens": np.array([[4]], dtype=np.int64)},
        "max_tokens zero": build_inputs("Hello world", 0),
    }
    for name, inputs in cases.items():
        result = generate_grpc(server.grpc_url, model, inputs)
        assert result.error, f"{name}: no error"
        after = generate_grpc(server.grpc_url, model, good)
        assert after.error is None and after.text, f"server stopped serving after {name}"
    http = generate_http(server.http_url, model, {"text_input": "Hello", "max_tokens": 100000})
    assert http.error and "max_seq_len" in http.error


def test_smoke_command_against_the_running_server(server, reference_repo, cli) -> None:
    done = cli("smoke", str(reference_repo), "--prompt", "Hello world", "--max-tokens", "8", "--url",
               server.grpc_url, "--json")
    assert done.returncode == 0, done.stderr
    assert '"reference": true' in done.stdout and '"num_output_tokens": 8' in done.stdout


# ------------------------------------------------------------------------ not decoupled (streaming off)
def test_unary_repository_answers_tritonclient_http_infer(unary_server, hf_reference) -> None:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(unary_server.http_url)
    expected = hf_reference.text(_strip_end(hf_reference.tokens("Hello world", 12)))
    for model in MODELS:
        tensors = []
        for name, arr in build_inputs("Hello world", 12).items():
            t = httpclient.InferInput(name, list(arr.shape), "BYTES" if arr.dtype == object else "INT32")
            t.set_data_from_numpy(arr)
            tensors.append(t)
        result = client.infer(model, tensors)
        # NVIDIA's clients read text_output[0] and decode it strictly
        assert result.as_numpy("text_output")[0].decode("utf-8") == expected
    client.close()


def test_unary_repository_refuses_streaming(unary_server) -> None:
    for model in MODELS:
        result = generate_grpc(unary_server.grpc_url, model, build_inputs("Hello world", 4, stream=True))
        assert result.error and "decoupled" in result.error
