"""The CPU reference served by a REAL tritonserver, queried directly on `tensorrt_llm` as the C++ backend is.

Each test names the upstream lines it mirrors (files and commits in backend_semantics.json).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from .helpers import CONTEXT, Stream, ask, case_tensors, tensors, tokens

pytestmark = pytest.mark.slow

PROMPT = [1, 44, 438, 83, 490]
VOCAB = CONTEXT["vocab_size"]


def test_prompt_is_never_streamed_and_counts_are_per_response(ref_server) -> None:
    """llmRequest.cpp:110-117 ("initial tokens ... are the input tokens IF NOT Streaming",
    model_instance_state.cc:1422) and model_instance_state.cc:1273-1282."""
    whole = ask(ref_server, tensors(PROMPT, 6, exclude_input_in_output=False, return_num_output_tokens=True,
                                    return_num_input_tokens=True))
    stream = ask(ref_server, tensors(PROMPT, 6, exclude_input_in_output=False, streaming=True,
                                     return_num_output_tokens=True))
    assert len(whole) == 1 and tokens(whole)[: len(PROMPT)] == PROMPT
    assert whole[0].scalar("num_output_tokens") == len(PROMPT) + 6 and whole[0].scalar("num_input_tokens") == 5
    assert tokens(stream) == tokens(whole)[len(PROMPT):]
    assert [r.scalar("num_output_tokens") for r in stream] == [1] * 6
    assert [r.final for r in stream] == [False] * 5 + [True]


def test_unset_exclude_input_in_output_takes_the_parameter(ref_server, ref_repo) -> None:
    """utils.cc:915-927: request value, else the exclude_input_in_output parameter (here "true")."""
    config = (ref_repo / "models" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert 'key: "exclude_input_in_output" value { string_value: "true" }' in config
    assert len(tokens(ask(ref_server, tensors(PROMPT, 4)))) == 4


def test_legacy_stop_input_cancels_with_an_empty_final_response(ref_server) -> None:
    """model_instance_state.cc:872-906 and :942-945."""
    stream = Stream(ref_server.grpc_url)
    try:
        stream.send(tensors(PROMPT, 400, streaming=True, end_id=-1), request_id="job-7")
        first = stream.next()[1]
        assert not first.final and len(first.ids()) == 1
        stream.send(tensors(PROMPT, 1, stop=True), request_id="job-7")
        seen, stop_answer, generated = [], None, 1
        while stop_answer is None or not seen or not seen[-1].final:
            rid, response = stream.next()
            assert rid == "job-7" and response.error is None
            if "output_ids" not in response.arrays:
                stop_answer = response  # the stop request's own response: empty, final
                assert response.final
            else:
                seen.append(response)
                generated += len(response.ids())
        assert generated < 400
    finally:
        stream.close()
    no_id = ask(ref_server, tensors(PROMPT, 1, stop=True))
    assert no_id[-1].error and "Trying to stop a request but request ID is not provided" in no_id[-1].error


def test_each_row_is_its_own_request_and_only_the_last_response_is_final(ref_server) -> None:
    """utils.cc:181-210 (split), model_instance_state.cc:1217-1225 (batch_index), :1396-1440 (FINAL)."""
    rows = [PROMPT, [1, 7, 9]]
    alone = [tokens(ask(ref_server, tensors(r, 5))) for r in rows]
    got = ask(ref_server, tensors(rows, 5, lengths=[5, 3], streaming=True))
    by_row: dict[int, list[int]] = {0: [], 1: []}
    for r in got:
        by_row[r.scalar("batch_index")] += r.ids()
    assert [by_row[0], by_row[1]] == alone
    assert [r.final for r in got] == [False] * (len(got) - 1) + [True]
    assert "batch_index" not in ask(ref_server, tensors(PROMPT, 2))[0].arrays  # one row: no batch_index


def test_num_return_sequences_and_beams(ref_server) -> None:
    """sequence_index only with num_return_sequences > 1 (:1227-1236); beams in one output_ids [1, beams, len]."""
    got = ask(ref_server, tensors(PROMPT, 4, runtime_top_k=40, seed=3, num_return_sequences=2))
    assert sorted(r.scalar("sequence_index") for r in got) == [0, 1]
    assert [r.final for r in got] == [False, True]
    beams = ask(ref_server, tensors(PROMPT, 4, beam_width=2, num_return_sequences=2, return_log_probs=True))
    (only,) = beams
    assert only.arrays["output_ids"].shape[:2] == (1, 2) and only.arrays["sequence_length"].shape == (1, 2)
    assert only.arrays["cum_log_probs"].shape == (1, 2) and only.scalar("sequence_index") == 0
    one = ask(ref_server, tensors(PROMPT, 4, beam_width=2))[0]  # num_return_sequences unset: every beam
    assert one.arrays["output_ids"].shape[1] == 2 and "sequence_index" not in one.arrays


def test_perf_metrics_are_the_ten_outputs_in_steady_clock_nanoseconds(ref_server, semantics) -> None:
    """model_instance_state.cc:1284-1337; RequestPerfMetrics::TimePoint is a steady_clock time point."""
    before = time.monotonic_ns()
    got = ask(ref_server, tensors(PROMPT, 3, streaming=True, return_perf_metrics=True))
    after = time.monotonic_ns()
    perf = [n for n, o in semantics["outputs"].items() if o["when"] == "return_perf_metrics"]
    assert len(perf) == 10
    for r in got:
        for name in perf:
            want = {"INT32": np.int32, "INT64": np.int64, "FP32": np.float32}[semantics["outputs"][name]["dtype"]]
            assert r.arrays[name].dtype == want and r.arrays[name].shape == (1, 1), name
    last = got[-1]
    times = [last.scalar(n) for n in ("arrival_time_ns", "first_scheduled_time_ns", "first_token_time_ns",
                                      "last_token_time_ns")]
    assert before <= times[0] <= times[1] <= times[2] <= times[3] <= after
    assert last.scalar("acceptance_rate") == 0.0 and last.scalar("total_draft_tokens") == 0
    assert last.scalar("kv_cache_alloc_total_blocks") == 1  # 5 + 3 tokens in one 32-token block


def test_context_logits_in_every_streamed_response(ref_server) -> None:
    """llmRequest.cpp:155-158 (this recipe gathers context logits)."""
    got = ask(ref_server, tensors(PROMPT, 3, streaming=True, return_context_logits=True))
    assert [r.arrays["context_logits"].shape for r in got] == [(1, len(PROMPT), VOCAB)] * 3


def test_every_executor_check_answers_with_the_backends_message(ref_server, semantics) -> None:
    """The fixture's validation cases, served: one final error, the upstream text, no traceback or path."""
    engine = {"gather_context_logits": True}  # this recipe's build
    cases = [c for c in semantics["validation"]
             if c.get("served", True) and all(engine.get(k) == v for k, v in c.get("engine", {}).items())]
    for case in cases:
        got = ask(ref_server, case_tensors(case, PROMPT))
        assert len(got) == 1 and got[0].final and got[0].error, case["id"]
        message = case["message"].format(**CONTEXT)
        if case["stage"] == "enqueue":
            assert message in got[0].error, (case["id"], got[0].error)
        else:
            assert "Executor failed process requestId " in got[0].error, case["id"]
            assert "due to the following error: " in got[0].error and message in got[0].error, case["id"]
        assert "Traceback" not in got[0].error and ".py" not in got[0].error, case["id"]
    assert len(tokens(ask(ref_server, tensors(PROMPT, 3)))) == 3  # still serving


def test_outputs_must_include_output_ids_and_a_one_row_length_mismatch_is_explained(ref_server) -> None:
    """model_instance_state.cc:1093-1109; utils.cc:212-215 (input_lengths ignored for one row upstream)."""
    got = ask(ref_server, tensors(PROMPT, 3), outputs=["sequence_length"])
    assert got[-1].error and "output_ids tensor must be present in list of output tensors" in got[-1].error
    got = ask(ref_server, tensors(PROMPT + [0, 0], 3, lengths=[5]))
    assert got[-1].error and "ignores input_lengths for a one-row request" in got[-1].error


def test_an_overlong_output_is_clipped_not_refused(ref_server) -> None:
    """llmRequest.cpp:287-299: request_output_len lowered to max_seq_len - prompt."""
    got = ask(ref_server, tensors(list(range(1, 60)), 600, end_id=-1, return_num_output_tokens=True))
    assert got[-1].error is None and got[-1].scalar("num_output_tokens") == 512 - 59


def test_a_cancelled_client_frees_the_worker(ref_server) -> None:
    """WaitForCancel (model_instance_state.cc:1549-1568): the next request is not stuck behind it."""
    stream = Stream(ref_server.grpc_url)
    stream.send(tensors(PROMPT, 450, streaming=True, end_id=-1))
    assert not stream.next()[1].final
    stream.close(cancel=True)
    start = time.monotonic()
    assert len(tokens(ask(ref_server, tensors(PROMPT, 2)))) == 2
    assert time.monotonic() - start < 30
