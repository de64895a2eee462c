"""The model-side text library (repo_templates/lib): token bytes, incremental decoding, word lists,
retention ranges and the prompt builder shared by preprocessing and the BLS. No server needed."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from .helpers import text_lib

TEXTS = ["Hello world", " leading space", "héllo wörld — ünïcode", "你好，世界", "emoji 🙂🚀 test",
         "tabs\tand\nnewlines", "Once upon a time", "<|eot_id|> special", "a  b   c", "Ωmega ≠ alpha ∑"]


@pytest.fixture(scope="module")
def codec(tiny_model: Path):
    text, _ = text_lib()
    return text.TextCodec(str(tiny_model), add_special_tokens=True, skip_special_tokens=True)


def test_token_bytes_match_transformers_decode_on_random_ids(codec) -> None:
    rng = random.Random(0)
    size = len(codec.token_bytes)
    for _ in range(300):
        ids = [rng.randrange(size) for _ in range(rng.randrange(1, 30))]
        assert codec.decode(ids) == codec.tokenizer.decode(ids, skip_special_tokens=True), ids


def test_encode_then_decode_round_trips_text(codec) -> None:
    for ids, text in zip(codec.encode_batch(TEXTS, add_special_tokens=False), TEXTS):
        if "<|eot_id|>" not in text:
            assert codec.decode(ids) == text


def test_batched_encode_equals_single_calls(codec) -> None:
    batch = codec.encode_batch(TEXTS)
    assert batch == [codec.tokenizer(t)["input_ids"] for t in TEXTS]


def test_incremental_detokenizer_chunks_are_whole_characters_and_join_to_the_text(codec) -> None:
    rng = random.Random(1)
    for text in TEXTS:
        ids = codec.encode_batch([text], add_special_tokens=False)[0]
        det = codec.stream()
        chunks = []
        i = 0
        while i < len(ids):
            n = rng.randrange(1, 3)
            chunks.append(det.push(ids[i: i + n]))
            i += n
        chunks.append(det.finish())
        assert "".join(chunks) == codec.decode(ids)
        assert all("\ufffd" not in c for c in chunks)


def test_incremental_detokenizer_equals_one_shot_decode_even_for_invalid_bytes(codec) -> None:
    rng = random.Random(2)
    for _ in range(100):
        ids = [rng.randrange(len(codec.token_bytes)) for _ in range(20)]
        det = codec.stream()
        streamed = "".join(det.push([t]) for t in ids) + det.finish()
        assert streamed == codec.decode(ids)


def test_byte_level_tokens_keep_leading_spaces(codec) -> None:
    ids = codec.encode_batch(["one two three"], add_special_tokens=False)[0]
    assert b"".join(codec.token_bytes[i] for i in ids[1:]).startswith(b" ")
    assert "".join(codec.decode([i]) for i in ids) == "one two three"


def test_word_list_format_matches_the_backend_layout() -> None:
    text, _ = text_lib()
    arr = text.word_list_array([[[5, 6], [7]], [], [[9, 9, 9]]])
    assert arr.dtype == np.int32 and arr.shape == (3, 2, 3)
    assert arr[0].tolist() == [[5, 6, 7], [2, 3, -1]]
    assert arr[1].tolist() == [[0, 0, 0], [-1, -1, -1]]
    assert text.parse_word_list(arr[0]) == [[5, 6], [7]]
    assert text.parse_word_list(arr[2]) == [[9, 9, 9]]


def test_split_words_reads_nvidia_csv_and_lists() -> None:
    text, _ = text_lib()
    assert text.split_words(np.array([[b'"Hello, world",Bye']], dtype=object)) == [["Hello, world", "Bye"]]
    assert text.split_words(np.array([[b"a,b", b"c"]], dtype=object)) == [["a,b", "c"]]
    assert text.split_words(None) == []


def test_retention_ranges_follow_the_rules_in_order() -> None:
    text, _ = text_lib()
    rules = [{"tokens": "system_prompt", "priority": 90, "duration_ms": 600000},
             {"tokens": {"start": 0, "end": None}, "priority": 10, "duration_ms": None}]
    assert text.retention_ranges(rules, system_len=12, prompt_len=40) == [(0, 12, 90, 600000), (12, -1, 10, -1)]
    assert text.retention_ranges(rules, system_len=0, prompt_len=40) == [(0, -1, 10, -1)]


PARAMS = {"end_ids": "2,4", "pad_id": "3", "max_input_len": "64", "max_seq_len": "80",
          "enable_kv_cache_reuse": "true", "stop_words": '["zz"]', "bad_words": "[]",
          "kv_retention": '{"rules": [{"tokens": "system_prompt", "priority": 90, "duration_ms": 600000}], '
                          '"decode_priority": 35, "decode_duration_ms": null}'}


def _request(**inputs):
    arrays = {}
    for name, value in inputs.items():
        if isinstance(value, str):
            arrays[name] = np.array([[value.encode()]], dtype=object)
        elif isinstance(value, list):
            arrays[name] = np.array([[v.encode() if isinstance(v, str) else v for v in value]],
                                    dtype=object if isinstance(value[0], str) else np.int32)
        else:
            arrays[name] = np.array([[value]], dtype=np.int32)
    return arrays.get


def test_prompt_builder_prepends_the_system_prompt_and_marks_its_tokens(codec) -> None:
    _, prompt = text_lib()
    builder = prompt.PromptBuilder(codec, PARAMS)
    req = builder.read_request(_request(text_input="Hello world", system_prompt="You are terse.", max_tokens=8))
    [built] = builder.build([req])
    system = codec.encode_batch(["You are terse."])[0]
    user = codec.encode_batch(["Hello world"], add_special_tokens=False)[0]
    assert built["input_ids"][0].tolist() == system + user
    assert built["input_lengths"].tolist() == [[len(system + user)]]
    assert built["retention_token_range_starts"].tolist() == [[0]]
    assert built["retention_token_range_ends"].tolist() == [[len(system)]]
    assert built["retention_token_range_priorities"].tolist() == [[90]]
    assert built["retention_token_range_durations_ms"].tolist() == [[600000]]
    assert built["retention_decode_priority"].tolist() == [[35]]
    assert "retention_decode_duration_ms" not in built  # null: no expiry, so no tensor


def test_prompt_builder_end_ids_stop_words_and_client_overrides(codec) -> None:
    _, prompt = text_lib()
    builder = prompt.PromptBuilder(codec, PARAMS)
    req = builder.read_request(_request(text_input="Hi", max_tokens=4, stop_words=["Hello"],
                                        retention_token_range_starts=[1], retention_token_range_ends=[-1],
                                        retention_token_range_priorities=[5]))
    [built] = builder.build([req])
    assert built["end_id"].tolist() == [[2]] and built["pad_id"].tolist() == [[3]]
    text, _ = text_lib()
    stops = text.parse_word_list(built["stop_words_list"][0])
    assert stops == [codec.encode_words(["zz"])[0], [4], codec.encode_words(["Hello"])[0]]
    assert built["retention_token_range_priorities"].tolist() == [[5]]
    assert built["retention_token_range_durations_ms"].tolist() == [[-1]]
    assert "bad_words_list" not in built
    # without a system prompt the recipe's system_prompt rule has nothing to mark
    [plain] = builder.build([builder.read_request(_request(text_input="Hi", max_tokens=4))])
    assert "retention_token_range_starts" not in plain


@pytest.mark.parametrize(("inputs", "message"), [
    ({"text_input": "", "max_tokens": 4}, "empty"),
    ({"text_input": "Hi", "max_tokens": 0}, "at least 1"),
    ({"text_input": "Hi", "max_tokens": 79}, "exceeds max_seq_len"),
    ({"text_input": "word " * 100, "max_tokens": 4}, "max_input_len"),
    ({"text_input": "Hi", "max_tokens": 4, "retention_token_range_starts": [0]}, "same length"),
])
def test_prompt_builder_refuses_bad_requests(codec, inputs, message) -> None:
    _, prompt = text_lib()
    builder = prompt.PromptBuilder(codec, PARAMS)
    with pytest.raises(prompt.RequestError, match=message):
        req = builder.read_request(_request(**inputs))
        [built] = builder.build([req])
        if isinstance(built, Exception):
            raise built
