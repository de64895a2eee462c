"""Request validation and NVIDIA's optional inputs in the shared prompt library (no server needed):
invalid UTF-8, the byte bound checked before tokenizing, ids outside the vocabulary, sampling values
the executor refuses, embedding bias, prompt-table extra ids, and the text decoding that keeps every
response valid UTF-8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from .helpers import text_lib
from .test_textproc import PARAMS, _request

VOCAB = {**PARAMS, "vocab_size": "512"}


@pytest.fixture(scope="module")
def codec(tiny_model: Path):
    text, _ = text_lib()
    return text.TextCodec(str(tiny_model), add_special_tokens=True, skip_special_tokens=True)


@pytest.fixture
def builder(codec):
    _, prompt = text_lib()
    return prompt.PromptBuilder(codec, VOCAB)


def _refused(builder, match: str, **inputs) -> None:
    _, prompt = text_lib()
    with pytest.raises(prompt.RequestError, match=match):
        [built] = builder.build([builder.read_request(_request(**inputs))])
        if isinstance(built, Exception):
            raise built


@pytest.mark.parametrize("name", ["text_input", "system_prompt", "stop_words", "bad_words", "decoder_text_input"])
def test_invalid_utf8_names_the_input(builder, name: str) -> None:
    inputs = {"text_input": "Hi", "max_tokens": 4}
    get = _request(**inputs)
    bad = np.array([[b"caf\xe9"]], dtype=object)

    def with_bad(key):
        return bad if key == name else get(key)
    _, prompt = text_lib()
    with pytest.raises(prompt.RequestError, match=rf"{name} is not valid UTF-8 \(byte 0xe9 at offset 3\)"):
        builder.read_request(with_bad)


def test_a_prompt_too_long_in_bytes_is_refused_before_it_is_tokenized(builder, codec, monkeypatch) -> None:
    limit = builder.max_input_len * codec.max_bytes_per_token
    assert codec.max_bytes_per_token >= max(len(b) for b in codec.token_bytes)
    monkeypatch.setattr(codec, "encode_batch", lambda *a, **k: pytest.fail("tokenized a prompt it had to refuse"))
    _refused(builder, rf"the prompt is {limit + 1} bytes: more than max_input_len 64 tokens",
             text_input="x" * (limit + 1), max_tokens=4)


def test_a_long_prompt_within_the_byte_bound_is_counted_in_tokens(builder) -> None:
    _refused(builder, "prompt has .* tokens, more than max_input_len 64", text_input="word " * 100, max_tokens=4)


def test_normalizers_that_can_shrink_text_widen_the_byte_bound() -> None:
    text, _ = text_lib()
    assert text._shrink_factor(None) == 1
    assert text._shrink_factor({"type": "Sequence", "normalizers": []}) == 1
    assert text._shrink_factor({"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}) == 1
    assert text._shrink_factor({"type": "NFKC"}) == 4
    assert text._shrink_factor({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]}) == 4


@pytest.mark.parametrize(("name", "value"), [("end_id", 512), ("end_id", -1), ("pad_id", 10_000)])
def test_ids_outside_the_vocabulary_are_refused(builder, name: str, value: int) -> None:
    _refused(builder, rf"{name} {value} is outside the vocabulary \(0 to 511\)", text_input="Hi", max_tokens=4,
             **{name: value})


def test_decoder_text_input_is_accepted_empty_and_refused_otherwise(builder) -> None:
    [built] = builder.build([builder.read_request(_request(text_input="Hi", max_tokens=4, decoder_text_input=""))])
    assert "input_ids" in built
    _refused(builder, "decoder_text_input is for encoder-decoder models", text_input="Hi", max_tokens=4,
             decoder_text_input="Bonjour")


def test_embedding_bias_adds_each_weight_to_the_tokens_of_its_word(builder, codec) -> None:
    get = _request(text_input="Hi", max_tokens=4)
    extra = {"embedding_bias_words": np.array([[b" hello", b"world", b""]], dtype=object),
             "embedding_bias_weights": np.array([[-2.0, 1.5, 9.0]], dtype=np.float32)}
    [built] = builder.build([builder.read_request(lambda k: extra.get(k, get(k)))])
    bias = built["embedding_bias"]
    assert bias.shape == (1, 512) and bias.dtype == np.float32
    expected = np.zeros(512, dtype=np.float32)
    for word, weight in ((" hello", -2.0), ("world", 1.5)):
        for token in codec.encode_words([word])[0]:
            expected[token] += weight
    assert np.array_equal(bias[0], expected)


def test_embedding_bias_words_and_weights_must_match(builder) -> None:
    get = _request(text_input="Hi", max_tokens=4)
    extra = {"embedding_bias_words": np.array([[b"a", b"b"]], dtype=object),
             "embedding_bias_weights": np.array([[1.0]], dtype=np.float32)}
    _, prompt = text_lib()
    with pytest.raises(prompt.RequestError, match="one weight per word"):
        builder.read_request(lambda k: extra.get(k, get(k)))


def test_prompt_table_extra_ids_tag_the_prompt_table_tokens(builder) -> None:
    get = _request(text_input="Hi there", max_tokens=4)
    [built] = builder.build([builder.read_request(
        lambda k: np.array([[7]], dtype=np.uint64) if k == "prompt_table_extra_id" else get(k))])
    extra = built["prompt_table_extra_ids"]
    assert extra.dtype == np.uint64 and extra.shape == built["input_ids"].shape
    assert not extra.any()  # no id of a text prompt is ≥ the vocabulary size


def test_the_recipes_stop_list_is_built_once_and_equal_to_building_it(builder, codec) -> None:
    text, _ = text_lib()
    [a] = builder.build([builder.read_request(_request(text_input="Hi", max_tokens=4))])
    [b] = builder.build([builder.read_request(_request(text_input="Ho", max_tokens=4))])
    assert a["stop_words_list"] is b["stop_words_list"]
    assert text.parse_word_list(a["stop_words_list"][0]) == [codec.encode_words(["zz"])[0], [4]]


@pytest.mark.parametrize(("name", "value", "match"), [
    ("beam_width", 0, "beam_width must be at least 1"), ("beam_width", 2, "exceeds the engine's max_beam_width 1"),
    ("top_k", -1, "top_k must be at least 0"), ("top_p", 1.5, "top_p must be at most 1"),
    ("temperature", -0.5, "temperature must be at least 0"), ("min_tokens", 5, "min_tokens 5 is more than max_tokens 4"),
    ("repetition_penalty", 0.0, "repetition_penalty must be greater than 0"),
    ("length_penalty", -1.0, "length_penalty must be at least 0"),
    ("num_return_sequences", 0, "num_return_sequences must be at least 1"),
])
def test_sampling_values_the_executor_refuses(name: str, value: float, match: str) -> None:
    _, prompt = text_lib()
    values = {name: np.array([[value]])}
    with pytest.raises(prompt.RequestError, match=match):
        prompt.check_sampling(values.get, np.array([4]), max_beam_width=1)
    prompt.check_sampling({"top_p": np.array([[0.0]]), "temperature": np.array([[0.0]])}.get, np.array([4]), 1)


def test_decoding_keeps_text_valid_and_holds_back_a_partial_character(codec) -> None:
    text, _ = text_lib()
    ids = codec.encode_batch(["你好 🙂"], add_special_tokens=False)[0]
    cut = next(k for k in range(1, len(ids)) if codec.decode(ids[:k]).endswith("\ufffd"))
    assert codec.decode(ids[:cut]).encode().decode("utf-8")  # valid: U+FFFD, not raw bytes
    assert codec.decode_settled(ids[:cut]) == codec.decode(ids[:cut])[:-1]
    assert codec.decode_settled(ids) == codec.decode(ids) == "你好 🙂"
    assert [text._incomplete_tail(b) for b in (b"a\xe4\xbd", b"\xf0\x9f\x99", b"\xe4\xbd\xa0", b"\x80")] == [2, 3, 0, 0]


def test_only_tokenizers_whose_tokens_are_whole_characters_may_stream_through_the_ensemble(codec, tmp_path) -> None:
    from tests.client_contract.conftest import write_char_tokenizer

    text, _ = text_lib()
    assert not codec.utf8_closed  # byte-level BPE: characters span tokens
    chars = text.TextCodec(str(write_char_tokenizer(tmp_path / "chars")), add_special_tokens=False,
                           skip_special_tokens=True)
    assert chars.utf8_closed
