"""The reference's request conversion and executor checks, without a server (reference_requests.py).

Each test names the upstream place it mirrors (files and commits in backend_semantics.json).
"""

from __future__ import annotations

import numpy as np
import pytest

from .helpers import CONTEXT, case_tensors, tensors

VOCAB = CONTEXT["vocab_size"]


@pytest.fixture(scope="module")
def rq(reference_modules):
    return reference_modules.requests


def limits(rq, **kw):
    base = dict(decoupled=True, exclude_input_param=True, max_input_len=64, max_seq_len=512, max_beam_width=2,
                vocab_size=VOCAB)
    return rq.Limits(**{**base, **kw})


def test_every_fixture_validation_case_gets_the_fixtures_message(rq, semantics) -> None:
    """samplingConfig.cpp checks, utils.cc word lists and retention, LlmRequest::validate, fetchNewRequests."""
    lim = limits(rq)
    for case in semantics["validation"]:
        expected = case["message"].format(**CONTEXT)
        inputs = case_tensors(case, [5, 6, 7])
        if case["stage"] == "enqueue":
            with pytest.raises(rq.EnqueueError) as err:
                rq.make_requests(inputs, lim)
            assert str(err.value).startswith(expected), case["id"]
        else:
            (req,) = rq.make_requests(inputs, lim)
            rq.validate(req, lim)
            prefix = rq.FETCH if case["stage"] == "fetch" else ""
            assert req.fetch_error and req.fetch_error.startswith(prefix + expected), case["id"]


def test_what_upstream_accepts_is_accepted(rq) -> None:
    """min_tokens > request_output_len, top_p <= 0 (utils.cc:558-563), end_id -1, an overlong output."""
    lim = limits(rq)
    (req,) = rq.make_requests(tensors([5, 6], 4, min_tokens=50), lim)
    assert rq.validate(req, lim).fetch_error is None and req.max_new == 4
    (req,) = rq.make_requests(tensors([5, 6], 4, runtime_top_p=0.0), lim)
    assert req.sampling.top_p is None
    (req,) = rq.make_requests(tensors([5, 6], 4, end_id=-1), lim)
    assert rq.validate(req, lim).fetch_error is None
    (req,) = rq.make_requests(tensors([5, 6, 7], 600), lim)  # llmRequest.cpp:287-299: clipped, not refused
    assert rq.validate(req, lim).fetch_error is None and req.max_new == 512 - 3
    assert "Number of requested output tokens is changed to (509)" in req.warnings[0]


def test_rows_are_split_and_cut_to_their_input_lengths(rq) -> None:
    """utils.cc:181-210: several rows -> one executor request each, padding stripped by input_lengths."""
    inputs = tensors([[5, 6, 7, 8], [9, 10]], 3)
    reqs = rq.make_requests(inputs, limits(rq))
    assert [r.input_ids for r in reqs] == [[5, 6, 7, 8], [9, 10]]
    assert [(r.row, r.rows) for r in reqs] == [(0, 2), (1, 2)]
    with pytest.raises(rq.EnqueueError, match="decoupled transaction policy"):  # utils.cc:900-903
        rq.make_requests(inputs, limits(rq, decoupled=False))
    with pytest.raises(rq.EnqueueError, match=r"input_lengths\[1\] = 5 is outside"):
        rq.make_requests(tensors([[5, 6, 7, 8], [9, 10]], 3, lengths=[4, 5]), limits(rq))


def test_one_row_input_lengths_mismatch_is_refused_with_what_upstream_would_do(rq) -> None:
    """utils.cc:212-215 ignores input_lengths for one row; the reference says so instead of guessing."""
    with pytest.raises(rq.EnqueueError, match="ignores input_lengths for a one-row request and would run all 4"):
        rq.make_requests(tensors([5, 6, 7, 8], 3, lengths=[2]), limits(rq))


def test_streaming_and_request_flags_come_from_the_first_row(rq) -> None:
    """utils.cc:401 / model_instance_state.cc:915,968-974: one value per Triton request, the first one."""
    inputs = tensors([[5, 6], [7, 8]], 3)
    inputs["streaming"] = np.array([[True], [False]])
    inputs["return_num_output_tokens"] = np.array([[False], [True]])
    inputs["return_perf_metrics"] = np.array([[True], [False]])
    a, b = rq.make_requests(inputs, limits(rq))
    assert a.streaming and b.streaming
    assert not a.return_num_output_tokens and not b.return_num_output_tokens
    assert a.write_perf_metrics and not b.write_perf_metrics  # the row's own flag AND the first row's
    with pytest.raises(rq.EnqueueError, match="Streaming is only supported if model is deployed using decoupled"):
        rq.make_requests(tensors([5, 6], 3, streaming=True), limits(rq, decoupled=False))


def test_exclude_input_in_output_request_then_parameter_then_false(rq) -> None:
    """utils.cc:915-927 and model_instance_state.cc:798-807 with model_state.cc:310-325's booleans."""
    (req,) = rq.make_requests(tensors([5], 2), limits(rq, exclude_input_param=True))
    assert req.exclude_input is True
    (req,) = rq.make_requests(tensors([5], 2, exclude_input_in_output=False), limits(rq, exclude_input_param=True))
    assert req.exclude_input is False
    assert rq.parse_bool_param(None, False) == (False, "parameter is not specified: using false")
    assert rq.parse_bool_param("yes", False)[0] is False
    assert [rq.parse_bool_param(v, False)[0] for v in ("True", "true", "TRUE", "1")] == [True] * 4


def test_word_lists_convert_like_convert_word_list(rq) -> None:
    """utils.cc:415-451: [tokens..., offsets...], -1 padding after the last offset."""
    assert rq.convert_word_list([5, 6, 7, 2, 3, -1]) == [[5, 6], [7]]
    assert rq.convert_word_list([]) == []
    for flat, why in (([5, 6, 7, 1, -1, 2], "additional -1s"), ([5, 6, 4, -1], "out-of-bound offsets")):
        with pytest.raises(rq.EnqueueError, match=why):
            rq.convert_word_list(flat)


def test_children_and_beams(rq) -> None:
    """samplingConfig.cpp updateNumReturnBeams; num_return_sequences with beam 1 needs decoupled here."""
    (req,) = rq.make_requests(tensors([5], 2, num_return_sequences=3), limits(rq))
    assert req.sampling.sub_requests == 3 and req.sampling.return_beams == 1
    (req,) = rq.make_requests(tensors([5], 2, beam_width=2, num_return_sequences=1), limits(rq))
    assert req.sampling.sub_requests == 1 and req.sampling.return_beams == 1
    with pytest.raises(rq.EnqueueError, match="needs the decoupled transaction policy"):
        rq.make_requests(tensors([5], 2, num_return_sequences=2), limits(rq, decoupled=False))


def test_unsupported_inputs_are_refused_not_ignored(rq) -> None:
    inputs = tensors([5], 2, lora_task_id=np.array([[3]], dtype=np.uint64))
    with pytest.raises(rq.EnqueueError, match="lora_task_id: LoRA adapters are not supported by the CPU reference"):
        rq.make_requests(inputs, limits(rq))
    (req,) = rq.make_requests(tensors([5], 2, embedding_bias=np.zeros((1, 0), np.float32)), limits(rq))
    assert req.embedding_bias is None  # utils.cc:1006-1016: empty bias ignored
