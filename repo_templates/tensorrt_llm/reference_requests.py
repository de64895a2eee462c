"""Triton request -> executor requests: the CPU reference's copy of the C++ backend's conversion and checks.

Pure Python + numpy (no Triton, no torch), so it is unit-tested directly. It mirrors, in order:
`utils.cc` (`splitBatchInputsTensors`, `createRequestsFromInputTensors`, `getSamplingConfigFromTensors`,
`convertWordList`, retention), the executor's `SamplingConfig` and `Request` checks (both run while the
backend enqueues, so a failure refuses the whole Triton request) and `LlmRequest::validate` plus the
executor's `fetchNewRequests` checks (they run later, per executor request: a failure is that request's
final error response). References "utils.cc:N" etc. point at the files recorded, with their commits, in
trtbuild/contracts/trtllm_1_2/backend_semantics.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ASSERT = "[TensorRT-LLM][ERROR] Assertion failed: "
FETCH = "Encountered an error when fetching new request: "
GUIDE_TYPES = ("json", "json_schema", "regex", "ebnf_grammar")  # utils.cc:803-807
# Inputs the reference cannot honour on CPU: refused instead of silently ignored (REFERENCE.md).
UNSUPPORTED = {
    "lora_task_id": "LoRA adapters", "lora_weights": "LoRA adapters", "lora_config": "LoRA adapters",
    "prompt_embedding_table": "prompt tables (p-tuning)", "draft_input_ids": "speculative decoding (draft tokens)",
    "draft_logits": "speculative decoding (draft tokens)", "encoder_input_features": "encoder-decoder inputs",
    "decoder_input_ids": "encoder-decoder inputs", "cross_attention_mask": "encoder-decoder inputs",
    "mrope_rotary_cos_sin": "multimodal rope", "context_phase_params": "disaggregated serving",
}


class EnqueueError(Exception):
    """The backend refuses the whole Triton request while enqueueing (model_instance_state.cc:1011)."""


@dataclass(frozen=True)
class Limits:
    """What the executor knows about the engine (the reference reads it from config.pbtxt parameters)."""

    decoupled: bool
    exclude_input_param: bool
    max_input_len: int
    max_seq_len: int
    max_beam_width: int
    vocab_size: int
    gather_context_logits: bool = False
    gather_generation_logits: bool = False
    lookahead: bool = False


@dataclass
class Sampling:
    beam_width: int = 1
    top_k: int | None = None
    top_p: float | None = None
    top_p_min: float | None = None
    top_p_decay: float | None = None
    top_p_reset_ids: int | None = None
    temperature: float | None = None
    min_tokens: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    length_penalty: float | None = None
    early_stopping: int | None = None
    beam_search_diversity_rate: float | None = None
    seed: int = 0
    num_return_sequences: int | None = None

    @property
    def return_beams(self) -> int:
        """getNumReturnBeams: beams in each result (samplingConfig.cpp updateNumReturnBeams)."""
        n = self.num_return_sequences
        return min(n, self.beam_width) if (n and self.beam_width > 1) else self.beam_width

    @property
    def sub_requests(self) -> int:
        """Sequences generated separately (child requests) when beam_width is 1."""
        return (self.num_return_sequences or 1) if self.beam_width == 1 else 1


@dataclass
class ExecRequest:
    """One executor request: one row of a Triton request (utils.cc:896-1104)."""

    row: int
    rows: int
    input_ids: list[int]
    max_new: int
    streaming: bool
    exclude_input: bool
    sampling: Sampling
    end_id: int | None = None
    pad_id: int | None = None
    stop_words: list[list[int]] = field(default_factory=list)
    bad_words: list[list[int]] = field(default_factory=list)
    embedding_bias: np.ndarray | None = None
    return_log_probs: bool = False
    return_context_logits: bool = False
    return_generation_logits: bool = False
    return_perf_metrics: bool = False
    return_num_input_tokens: bool = False
    return_num_output_tokens: bool = False
    write_perf_metrics: bool = False
    """The row's own flag AND the request's first-row flag (model_instance_state.cc:968-974, 1284)."""
    guided: bool = False
    remaining: int = 0
    """Sequences of this request not final yet (model.py's bookkeeping)."""
    fetch_error: str | None = None
    """Set by `validate`: this request fails with this message instead of generating."""
    warnings: list[str] = field(default_factory=list)


def parse_bool_param(value: str | None, default: bool) -> tuple[bool, str | None]:
    """ModelState::GetParameter<bool> (model_state.cc:310-325): anything else falls back with a warning."""
    if value in ("True", "true", "TRUE", "1"):
        return True, None
    if value in ("False", "false", "FALSE", "0"):
        return False, None
    why = "is not specified" if value is None else f"cannot be read as a boolean ({value!r})"
    return default, f"parameter {why}: using {str(default).lower()}"


def request_flag(inputs: dict[str, np.ndarray], name: str) -> bool:
    """utils.cc getRequestBooleanInputTensor: the FIRST element, for the whole Triton request."""
    arr = inputs.get(name)
    return bool(arr is not None and arr.size and arr.reshape(-1)[0])


def split_rows(inputs: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """splitBatchInputsTensors (utils.cc:160-216): one tensor set per row, input_ids cut to input_lengths.

    With one row nothing is cut: the C++ backend ignores `input_lengths` and uses every `input_ids`
    token (utils.cc:212-215). The reference refuses that case when the two disagree (REFERENCE.md).
    """
    skip = ("stop", "streaming")  # utils.cc:240-246: read separately, never split
    ids = inputs.get("input_ids")
    if ids is None:
        if "encoder_input_features" in inputs:
            raise EnqueueError(f"{UNSUPPORTED['encoder_input_features']} are not supported by the CPU reference")
        raise EnqueueError("inputTokens or encoderInputFeatures tensor not provided")  # utils.cc:178
    ids = ids.reshape(ids.shape[0], -1)
    rows = int(ids.shape[0])
    tensors = {k: v for k, v in inputs.items() if k not in skip}
    lengths = inputs.get("input_lengths")
    if rows == 1:
        if lengths is not None and lengths.size and int(lengths.reshape(-1)[0]) != ids.shape[1]:
            raise EnqueueError(
                f"input_lengths ({int(lengths.reshape(-1)[0])}) disagrees with input_ids ({ids.shape[1]} tokens). "
                "The C++ backend ignores input_lengths for a one-row request and would run all "
                f"{ids.shape[1]} tokens, padding included (CPU reference refuses the mismatch)")
        return [{**tensors, "input_ids": ids}]
    if lengths is None:
        raise EnqueueError(ASSERT + "input lengths tensor not provided")  # utils.cc:185
    lengths = lengths.reshape(rows, -1)[:, 0]
    out = []
    for r in range(rows):
        n = int(lengths[r])
        if n < 0 or n > ids.shape[1]:  # ITensor::slice refuses (message not derived)
            raise EnqueueError(f"input_lengths[{r}] = {n} is outside the input_ids row (0..{ids.shape[1]} tokens)")
        row = {k: v[r: r + 1] for k, v in tensors.items() if v.ndim and v.shape[0] == rows}
        row["input_ids"] = ids[r: r + 1, :n]
        out.append(row)
    return out


def _one(t: dict[str, np.ndarray], name: str, kind: type = int):
    arr = t.get(name)
    if arr is None or arr.size == 0:
        return None
    return kind(arr.reshape(-1)[0].item())


def convert_word_list(flat: list[int]) -> list[list[int]]:
    """utils.cc:415-451: [tokens..., offsets...] with -1 padding after the last offset."""
    text = "".join(f"{v} " for v in flat)
    if len(flat) % 2:
        raise EnqueueError(ASSERT + "Sparse list must not have odd length: " + text)
    half, words, start = len(flat) // 2, [], 0
    for i in range(half, len(flat)):
        if flat[i] == -1:
            if any(v != -1 for v in flat[i + 1:]):
                raise EnqueueError(ASSERT + "Sparse list must not have additional -1s: " + text)
            break
        if flat[i] > half:
            raise EnqueueError(ASSERT + "Sparse list must not have out-of-bound offsets: " + text)
        if i != half and flat[i] <= flat[i - 1]:
            raise EnqueueError(ASSERT + "Sparse list must not have non-increasing offsets: " + text)
        words.append([int(v) for v in flat[start: flat[i]]])
        start = max(start, flat[i])
    return words


def sampling_from(t: dict[str, np.ndarray]) -> Sampling:
    """getSamplingConfigFromTensors (utils.cc:549-610) + the SamplingConfig checks, in constructor order."""
    s = Sampling()
    s.beam_width = 1 if _one(t, "beam_width") is None else _one(t, "beam_width")  # utils.cc:551-553
    s.top_k, s.top_p = _one(t, "runtime_top_k"), _one(t, "runtime_top_p", float)
    if s.top_p is not None and s.top_p <= 0:  # utils.cc:560-563: a non-positive top_p means "unset"
        s.top_p = None
    top_p_min, top_p_decay = _one(t, "runtime_top_p_min", float), _one(t, "runtime_top_p_decay", float)
    top_p_reset = _one(t, "runtime_top_p_reset_ids")
    s.temperature, s.length_penalty = _one(t, "temperature", float), _one(t, "len_penalty", float)
    s.repetition_penalty, s.min_tokens = _one(t, "repetition_penalty", float), _one(t, "min_tokens")
    s.beam_search_diversity_rate = _one(t, "beam_search_diversity_rate", float)
    s.presence_penalty, s.frequency_penalty = _one(t, "presence_penalty", float), _one(t, "frequency_penalty", float)
    s.early_stopping = _one(t, "early_stopping")
    s.seed = _one(t, "seed") or 0
    s.top_p_min, s.top_p_decay, s.top_p_reset_ids = top_p_min, top_p_decay, top_p_reset
    s.num_return_sequences = _one(t, "num_return_sequences")
    checks = [  # samplingConfig.cpp check* functions, constructor order; (condition that must hold, text)
        (s.beam_width > 0, "beamWidth > 0 && beamWidth <= static_cast<SizeType32 const>"
                           "(tensorrt_llm::kernels::kMaxBeamWidth)", "beam_width", s.beam_width),
        (s.top_k is None or s.top_k >= 0, "topK.value() >= 0", "runtime_top_k", s.top_k),
        (s.top_p is None or s.top_p <= 1, "topP.value() <= 1.f", "runtime_top_p", s.top_p),
        (top_p_min is None or top_p_min >= 0, "topPMin.value() >= 0.f", "runtime_top_p_min", top_p_min),
        (top_p_min is None or top_p_min <= 1, "topPMin.value() <= 1.f", "runtime_top_p_min", top_p_min),
        (top_p_reset is None or top_p_reset >= 0, "topPResetIds.value() >= 0", "runtime_top_p_reset_ids", top_p_reset),
        (top_p_decay is None or top_p_decay > 0, "topPDecay.value() > 0.f", "runtime_top_p_decay", top_p_decay),
        (top_p_decay is None or top_p_decay <= 1, "topPDecay.value() <= 1.f", "runtime_top_p_decay", top_p_decay),
        (s.temperature is None or s.temperature >= 0, "temperature.value() >= 0.f", "temperature", s.temperature),
        (s.min_tokens is None or s.min_tokens >= 0, "minTokens.value() >= 0", "min_tokens", s.min_tokens),
        (s.beam_search_diversity_rate is None or s.beam_search_diversity_rate >= 0,
         "beamSearchDiversityRate.value() >= 0.f", "beam_search_diversity_rate", s.beam_search_diversity_rate),
        (s.repetition_penalty is None or s.repetition_penalty > 0, "repetitionpenalty.value() > 0.f",
         "repetition_penalty", s.repetition_penalty),
        (s.length_penalty is None or s.length_penalty >= 0, "lengthPenalty.value() >= 0.f", "len_penalty",
         s.length_penalty),
        (s.early_stopping is None or s.early_stopping >= 0, "earlyStopping.value() >= 0", "early_stopping",
         s.early_stopping),
        (s.num_return_sequences is None or s.num_return_sequences > 0, "numReturnSequences.value() > 0",
         "num_return_sequences", s.num_return_sequences),
        (s.num_return_sequences is None or s.beam_width == 1 or s.num_return_sequences <= s.beam_width,
         "beamWidth == 1 || numReturnSequences.value() <= beamWidth", "num_return_sequences", s.num_return_sequences),
    ]
    for ok, expr, name, value in checks:
        if not ok:
            raise EnqueueError(f"{ASSERT}{expr} ({name} = {value})")
    return s


def check_retention(t: dict[str, np.ndarray]) -> None:
    """getKvCacheRetentionConfigFromTensors (utils.cc:739-813) + KvCacheRetentionConfig's checks.

    Retention only steers KV-cache eviction: the reference checks it like the executor, then ignores it.
    """
    if "retention_token_range_starts" not in t:
        return
    starts = [int(v) for v in t["retention_token_range_starts"].reshape(-1)]
    ends = t.get("retention_token_range_ends")
    if ends is None or ends.size != len(starts):
        raise EnqueueError("retention_token_range_ends must be provided, and have the same length as "
                           "retention_token_range_starts")
    prios = t.get("retention_token_range_priorities")
    if prios is None or prios.size != len(starts):
        raise EnqueueError("retention_token_range_priorities must be provided, and have the same length as "
                           "retention_token_range_starts")
    durations = t.get("retention_token_range_durations_ms")
    if durations is not None and durations.size != len(starts):
        raise EnqueueError("retention_token_range_durations_ms must have the same length as "
                           "retention_token_range_starts")
    ranges = []
    for start, end, prio in zip(starts, ends.reshape(-1).tolist(), prios.reshape(-1).tolist()):
        if not 0 <= prio <= 100:
            raise EnqueueError(ASSERT + "Invalid priority value. Must be between 0 and 100")
        ranges.append((start, None if end == -1 else int(end)))
    ranges.sort(key=lambda r: r[0])
    for i, (start, end) in enumerate(ranges):
        if end is None and i != len(ranges) - 1:
            raise EnqueueError("Invalid use of end indicator.")
        if start < 0:
            raise EnqueueError("Token indices must be non-negative.")
        if end is not None and start >= end:
            raise EnqueueError("Range must have a positive, non-zero length.")
        if i != len(ranges) - 1 and end is not None and end > ranges[i + 1][0]:
            raise EnqueueError("Token ranges must be non-overlapping.")


def make_requests(inputs: dict[str, np.ndarray], limits: Limits) -> list[ExecRequest]:
    """createRequestsFromInputTensors (utils.cc:896-1104) for every row; raises EnqueueError."""
    streaming = request_flag(inputs, "streaming")
    rows = split_rows(inputs)
    if not limits.decoupled and len(rows) > 1:  # utils.cc:900-903
        raise EnqueueError("Batch size > 1 requires the tensorrt_llm backend to be using decoupled transaction policy")
    if streaming and not limits.decoupled:  # utils.cc:905-908
        raise EnqueueError("Streaming is only supported if model is deployed using decoupled mode.")
    for name, what in UNSUPPORTED.items():
        if name in inputs and inputs[name].size:
            raise EnqueueError(f"{name}: {what} are not supported by the CPU reference (the C++ backend "
                               "runs them on the engine); use a GPU target")
    out = []
    for r, t in enumerate(rows):
        exclude = _one(t, "exclude_input_in_output", bool)  # utils.cc:915-927: request, else the parameter
        max_new = _one(t, "request_output_len")
        if max_new is None:
            raise EnqueueError("request_output_len is not present in the request")  # utils.cc:949
        sampling = sampling_from(t)  # utils.cc:990
        if not limits.decoupled and sampling.sub_requests > 1:
            raise EnqueueError("num_return_sequences > 1 with beam_width 1 sends one response per sequence: the "
                               "CPU reference needs the decoupled transaction policy for it (runtime.streaming: true)")
        stop = t.get("stop_words_list")
        bad = t.get("bad_words_list")
        bias = t.get("embedding_bias")
        bias = None if bias is None or bias.size == 0 else bias.reshape(-1).astype(np.float32)  # utils.cc:1006-1015
        if bias is not None and bias.size != limits.vocab_size:
            raise EnqueueError(f"embedding_bias has {bias.size} values but the vocabulary has {limits.vocab_size} "
                               "(CPU reference check)")
        check_retention(t)
        if "lookahead_window_size" in t:  # utils.cc:866-892
            for name in ("lookahead_ngram_size", "lookahead_verification_set_size"):
                if name not in t:
                    raise EnqueueError(f"Failed to extract {name}")
            if not limits.lookahead:
                raise EnqueueError(ASSERT + "Cannot set the request lookahead decoding configuration when model "
                                   "instance lookahead parameters are not set.")
        guide = t.get("guided_decoding_guide_type")
        guide_type = None if guide is None or not guide.size else guide.reshape(-1)[0]
        guided = (guide_type.decode("utf-8", "replace") if isinstance(guide_type, bytes) else guide_type) in GUIDE_TYPES
        ids = [int(v) for v in t["input_ids"].reshape(-1)]
        if not ids:  # executor Request::Impl::validate
            raise EnqueueError(ASSERT + "!mInputTokenIds.empty()")
        if max_new <= 0:
            raise EnqueueError(f"{ASSERT}mMaxNewTokens > 0 (request_output_len = {max_new})")
        if guided and sampling.beam_width > 1:
            raise EnqueueError("Guided decoding does not support with beam search.")
        out.append(ExecRequest(
            row=r, rows=len(rows), input_ids=ids, max_new=max_new, streaming=streaming,
            exclude_input=limits.exclude_input_param if exclude is None else exclude, sampling=sampling,
            end_id=_one(t, "end_id"), pad_id=_one(t, "pad_id"),
            stop_words=convert_word_list([int(v) for v in stop.reshape(-1)]) if stop is not None else [],
            bad_words=convert_word_list([int(v) for v in bad.reshape(-1)]) if bad is not None else [],
            embedding_bias=bias, return_log_probs=bool(_one(t, "return_log_probs", bool)),
            return_context_logits=bool(_one(t, "return_context_logits", bool)),
            return_generation_logits=bool(_one(t, "return_generation_logits", bool)),
            return_perf_metrics=bool(_one(t, "return_perf_metrics", bool)), guided=guided,
            # read once per Triton request, from its first row (model_instance_state.cc:968-974)
            return_num_input_tokens=request_flag(inputs, "return_num_input_tokens"),
            return_num_output_tokens=request_flag(inputs, "return_num_output_tokens"),
            write_perf_metrics=request_flag(inputs, "return_perf_metrics")
            and bool(_one(t, "return_perf_metrics", bool))))
    return out


def validate(req: ExecRequest, limits: Limits) -> ExecRequest:
    """LlmRequest::validate (llmRequest.cpp:241-305) and Executor::Impl::fetchNewRequests' checks.

    A failure becomes this request's final error; an overlong request_output_len is clipped, not refused.
    """
    def fail(message: str) -> ExecRequest:
        req.fetch_error = FETCH + message
        return req

    if req.end_id is not None and not -1 <= req.end_id < limits.vocab_size:
        return fail(f"{ASSERT}EndId ({req.end_id}) is not within acceptable range [-1, {limits.vocab_size}).")
    prompt = len(req.input_ids)
    if prompt > limits.max_input_len:
        return fail(f"Prompt length ({prompt}) exceeds maximum input length ({limits.max_input_len}). Set log "
                    "level to info and check TRTGptModel logs for how maximum input length is set")
    if prompt + req.max_new > limits.max_seq_len:
        clipped = limits.max_seq_len - prompt
        req.warnings.append(f"Prompt length + number of requested output tokens + draft tokens per step ({prompt} "
                            f"+ {req.max_new} + 0) exceeds maximum sequence length ({limits.max_seq_len}). Number "
                            f"of requested output tokens is changed to ({clipped}).")
        req.max_new = clipped
    if req.return_context_logits and not limits.gather_context_logits:
        return fail(ASSERT + "Return context logit need to build engine with gather_context_logits")
    if req.return_generation_logits and not limits.gather_generation_logits:
        return fail(ASSERT + "To return generation logits, gather_generation_logits must be enabled in ExecutorConfig")
    if req.guided:
        return fail(ASSERT + "Request is specified with GuidedDecodingParams, but GuidedDecoder is not setup. "
                    "Please provide a valid GuidedDecodingConfig to setup GuidedDecoder.")
    if req.sampling.beam_width > limits.max_beam_width:  # createNewDecoderRequests, in the forward step
        req.fetch_error = (f"Encountered an error in forwardAsync function: {ASSERT}Beam width "
                           f"({req.sampling.beam_width}) must be smaller than maxBeamWidth ({limits.max_beam_width}) "
                           "passed to decoder setup function.")
        return req
    if req.max_new <= 0:
        return fail(f"{ASSERT}mMaxNewTokens > 0 (prompt of {prompt} tokens fills max_seq_len {limits.max_seq_len})")
    if req.streaming and req.sampling.beam_width > 1 and req.return_generation_logits:
        req.return_generation_logits = False  # llmRequest.h: "Disabling returnGenerationLogits."
        req.warnings.append("Returning generation logits when streaming is enabled and beamWidth > 1 is not "
                            "allowed. Disabling returnGenerationLogits.")
    return req
