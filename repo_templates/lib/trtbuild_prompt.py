"""Prompt → `tensorrt_llm` request tensors, shared by `preprocessing` and `tensorrt_llm_bls`.

trtbuild copies this file, unchanged, next to the model that uses it. Pure numpy; the tokenizer
comes from trtbuild_text. Works on canonical names: `read_request` takes a function that returns an
input by its client name (`text_input`, `max_tokens`, ...); `build` returns arrays under the
`tensorrt_llm` input names (`input_ids`, `input_lengths`, ...).

Rules, applied the same way on both paths:
- the prompt is `system_prompt` (tokenized with the recipe's special tokens) + `text_input` (without),
  so the system prompt's token range is known; no system prompt: `text_input` with special tokens;
- client errors (RequestError, answered with an error response that names the input, never a
  traceback): an empty prompt, text that is not UTF-8, `max_tokens` < 1, a prompt over
  `max_input_len` tokens or prompt + `max_tokens` over `max_seq_len`, an end or pad id outside the
  vocabulary, `decoder_text_input` (this repository serves a decoder-only model), embedding-bias
  words and weights of different lengths. A prompt longer in bytes than `max_input_len` tokens can
  hold is refused before it is tokenized (tokenizing a megabyte costs a second of CPU);
- end id: the request's `end_id`, else the recipe's first end id; the recipe's other end ids become
  single-token stop sequences (so several end-of-turn tokens all stop generation);
- stop/bad words: the recipe's defaults + the request's, in the backend's `[2, N]` format;
- KV retention: the request's `retention_*` inputs when given (checked as the executor checks them: a bad
  set is a RequestError, not an executor exception), else the recipe's rules (only with KV-cache reuse on,
  since retention applies to reusable blocks): earlier rules win, ranges sorted and non-overlapping, rows of a
  multi-row request padded with ranges past the prompt (see trtbuild_text.retention_ranges);
- `embedding_bias_words`/`_weights` → `embedding_bias` (one float per vocabulary entry: each word's
  weight added to each of its tokens; words tokenized without special tokens);
- `prompt_table_extra_id` → `prompt_table_extra_ids` (the id on every prompt-table token, i.e. ids
  ≥ the vocabulary size, 0 elsewhere), as NVIDIA's preprocessing does for KV reuse of p-tuning.

`check_sampling` (used by the BLS, which sees every client input) refuses, with the executor's own
limits, what `tensorrt_llm` would refuse with an assertion message: beam_width < 1 or over the
engine's max_beam_width, top_k < 0, top_p > 1, temperature < 0, min_tokens < 0 or over max_tokens,
repetition_penalty ≤ 0, length_penalty < 0, num_return_sequences < 1.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from trtbuild_text import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    NO_EXPIRY,
    RequestError,
    RetentionError,
    TextCodec,
    check_retention_ranges,
    client_text,
    pad_retention_rows,
    parse_bool,
    parse_ints,
    parse_retention,
    retention_ranges,
    split_words,
    word_list_array,
)

RETENTION = ("retention_token_range_starts", "retention_token_range_ends",
             "retention_token_range_priorities", "retention_token_range_durations_ms")
DEFAULT_PRIORITY = 35
__all__ = ["PromptBuilder", "RequestError", "check_sampling"]


def _texts(arr: np.ndarray, name: str) -> list[str]:
    flat = np.asarray(arr, dtype=object).reshape(arr.shape[0], -1)[:, 0]
    return [client_text(x, name) for x in flat]


def _column(arr: np.ndarray | None, rows: int) -> list | None:
    return None if arr is None else np.asarray(arr).reshape(rows, -1)[:, 0].tolist()


def _ids_in_vocab(values: list | None, name: str, vocab_size: int) -> None:
    for value in values or ():
        if not 0 <= int(value) < vocab_size:
            raise RequestError(f"{name} {int(value)} is outside the vocabulary (0 to {vocab_size - 1})")


class PromptBuilder:
    def __init__(self, codec: TextCodec, params: dict[str, str]):
        self.codec = codec
        self.end_ids = parse_ints(params["end_ids"])
        self.pad_id = int(params["pad_id"])
        self.max_input_len = int(params["max_input_len"])
        self.max_seq_len = int(params["max_seq_len"])
        self.vocab_size = int(params.get("vocab_size") or len(codec.token_bytes))
        self.kv_reuse = parse_bool(params["enable_kv_cache_reuse"], "enable_kv_cache_reuse")
        self.retention = parse_retention(params["kv_retention"])
        self.default_stop = codec.encode_words(json.loads(params["stop_words"]))
        self.default_bad = codec.encode_words(json.loads(params["bad_words"]))
        self.max_prompt_bytes = self.max_input_len * codec.max_bytes_per_token
        """A longer prompt cannot fit max_input_len tokens: refused without tokenizing it."""
        self._word_cache: dict[str, list[int]] = {}
        self._stop_cache: dict[int, np.ndarray | None] = {}
        wants_system = self.kv_reuse and any(r.get("tokens") == "system_prompt" for r in self.retention["rules"])
        self.system_turn, self.system_turn_note = (find_system_turn(codec.tokenizer) if wants_system
                                                   else (None, "no system_prompt retention rule"))

    def _system_turn_lens(self, texts: list[str], ids: list[list[int]]) -> list[int]:
        """Tokens of the system turn of each chat-templated prompt (0 where there is none): the prompt's
        leading tokens that the system turn alone tokenizes to."""
        turn = self.system_turn
        if turn is None:
            return [0] * len(texts)
        ends = [turn.end(text) for text in texts]
        heads = iter(self.codec.encode_batch([text[:end] for text, end in zip(texts, ends) if end]))
        out = []
        for end, full in zip(ends, ids):
            if not end:
                out.append(0)
                continue
            head = next(heads)
            n = 0
            while n < min(len(head), len(full)) and head[n] == full[n]:
                n += 1
            out.append(n)
        return out

    # --------------------------------------------------------------------------------- reading
    def read_request(self, get: Callable[[str], np.ndarray | None]) -> dict[str, Any]:
        """Client inputs (by client name) → a parsed request. Raises RequestError."""
        query = get("text_input")
        if query is None:
            raise RequestError("text_input is required")
        rows = query.shape[0]
        queries = _texts(query, "text_input")
        system = get("system_prompt")
        systems = _texts(system, "system_prompt") if system is not None else [""] * rows
        max_tokens = get("max_tokens")
        if max_tokens is None:
            raise RequestError("max_tokens is required")
        out_len = max_tokens.reshape(rows, -1)[:, 0].astype(np.int64)
        for q, s in zip(queries, systems):
            if not q and not s:
                raise RequestError("text_input is empty: send a prompt (or a system_prompt)")
            size = len(q.encode()) + len(s.encode())
            if size > self.max_prompt_bytes:
                raise RequestError(f"the prompt is {size} bytes: more than max_input_len {self.max_input_len} tokens "
                                   f"can hold (at most {self.codec.max_bytes_per_token} bytes per token with this "
                                   "tokenizer); shorten it")
        for n in out_len:
            if n < 1:
                raise RequestError(f"max_tokens must be at least 1, got {int(n)}")
        decoder = get("decoder_text_input")
        if decoder is not None and any(_texts(decoder, "decoder_text_input")):
            raise RequestError("decoder_text_input is for encoder-decoder models; this repository serves a "
                               "decoder-only model: put the whole prompt in text_input")
        end, pad = _column(get("end_id"), rows), _column(get("pad_id"), rows)
        _ids_in_vocab(end, "end_id", self.vocab_size)
        _ids_in_vocab(pad, "pad_id", self.vocab_size)
        return {
            "rows": rows, "queries": queries, "systems": systems, "out_len": out_len, "end": end, "pad": pad,
            "stop": split_words(get("stop_words"), "stop_words") or [[] for _ in range(rows)],
            "bad": split_words(get("bad_words"), "bad_words") or [[] for _ in range(rows)],
            "bias": self._read_bias(get, rows),
            "extra_id": _column(get("prompt_table_extra_id"), rows),
            "retention": {name: get(name) for name in RETENTION},
            "decode_priority": get("retention_decode_priority"),
            "decode_duration": get("retention_decode_duration_ms"),
        }

    @staticmethod
    def _read_bias(get: Callable[[str], np.ndarray | None], rows: int) -> list[list[tuple[str, float]]] | None:
        words, weights = get("embedding_bias_words"), get("embedding_bias_weights")
        if words is None and weights is None:
            return None
        if words is None or weights is None:
            raise RequestError("embedding_bias_words and embedding_bias_weights go together: send both")
        words = np.asarray(words, dtype=object).reshape(rows, -1)
        weights = np.asarray(weights, dtype=np.float32).reshape(rows, -1)
        if words.shape != weights.shape:
            raise RequestError(f"embedding_bias_words has {words.shape[1]} words per prompt but "
                               f"embedding_bias_weights has {weights.shape[1]} weights: give one weight per word")
        if not np.isfinite(weights).all():
            raise RequestError("embedding_bias_weights must be finite numbers")
        return [[(client_text(w, "embedding_bias_words"), float(x)) for w, x in zip(ws, xs)]
                for ws, xs in zip(words, weights)]

    # -------------------------------------------------------------------------------- building
    def build(self, requests: list[dict[str, Any]]) -> list[dict[str, np.ndarray] | RequestError]:
        """Tokenize every row of every request in one tokenizer call per kind of text."""
        plain, user, systems = [], [], []
        for req in requests:
            for query, system in zip(req["queries"], req["systems"]):
                (user if system else plain).append(query)
                if system:
                    systems.append(system)
        plain_ids = self.codec.encode_batch(plain)
        templated = iter(self._system_turn_lens(plain, plain_ids))
        enc_plain = iter(plain_ids)
        enc_user = iter(self.codec.encode_batch(user, add_special_tokens=False))
        enc_system = iter(self.codec.encode_batch(systems))
        out: list[dict[str, np.ndarray] | RequestError] = []
        for req in requests:
            ids, system_lens = [], []
            for system in req["systems"]:
                head = next(enc_system) if system else []
                ids.append(head + (next(enc_user) if system else next(enc_plain)))
                system_lens.append(len(head) if system else next(templated))
            try:
                out.append(self._arrays(req, ids, system_lens))
            except RequestError as exc:
                out.append(exc)
        return out

    def _words(self, words: list[str]) -> list[list[int]]:
        missing = [w for w in dict.fromkeys(words) if w not in self._word_cache]
        if missing:
            if len(self._word_cache) > 65536:
                self._word_cache.clear()
            for w, ids in zip(missing, self.codec.encode_batch(missing, add_special_tokens=False)):
                self._word_cache[w] = ids
        return [self._word_cache[w] for w in words if self._word_cache[w]]

    def _arrays(self, req: dict[str, Any], ids: list[list[int]], system_lens: list[int]) -> dict[str, np.ndarray]:
        rows = req["rows"]
        lens = [len(x) for x in ids]
        for n, out in zip(lens, req["out_len"]):
            if n > self.max_input_len:
                raise RequestError(f"prompt has {n} tokens, more than max_input_len {self.max_input_len}")
            if n + int(out) > self.max_seq_len:
                raise RequestError(f"prompt ({n} tokens) + max_tokens ({int(out)}) exceeds max_seq_len "
                                   f"{self.max_seq_len}: lower max_tokens to at most {self.max_seq_len - n}")
        end_ids = req["end"] or [self.end_ids[0]] * rows
        pad_ids = req["pad"] or [self.pad_id] * rows
        input_ids = np.full((rows, max(lens)), self.pad_id, dtype=np.int32)
        for r, x in enumerate(ids):
            input_ids[r, : len(x)] = x
        arrays = {
            "input_ids": input_ids,
            "input_lengths": np.array(lens, dtype=np.int32).reshape(rows, 1),
            "request_output_len": req["out_len"].astype(np.int32).reshape(rows, 1),
            "end_id": np.array(end_ids, dtype=np.int32).reshape(rows, 1),
            "pad_id": np.array(pad_ids, dtype=np.int32).reshape(rows, 1),
        }
        if rows == 1 and not any(req["stop"][0]):  # the usual request: the recipe's list, built once
            stop = self._default_stop_list(end_ids[0])
            if stop is not None:
                arrays["stop_words_list"] = stop
        else:
            stop_rows = [self.default_stop + [[e] for e in self.end_ids if e != end] + self._words(words)
                         for end, words in zip(end_ids, req["stop"])]
            if any(stop_rows):
                arrays["stop_words_list"] = word_list_array(stop_rows)
        bad_rows = [self.default_bad + self._words(words) for words in req["bad"]]
        if any(bad_rows):
            arrays["bad_words_list"] = word_list_array(bad_rows)
        if req["bias"] is not None:
            arrays["embedding_bias"] = self._bias(req["bias"])
        if req["extra_id"] is not None:
            extra = np.array(req["extra_id"], dtype=np.uint64).reshape(rows, 1)
            arrays["prompt_table_extra_ids"] = np.where(input_ids >= self.vocab_size, extra, 0).astype(np.uint64)
        arrays.update(self._retention(req, lens, system_lens))
        return arrays

    def _default_stop_list(self, end: int) -> np.ndarray | None:
        """The recipe's stop sequences (and its other end ids) as a [1, 2, N] list, cached per end id."""
        if end not in self._stop_cache:
            if len(self._stop_cache) > 1024:
                self._stop_cache.clear()
            words = self.default_stop + [[e] for e in self.end_ids if e != end]
            self._stop_cache[end] = word_list_array([words]) if words else None
        return self._stop_cache[end]

    def _bias(self, rows: list[list[tuple[str, float]]]) -> np.ndarray:
        bias = np.zeros((len(rows), self.vocab_size), dtype=np.float32)
        for r, pairs in enumerate(rows):
            for ids, (_, weight) in zip(self._words_keep_empty([w for w, _ in pairs]), pairs):
                for token in ids:
                    if 0 <= token < self.vocab_size:
                        bias[r, token] += weight
        return bias

    def _words_keep_empty(self, words: list[str]) -> list[list[int]]:
        self._words([w for w in words if w])
        return [self._word_cache[w] if w else [] for w in words]

    def _retention(self, req: dict[str, Any], lens: list[int], system_lens: list[int]) -> dict[str, np.ndarray]:
        rows, over = req["rows"], req["retention"]
        arrays: dict[str, np.ndarray] = {}
        if over["retention_token_range_starts"] is not None:
            arrays = self._client_ranges(rows, over)
        elif self.kv_reuse and self.retention["rules"]:
            per_row = [retention_ranges(self.retention["rules"], system_len=s, prompt_len=n)
                       for s, n in zip(system_lens, lens)]
            if not any(per_row):
                return {}
            table = np.array(pad_retention_rows(per_row, lens), dtype=np.int32)
            arrays = {name: np.ascontiguousarray(table[:, :, k]) for k, name in enumerate(RETENTION)}
        else:
            return {}
        for name, given, recipe in (("retention_decode_priority", "decode_priority", "decode_priority"),
                                    ("retention_decode_duration_ms", "decode_duration", "decode_duration_ms")):
            value = req[given]
            if value is None and self.retention[recipe] is not None:
                value = np.full((rows, 1), self.retention[recipe], dtype=np.int32)
            if value is not None:
                arrays[name] = value.reshape(rows, 1).astype(np.int32)
        priority = arrays.get("retention_decode_priority")
        if priority is not None and not ((priority >= MIN_PRIORITY) & (priority <= MAX_PRIORITY)).all():
            raise RequestError(f"retention_decode_priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}")
        return arrays

    @staticmethod
    def _client_ranges(rows: int, over: dict[str, np.ndarray | None]) -> dict[str, np.ndarray]:
        """The client's retention_* inputs, checked as the backend and the executor check them."""
        starts = over["retention_token_range_starts"]
        assert starts is not None
        shape = starts.reshape(rows, -1).shape
        arrays: dict[str, np.ndarray] = {}
        for name in RETENTION:
            value = over[name]
            if value is None and name.endswith("durations_ms"):
                value = np.full(shape, NO_EXPIRY, dtype=np.int32)
            if value is None or value.reshape(rows, -1).shape != shape:
                raise RequestError(f"{name} must be given, with the same length as retention_token_range_starts")
            arrays[name] = value.reshape(rows, -1).astype(np.int32)
        for r in range(rows):
            ranges = [tuple(int(arrays[name][r, k]) for name in RETENTION) for k in range(shape[1])]
            try:
                check_retention_ranges(ranges)  # type: ignore[arg-type]
            except RetentionError as exc:
                where = f" (row {r})" if rows > 1 else ""
                raise RequestError(f"retention ranges{where} {[(s, e) for s, e, _, _ in ranges]}: {exc} TensorRT-LLM "
                                   "needs ranges that do not overlap, an end of -1 only on the last range by start, "
                                   f"and priorities {MIN_PRIORITY}-{MAX_PRIORITY}") from None
        return arrays


# ------------------------------------------------------------------ the system turn of a chat-templated prompt
# Clients of Triton's OpenAI frontend (and most others) send one chat-templated `text_input`, not a separate
# `system_prompt`. Where the tokenizer's chat template puts the system message first and closes it with a
# special token, the system turn is found in the text itself, so the recipe's `system_prompt` rule applies to
# that traffic too.
_SYSTEM, _USERS, _ASSISTANT = "SYSTEMSENTINEL7d1f", ("USERSENTINEL3c9e", "USERSENTINEL51b0"), "ASSISTANTSENTINELa04d"


@dataclass(frozen=True)
class SystemTurn:
    """How this tokenizer's chat template writes a system turn: fixed text before the content, and the text
    that closes the turn (it contains a special token, so a user's text cannot be mistaken for it)."""

    head: str
    close: str

    def end(self, text: str) -> int:
        """Offset just past the system turn of a chat-templated prompt; 0 when it has none or an empty one."""
        if not text.startswith(self.head):
            return 0
        at = text.find(self.close, len(self.head))
        return at + len(self.close) if at > len(self.head) else 0


def find_system_turn(tokenizer: Any) -> tuple[SystemTurn | None, str]:
    """Derive the system turn from the tokenizer's chat template, rendered with sentinel messages."""
    if not getattr(tokenizer, "chat_template", None):
        return None, "the tokenizer has no chat template"

    def render(messages: list[dict[str, str]]) -> str:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False))

    system = {"role": "system", "content": _SYSTEM}
    try:
        one = render([system, {"role": "user", "content": _USERS[0]}])
        multi = render([system, {"role": "user", "content": _USERS[1]},
                        {"role": "assistant", "content": _ASSISTANT}, {"role": "user", "content": _USERS[0]}])
    except Exception as exc:  # a template that refuses system messages, or needs other variables
        return None, f"the chat template does not render a system message ({type(exc).__name__}: {exc})"
    if one.count(_SYSTEM) != 1 or multi.count(_SYSTEM) != 1 or _USERS[0] not in one:
        return None, "the chat template does not render the system message exactly once"
    head = one[:one.index(_SYSTEM)]
    if multi[:multi.index(_SYSTEM)] != head or _USERS[0] in head:
        return None, "the chat template does not keep the system message first (e.g. it folds it into the last user turn)"
    between = one[one.index(_SYSTEM) + len(_SYSTEM):one.index(_USERS[0])]
    try:
        alone = render([system])
        after = alone[alone.index(_SYSTEM) + len(_SYSTEM):] if alone.startswith(head + _SYSTEM) else between
    except Exception:
        after = between
    close = between[:len(os.path.commonprefix([between, after]))]
    specials = [s for s in getattr(tokenizer, "all_special_tokens", []) if s and s in close]
    if not specials:
        return None, (f"the system turn ends with {close!r}, which holds no special token: it cannot be told "
                      "from text a user might write")
    return SystemTurn(head=head, close=close), f"system turn: {head!r} <system message> {close!r}"

# Client input → (smallest allowed, strictly greater?, what the limit is), from the executor's
# SamplingConfig checks (TensorRT-LLM cpp/tensorrt_llm/executor/samplingConfig.cpp).
_LOWER_BOUNDS = {
    "beam_width": (1, False), "top_k": (0, False), "temperature": (0.0, False), "min_tokens": (0, False),
    "repetition_penalty": (0.0, True), "length_penalty": (0.0, False), "num_return_sequences": (1, False),
}


def check_sampling(get: Callable[[str], np.ndarray | None], out_len: np.ndarray, max_beam_width: int) -> None:
    """Refuse sampling values the executor would refuse (raises RequestError)."""
    for name, (low, strict) in _LOWER_BOUNDS.items():
        value = get(name)
        if value is None:
            continue
        for v in np.asarray(value).reshape(-1).tolist():
            if not math.isfinite(v) or (v <= low if strict else v < low):
                raise RequestError(f"{name} must be {'greater than' if strict else 'at least'} {low}, got {v}")
    top_p = get("top_p")
    if top_p is not None:
        for v in np.asarray(top_p).reshape(-1).tolist():
            if not math.isfinite(v) or v > 1.0:
                raise RequestError(f"top_p must be at most 1, got {v}")
    beam = get("beam_width")
    if beam is not None and int(np.max(beam)) > max_beam_width:
        raise RequestError(f"beam_width {int(np.max(beam))} exceeds the engine's max_beam_width {max_beam_width}")
    min_tokens = get("min_tokens")
    if min_tokens is not None:
        rows = out_len.shape[0]
        for low, high in zip(np.asarray(min_tokens).reshape(rows, -1)[:, 0].tolist(), out_len.tolist()):
            if low > high:
                raise RequestError(f"min_tokens {low} is more than max_tokens {high}")
