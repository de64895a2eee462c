"""Text handling shared by the generated `preprocessing`, `postprocessing` and `tensorrt_llm_bls` models.

trtbuild copies this file, unchanged, into the version directory (`1/`) of each of those models, so it
must not import trtbuild. Needs numpy; `transformers` is imported when a tokenizer is loaded.

What it does:
- loads the tokenizer from the files copied into the repository, never from a hub;
- tokenizes many prompts in one call (the dynamic batch of a model instance);
- builds the backend's `[2, N]` word lists (stop words, bad words);
- turns generated token ids into text: every token id maps to the exact bytes it contributes, so
  chunks of a stream join to exactly the non-streamed text (leading spaces stay); with one
  incremental UTF-8 decoder per stream (`TextCodec.stream()`), a character split across tokens is
  emitted whole once its last byte arrives. Text that leaves a model is always valid UTF-8: bytes
  that do not form a character (a character cut by max_tokens, a model emitting stray bytes) become
  U+FFFD, exactly as Hugging Face's `decode` and NVIDIA's postprocessing give them;
- reads client strings strictly (invalid UTF-8 is a RequestError naming the input, never a traceback);
- computes the KV-cache retention ranges from the recipe's rules, and checks ranges the way TensorRT-LLM's
  executor does (a port of its validation, so a bad request is a clear error, not an executor exception).
"""

from __future__ import annotations

import codecs
import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

TRUE_WORDS = ("true", "1")
FALSE_WORDS = ("false", "0")
_BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


class RequestError(ValueError):
    """A client error: answered with an error response naming the input; the model keeps serving."""


def client_text(item: object, name: str) -> str:
    """One element of a client STRING tensor as text; invalid UTF-8 is the client's error."""
    if not isinstance(item, bytes):
        return str(item)
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"{name} is not valid UTF-8 (byte 0x{item[exc.start]:02x} at offset {exc.start}): "
                           "send text encoded as UTF-8") from None


# ------------------------------------------------------------------------------------- parameters
def model_parameters(model_config: dict[str, Any]) -> dict[str, str]:
    """The `parameters { key ... string_value ... }` map of a model config as plain strings."""
    return {k: v.get("string_value", "") for k, v in model_config.get("parameters", {}).items()}


def parse_bool(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in TRUE_WORDS:
        return True
    if v in FALSE_WORDS:
        return False
    raise ValueError(f"parameter {name}: expected true or false, got {value!r}")


def parse_ints(value: str) -> list[int]:
    return [int(x) for x in value.replace(" ", "").split(",") if x]


def resolve_dir(model_dir: str, value: str) -> str:
    """Parameters hold paths relative to the model directory, so the repository can move."""
    p = Path(value)
    return str(p if p.is_absolute() else (Path(model_dir) / p).resolve())


# -------------------------------------------------------------------------------------- tokenizer
def load_tokenizer(tokenizer_dir: str) -> Any:
    """A Hugging Face tokenizer from local files only (the repository's copy)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    if not Path(tokenizer_dir).is_dir():
        raise FileNotFoundError(f"tokenizer directory {tokenizer_dir} does not exist")
    return AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True, trust_remote_code=False,
                                         use_fast=True, padding_side="left")


def _bytes_to_unicode() -> dict[int, str]:
    """The printable stand-in character of every byte in byte-level BPE vocabularies."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _decoder_kind(decoder: dict[str, Any] | None) -> tuple[str, str, bool]:
    """(kind, metaspace replacement, byte fallback) of a tokenizers decoder description."""
    if not decoder:
        return "generic", "", False
    parts = decoder.get("decoders") if decoder.get("type") == "Sequence" else [decoder]
    types = [p.get("type") for p in parts or []]
    if "ByteLevel" in types:
        return "byte_level", "", False
    fallback = "ByteFallback" in types
    if "Metaspace" in types:
        meta = parts[types.index("Metaspace")]
        return "metaspace", meta.get("replacement", "\u2581"), fallback
    for p in parts or []:
        pattern = p.get("pattern") or {}
        if p.get("type") == "Replace" and pattern.get("String") == "\u2581" and p.get("content") == " ":
            return "metaspace", "\u2581", fallback
    return "generic", "", False


def build_token_bytes(tokenizer: Any, *, skip_special_tokens: bool) -> list[bytes]:
    """The bytes every token id contributes to decoded text (context-free), indexed by id."""
    backend = getattr(tokenizer, "_tokenizer", None)
    vocab: dict[str, int] = backend.get_vocab(with_added_tokens=True) if backend else tokenizer.get_vocab()
    size = max(len(tokenizer), max(vocab.values(), default=-1) + 1)
    table = [b""] * size
    decoder = json.loads(backend.to_str()).get("decoder") if backend else None
    kind, replacement, fallback = _decoder_kind(decoder)
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special = {i for i, tok in added.items() if getattr(tok, "special", False)}
    special |= set(getattr(tokenizer, "all_special_ids", []) or [])
    if kind == "byte_level":
        char_byte = {c: b for b, c in _bytes_to_unicode().items()}
        for token, i in vocab.items():
            table[i] = b"".join(bytes([char_byte[c]]) if c in char_byte else c.encode() for c in token)
    elif kind == "metaspace":
        for token, i in vocab.items():
            m = _BYTE_TOKEN.match(token) if fallback else None
            table[i] = bytes([int(m.group(1), 16)]) if m else token.replace(replacement, " ").encode()
    else:  # anything else: ask the tokenizer, one token after a fixed anchor (spaces survive)
        anchor = next((i for t, i in sorted(vocab.items()) if t.isalpha() and i not in special), 0)
        base = tokenizer.decode([anchor], skip_special_tokens=False)
        for i in range(size):
            table[i] = tokenizer.decode([anchor, i], skip_special_tokens=False)[len(base):].encode()
    for i, tok in added.items():
        if kind not in ("byte_level", "metaspace") and i < size:
            table[i] = str(tok.content).encode()
    if skip_special_tokens:
        for i in special:
            if 0 <= i < size:
                table[i] = b""
    return table


class IncrementalDetokenizer:
    """Token ids in, text out, one stream at a time; chunks concatenate to the one-shot decode."""

    __slots__ = ("_table", "_size", "_decoder")

    def __init__(self, table: list[bytes]):
        self._table = table
        self._size = len(table)
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, ids: Any) -> str:
        table, n = self._table, self._size
        if len(ids) == 1:
            i = ids[0]
            return self._decoder.decode(table[i] if 0 <= i < n else b"")
        return self._decoder.decode(b"".join(table[i] if 0 <= i < n else b"" for i in ids))

    def finish(self) -> str:
        return self._decoder.decode(b"", final=True)


class TextCodec:
    """Tokenizer + token-bytes table + the tokenizer options of the recipe."""

    def __init__(self, tokenizer_dir: str, *, add_special_tokens: bool, skip_special_tokens: bool):
        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.add_special_tokens = add_special_tokens
        self.skip_special_tokens = skip_special_tokens
        self._backend = getattr(self.tokenizer, "_tokenizer", None)
        self.token_bytes = build_token_bytes(self.tokenizer, skip_special_tokens=skip_special_tokens)
        self.utf8_closed = all(_valid_utf8(b) for b in self.token_bytes)
        """Every token is whole characters: a stateless decode of any chunk of tokens is exact."""
        self.max_bytes_per_token = _max_bytes_per_token(self.tokenizer, self.token_bytes)
        """At most this many prompt bytes become one token (a cheap bound checked before tokenizing)."""

    def encode_batch(self, texts: list[str], *, add_special_tokens: bool | None = None) -> list[list[int]]:
        special = self.add_special_tokens if add_special_tokens is None else add_special_tokens
        if not texts:
            return []
        if self._backend is not None:  # ids only: the fast variant skips offsets (tokenizers >= 0.21)
            encode = getattr(self._backend, "encode_batch_fast", self._backend.encode_batch)
            return [e.ids for e in encode(texts, add_special_tokens=special)]
        return [list(x) for x in self.tokenizer(texts, add_special_tokens=special)["input_ids"]]

    def encode_words(self, words: list[str]) -> list[list[int]]:
        """Stop/bad words: no special tokens added; words that encode to nothing are dropped."""
        return [ids for ids in self.encode_batch(words, add_special_tokens=False) if ids]

    def to_bytes(self, ids: Any) -> bytes:
        table, n = self.token_bytes, len(self.token_bytes)
        return b"".join(table[i] if 0 <= i < n else b"" for i in ids)

    def decode(self, ids: Any) -> str:
        return self.to_bytes(ids).decode("utf-8", "replace")

    def decode_settled(self, ids: Any) -> str:
        """Text of `ids` without a trailing incomplete character (it may complete later)."""
        data = self.to_bytes(ids)
        return data[: len(data) - _incomplete_tail(data)].decode("utf-8", "replace")

    def stream(self) -> IncrementalDetokenizer:
        return IncrementalDetokenizer(self.token_bytes)


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _incomplete_tail(data: bytes) -> int:
    """Length of a trailing UTF-8 sequence that is a valid start but not yet complete (0-3 bytes)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): does it need more than it has?
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
            return back if need > back else 0
    return 0


def _shrink_factor(normalizer: dict[str, Any] | None) -> int:
    """How many prompt bytes a normalizer may turn into one byte: 1 for none or ones that only grow
    text (Prepend, NFD, a Replace with a longer or equal replacement), else 4 (NFKC maps some 3-4 byte
    characters to one byte)."""
    if not normalizer:
        return 1
    kind = normalizer.get("type")
    if kind == "Sequence":
        return max([_shrink_factor(n) for n in normalizer.get("normalizers") or []] + [1])
    if kind in ("Prepend", "NFD"):
        return 1
    if kind == "Replace":
        pattern = (normalizer.get("pattern") or {}).get("String")
        if isinstance(pattern, str) and len(str(normalizer.get("content", "")).encode()) >= len(pattern.encode()):
            return 1
    return 4


def _max_bytes_per_token(tokenizer: Any, table: list[bytes]) -> int:
    """A bound on the prompt bytes one token can stand for: the longest token (specials as their text),
    times what the tokenizer's normalizer may shrink text by."""
    specials = [len(str(t).encode()) for t in getattr(tokenizer, "all_special_tokens", [])]
    longest = max([len(b) for b in table] + specials + [1])
    backend = getattr(tokenizer, "_tokenizer", None)
    normalizer = json.loads(backend.to_str()).get("normalizer") if backend is not None else {"type": "unknown"}
    return longest * _shrink_factor(normalizer)


# -------------------------------------------------------------------------------------- word lists
def word_list_array(rows: list[list[list[int]]]) -> np.ndarray:
    """Per row a list of token sequences → the backend's `[rows, 2, N]` int32 format.

    Row 0 of each `[2, N]` holds the concatenated ids, row 1 the cumulative end offsets; ids are
    padded with 0 and offsets with -1 to the longest row (at least 1).
    """
    flat = [[t for seq in words for t in seq] for words in rows]
    width = max(1, max((len(f) for f in flat), default=0))
    out = np.zeros((len(rows), 2, width), dtype=np.int32)
    out[:, 1, :] = -1
    for r, (words, ids) in enumerate(zip(rows, flat)):
        out[r, 0, : len(ids)] = ids
        ends = np.cumsum([len(w) for w in words], dtype=np.int64)
        out[r, 1, : len(ends)] = ends
    return out


def parse_word_list(arr: np.ndarray) -> list[list[int]]:
    """One `[2, N]` word list → token sequences (inverse of :func:`word_list_array` for one row)."""
    arr = np.asarray(arr).reshape(2, -1)
    ids, ends = arr[0].tolist(), [int(e) for e in arr[1].tolist() if e >= 0]
    words, start = [], 0
    for end in ends:
        if end > start:
            words.append(ids[start:end])
        start = end
    return words


def split_words(value: np.ndarray | None, name: str = "words") -> list[list[str]]:
    """A `[rows, K]` STRING tensor of words → per row a list of strings.

    K > 1: one word per element. K == 1: the element is a CSV line (NVIDIA's format), so
    `"Hello, world",Bye` is two words.
    """
    if value is None:
        return []
    arr = np.asarray(value, dtype=object)
    arr = arr.reshape(arr.shape[0], -1) if arr.ndim else arr.reshape(1, 1)
    out = []
    for row in arr:
        texts = [client_text(item, name) for item in row]
        if len(texts) == 1:
            texts = next(csv.reader([texts[0]]), [])
        out.append([w for w in texts if w])
    return out


# ------------------------------------------------------------------------------------ KV retention
# What TensorRT-LLM's executor accepts (the kv_retention contract fixture, derived from
# cpp/tensorrt_llm/executor/kvCacheRetentionConfig.cpp, executor.h and the backend's utils.cc; the tests
# check these constants and check_retention_ranges against it).
NO_END = -1                 # kRetentionNoRangeEnd: the range runs to the end of the sequence
NO_EXPIRY = -1              # kRetentionNoExpirationTime: the priority never decays
MIN_PRIORITY, MAX_PRIORITY, DEFAULT_PRIORITY = 0, 100, 35
RETENTION_ERRORS = {
    "priority": "Invalid priority value. Must be between 0 and 100",
    "open_end_not_last": "Invalid use of end indicator.",
    "negative_start": "Token indices must be non-negative.",
    "empty_range": "Range must have a positive, non-zero length.",
    "overlap": "Token ranges must be non-overlapping.",
}

Range = tuple[int, int, int, int]
"""(start, end, priority, duration_ms) as the retention_* tensors carry them (end / duration -1 = none)."""


class RetentionError(ValueError):
    """Ranges the executor would refuse; the message is the executor's own."""


def check_retention_ranges(ranges: list[Range]) -> None:
    """A port of the executor's validation: TokenRangeRetentionConfig's priority check for every range in
    order, then KvCacheRetentionConfig's constructor (sort by start, then per range: an open end only last,
    no negative start, positive length, no overlap with the next range)."""
    for _, _, priority, _ in ranges:
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise RetentionError(RETENTION_ERRORS["priority"])
    ordered = sorted(ranges, key=lambda r: r[0])
    last = len(ordered) - 1
    for i, (start, end, _, _) in enumerate(ordered):
        if end == NO_END and i != last:
            raise RetentionError(RETENTION_ERRORS["open_end_not_last"])
        if start < 0:
            raise RetentionError(RETENTION_ERRORS["negative_start"])
        if end != NO_END and start >= end:
            raise RetentionError(RETENTION_ERRORS["empty_range"])
        if i != last and end > ordered[i + 1][0]:
            raise RetentionError(RETENTION_ERRORS["overlap"])


def parse_retention(value: str) -> dict[str, Any]:
    """The `kv_retention` parameter: JSON with `rules`, `decode_priority`, `decode_duration_ms`."""
    data = json.loads(value) if value.strip() else {}
    return {"rules": list(data.get("rules", [])), "decode_priority": data.get("decode_priority"),
            "decode_duration_ms": data.get("decode_duration_ms")}


def _rule_span(tokens: Any, system_len: int, prompt_len: int) -> tuple[int, float] | None:
    if tokens == "system_prompt":
        return (0, system_len) if system_len > 0 else None
    if tokens == "prompt":
        return 0, prompt_len
    end = tokens.get("end")
    return int(tokens["start"]), float("inf") if end is None else int(end)


def retention_ranges(rules: list[dict[str, Any]], *, system_len: int, prompt_len: int) -> list[Range]:
    """The recipe's rules → the ranges of one prompt, as the executor accepts them.

    Earlier rules win: each rule claims only the tokens no earlier rule claimed. The result is sorted, never
    overlaps, merges touching pieces of equal priority and duration, and leaves out pieces starting at or
    after the prompt's end (the executor gives range priorities to the prompt's blocks only). A piece that
    runs to the end of the sequence keeps end -1 and is necessarily the last one.
    """
    free: list[tuple[float, float]] = [(0, float("inf"))]
    pieces: list[tuple[int, float, int, int]] = []
    for rule in rules:
        span = _rule_span(rule["tokens"], system_len, prompt_len)
        if span is None:
            continue
        duration = rule.get("duration_ms")
        prio, dur = int(rule["priority"]), NO_EXPIRY if duration is None else int(duration)
        rest: list[tuple[float, float]] = []
        for lo, hi in free:
            a, b = max(lo, span[0]), min(hi, span[1])
            if a >= b:
                rest.append((lo, hi))
                continue
            pieces.append((int(a), b, prio, dur))
            rest += [(x, y) for x, y in ((lo, a), (b, hi)) if x < y]
        free = rest
    merged: list[tuple[int, float, int, int]] = []
    for start, end, prio, dur in sorted(p for p in pieces if p[0] < prompt_len):
        if merged and merged[-1][1] == start and merged[-1][2:] == (prio, dur):
            merged[-1] = (merged[-1][0], end, prio, dur)
        else:
            merged.append((start, end, prio, dur))
    return [(s, NO_END if e == float("inf") else int(e), p, d) for s, e, p, d in merged]


def pad_retention_rows(rows: list[list[Range]], prompt_lens: list[int]) -> list[list[Range]]:
    """Rows of one request padded to one width (the backend slices every row at the same width and hands
    each row's ranges to the executor as they are). Padding ranges start at or after the prompt's end and
    after every real range, so they are valid and no block ever takes their priority; a row ending in an
    open range has it closed at the prompt's end first (the same blocks, so the same priorities)."""
    width = max((len(r) for r in rows), default=0)
    out = []
    for ranges, n in zip(rows, prompt_lens):
        row = list(ranges)
        if len(row) < width:
            if row and row[-1][1] == NO_END:
                start, _, prio, dur = row[-1]
                row[-1] = (start, max(n, start + 1), prio, dur)
            at = max([n] + [end for _, end, _, _ in row])
            row += [(at + k, at + k + 1, DEFAULT_PRIORITY, NO_EXPIRY) for k in range(width - len(row))]
        out.append(row)
    return out
