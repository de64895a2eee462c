"""KV-retention ranges against TensorRT-LLM's executor: the port of its validation is checked against the
kv_retention contract fixture (derived from kvCacheRetentionConfig.cpp), and everything trtbuild emits —
for any combination of recipe rules, any prompt, any ragged batch — passes that validation and means what
the rules say (earlier rules win)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trtbuild.contracts import load_fixture
from trtbuild.contracts.trtllm import retention_rules

from .helpers import text_lib

TEXT, PROMPT = text_lib()
FIXTURE = load_fixture("kv_retention").data


# ------------------------------------------------------------------------------ the port vs the source
def test_the_port_uses_the_executors_constants_and_messages():
    rules = retention_rules()
    assert (rules.min_priority, rules.max_priority, rules.default_priority) == \
        (TEXT.MIN_PRIORITY, TEXT.MAX_PRIORITY, TEXT.DEFAULT_PRIORITY)
    assert (rules.no_end, rules.no_expiry) == (TEXT.NO_END, TEXT.NO_EXPIRY)
    assert TEXT.RETENTION_ERRORS["priority"] == rules.priority_message
    assert [(rule, TEXT.RETENTION_ERRORS[rule]) for rule, _ in rules.checks] == list(rules.checks)
    assert FIXTURE["sort_key"] == "tokenStart"


def _validate(ranges):
    """The port on (start, end|None) pairs, as in the source's own examples."""
    TEXT.check_retention_ranges([(s, -1 if e is None else e, 50, -1) for s, e in ranges])


@pytest.mark.parametrize("example", FIXTURE["examples"], ids=lambda e: str(e["ranges"]))
def test_the_port_agrees_with_the_examples_in_the_executors_source(example):
    if example["valid"]:
        _validate(example["ranges"])
    else:
        with pytest.raises(TEXT.RetentionError):
            _validate(example["ranges"])


@pytest.mark.parametrize(("ranges", "rule"), [
    ([(0, 10, 101, -1)], "priority"), ([(0, 10, -1, -1)], "priority"),
    ([(0, -1, 50, -1), (20, 30, 50, -1)], "open_end_not_last"),
    ([(-2, 5, 50, -1)], "negative_start"), ([(5, 5, 50, -1)], "empty_range"), ([(9, 3, 50, -1)], "empty_range"),
    ([(0, 64, 50, -1), (60, 80, 50, -1)], "overlap"), ([(60, 80, 50, -1), (0, 64, 50, -1)], "overlap"),
])
def test_the_port_refuses_with_the_executors_message(ranges, rule):
    with pytest.raises(TEXT.RetentionError) as exc:
        TEXT.check_retention_ranges(ranges)
    assert str(exc.value) == TEXT.RETENTION_ERRORS[rule]


# ------------------------------------------------------------------------------- what trtbuild emits
def _token_owner(rules, system_len, prompt_len):
    """Per prompt token: (priority, duration) of the first rule covering it, None if none does."""
    owner = []
    for t in range(prompt_len):
        found = None
        for rule in rules:
            tokens = rule["tokens"]
            if tokens == "system_prompt":
                hit = t < system_len
            elif tokens == "prompt":
                hit = True
            else:
                hit = tokens["start"] <= t and (tokens["end"] is None or t < tokens["end"])
            if hit:
                d = rule["duration_ms"]
                found = (rule["priority"], -1 if d is None else d)
                break
        owner.append(found)
    return owner


def _range_owner(ranges, prompt_len):
    owner = [None] * prompt_len
    for start, end, prio, dur in ranges:
        for t in range(start, prompt_len if end == -1 else min(end, prompt_len)):
            assert owner[t] is None, "overlapping ranges"
            owner[t] = (prio, dur)
    return owner


def block_priorities(ranges, block, seq_len):
    """What the executor gives each prompt block: the range containing the block's first token (a port of
    KvCacheRetentionConfig::getPerBlockRetentionPriorityDuration, read from the same source)."""
    ordered = sorted(ranges, key=lambda r: r[0])
    out = []
    for loc in range(0, seq_len, block):
        hit = next((r for r in ordered if r[0] <= loc and (r[1] == -1 or loc < r[1])), None)
        out.append(None if hit is None else (hit[2], hit[3]))
    return out


rule_st = st.fixed_dictionaries({
    "tokens": st.one_of(
        st.sampled_from(["system_prompt", "prompt"]),
        st.builds(lambda s, n: {"start": s, "end": None if n is None else s + n},
                  st.integers(0, 80), st.one_of(st.none(), st.integers(1, 60)))),
    "priority": st.integers(0, 100),
    "duration_ms": st.one_of(st.none(), st.integers(0, 10**6)),
})


@given(rules=st.lists(rule_st, max_size=6), prompt_len=st.integers(1, 120), data=st.data())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_rules_give_ranges_the_executor_accepts_and_earlier_rules_win(rules, prompt_len, data):
    system_len = data.draw(st.integers(0, prompt_len))
    ranges = TEXT.retention_ranges(rules, system_len=system_len, prompt_len=prompt_len)
    TEXT.check_retention_ranges(ranges)
    assert ranges == sorted(ranges) and all(start < prompt_len for start, _, _, _ in ranges)
    assert _range_owner(ranges, prompt_len) == _token_owner(rules, system_len, prompt_len)


@given(rows=st.lists(st.tuples(st.integers(1, 100), st.integers(0, 100)), min_size=1, max_size=5),
       rules=st.lists(rule_st, min_size=1, max_size=5))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_padding_rows_of_a_ragged_batch_never_changes_what_a_row_means(rows, rules):
    lens = [n for n, _ in rows]
    per_row = [TEXT.retention_ranges(rules, system_len=min(s, n), prompt_len=n) for n, s in rows]
    padded = TEXT.pad_retention_rows(per_row, lens)
    assert len({len(r) for r in padded}) == 1
    for real, row, n in zip(per_row, padded, lens):
        TEXT.check_retention_ranges(row)
        for block in (1, 16, 32):
            assert block_priorities(row, block, n) == block_priorities(real, block, n)


# ----------------------------------------------------------------------- the prompt builder, end to end
@pytest.fixture(scope="module")
def codec(tiny_model: Path):
    return TEXT.TextCodec(str(tiny_model), add_special_tokens=True, skip_special_tokens=True)


PARAMS = {"end_ids": "2", "pad_id": "3", "max_input_len": "200", "max_seq_len": "260",
          "enable_kv_cache_reuse": "true", "stop_words": "[]", "bad_words": "[]",
          "kv_retention": '{"rules": [{"tokens": "system_prompt", "priority": 90, "duration_ms": 600000}, '
                          '{"tokens": "prompt", "priority": 60, "duration_ms": null}], '
                          '"decode_priority": 35, "decode_duration_ms": null}'}


def _batch(texts, systems=None, **extra):
    arrays = {"text_input": np.array([[t.encode()] for t in texts], dtype=object),
              "max_tokens": np.full((len(texts), 1), 4, dtype=np.int32)}
    if systems is not None:
        arrays["system_prompt"] = np.array([[s.encode()] for s in systems], dtype=object)
    arrays.update({k: np.asarray(v, dtype=np.int32) for k, v in extra.items()})
    return arrays.get


def test_system_prompt_then_prompt_gives_two_adjacent_ranges(codec):
    """The case from the issue: (0,30),(0,55) before; now (0,30),(30,55) — what the rules mean."""
    builder = PROMPT.PromptBuilder(codec, PARAMS)
    [built] = builder.build([builder.read_request(_batch(["Hello there"], ["You are terse."]))])
    system = len(codec.encode_batch(["You are terse."])[0])
    n = int(built["input_lengths"][0, 0])
    assert built["retention_token_range_starts"].tolist() == [[0, system]]
    assert built["retention_token_range_ends"].tolist() == [[system, n]]
    assert built["retention_token_range_priorities"].tolist() == [[90, 60]]
    assert built["retention_token_range_durations_ms"].tolist() == [[600000, -1]]


def test_a_ragged_multi_row_request_is_padded_past_each_prompt(codec):
    builder = PROMPT.PromptBuilder(codec, PARAMS)
    req = builder.read_request(_batch(["Hello there, how are you today?", "Hi"], ["Be brief.", ""]))
    [built] = builder.build([req])
    starts, ends = built["retention_token_range_starts"], built["retention_token_range_ends"]
    prios = built["retention_token_range_priorities"]
    assert starts.shape == (2, 2)
    n1 = int(built["input_lengths"][1, 0])
    # row 1 has no system prompt: one real range (the prompt) and one padding range after its prompt
    assert (starts[1, 0], ends[1, 0], prios[1, 0]) == (0, n1, 60)
    assert starts[1, 1] >= n1 and prios[1, 1] == TEXT.DEFAULT_PRIORITY
    for r in range(2):
        TEXT.check_retention_ranges([tuple(int(built[name][r, k]) for name in PROMPT.RETENTION) for k in range(2)])


@pytest.mark.parametrize(("starts", "ends", "prios", "message"), [
    ([0, 4], [10, 12], [50, 60], "Token ranges must be non-overlapping."),
    ([0, 20], [-1, 30], [50, 60], "Invalid use of end indicator."),
    ([5], [5], [50], "Range must have a positive, non-zero length."),
    ([0], [10], [101], "Invalid priority value. Must be between 0 and 100"),
    ([-3], [10], [50], "Token indices must be non-negative."),
])
def test_client_retention_overrides_are_checked_like_the_executor(codec, starts, ends, prios, message):
    builder = PROMPT.PromptBuilder(codec, PARAMS)
    req = builder.read_request(_batch(["Hello"], retention_token_range_starts=[starts],
                                      retention_token_range_ends=[ends], retention_token_range_priorities=[prios]))
    [result] = builder.build([req])
    assert isinstance(result, PROMPT.RequestError)
    assert message in str(result) and "retention ranges" in str(result)


def test_client_overrides_that_the_executor_accepts_pass_unchanged(codec):
    builder = PROMPT.PromptBuilder(codec, PARAMS)
    req = builder.read_request(_batch(["Hello"], retention_token_range_starts=[[40, 0]],
                                      retention_token_range_ends=[[-1, 40]],
                                      retention_token_range_priorities=[[10, 90]]))
    [built] = builder.build([req])
    assert built["retention_token_range_starts"].tolist() == [[40, 0]]
    assert built["retention_token_range_durations_ms"].tolist() == [[-1, -1]]
    bad = builder.read_request(_batch(["Hello"], retention_token_range_starts=[[0]],
                                      retention_token_range_ends=[[8]], retention_token_range_priorities=[[50]],
                                      retention_decode_priority=[[250]]))
    [result] = builder.build([bad])
    assert isinstance(result, PROMPT.RequestError) and "retention_decode_priority" in str(result)
