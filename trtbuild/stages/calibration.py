"""Calibration data for the checkpoint stage: texts from a source, then token batches.

Sources (``quantization.calibration.dataset``):

* ``builtin``: the offline corpus shipped with trtbuild (:mod:`trtbuild.demo.corpus`), one sample per line.
* a local ``.txt`` file: one sample per non-empty line (UTF-8).
* a local ``.jsonl`` file: one JSON object per non-empty line with a string field ``text``.
* ``hf://name``: the ``train`` split of a Hugging Face dataset, column ``text`` (``article`` for
  cnn_dailymail). Needs the ``datasets`` package and, offline, a populated datasets cache.

Selection is deterministic: with more texts than ``samples``, a ``random.Random(seed)`` sample of
indices is taken, kept in file order; with fewer, every text is used once (repeating identical
samples adds nothing to max/SmoothQuant/AWQ statistics). Texts are read before any weights are loaded,
so a bad file fails in seconds. Only :func:`make_batches` imports torch.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import CheckpointError

KEY = "quantization.calibration.dataset"


@dataclass(frozen=True)
class CalibrationTexts:
    """The texts chosen for calibration and where they came from."""

    source: str
    texts: tuple[str, ...]
    available: int
    """How many samples the source had before selection."""


def load_calibration_texts(dataset: str, *, samples: int, seed: int) -> CalibrationTexts:
    """Read the calibration source and select up to ``samples`` texts deterministically."""
    if samples < 1:
        raise CheckpointError(f"quantization.calibration.samples: must be at least 1, got {samples}")
    if dataset == "builtin":
        from trtbuild.demo.corpus import calibration_texts

        texts: Sequence[str] = calibration_texts()
    elif dataset.startswith("hf://"):
        texts = _hf_dataset_texts(dataset)
    else:
        texts = _file_texts(Path(dataset))
    return CalibrationTexts(source=dataset, texts=select_samples(texts, samples, seed), available=len(texts))


def select_samples(texts: Sequence[str], samples: int, seed: int) -> tuple[str, ...]:
    """Up to ``samples`` of ``texts``: all of them if there are few enough, else a seeded subset in order."""
    if len(texts) <= samples:
        return tuple(texts)
    chosen = sorted(random.Random(seed).sample(range(len(texts)), samples))
    return tuple(texts[i] for i in chosen)


# -------------------------------------------------------------------------------------------- files
def _read_text_file(path: Path) -> str:
    if not path.is_absolute():
        raise CheckpointError(f"{KEY}: {path} must be an absolute path (resolve it against the recipe directory)")
    if not path.is_file():
        raise CheckpointError(f"{KEY}: {path} does not exist or is not a file")
    data = path.read_bytes()
    if b"\x00" in data:
        raise CheckpointError(f"{KEY}: {path} is not a text file (contains NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{KEY}: {path} is not UTF-8 text (byte {e.start}: {e.reason})") from None


def _file_texts(path: Path) -> list[str]:
    suffix = path.suffix.lower()
    if suffix not in (".txt", ".jsonl"):
        raise CheckpointError(
            f"{KEY}: {str(path)!r} is neither 'builtin', hf://name, nor a .txt/.jsonl file")
    content = _read_text_file(path)
    texts = _jsonl_texts(path, content) if suffix == ".jsonl" else [
        line.strip() for line in content.splitlines() if line.strip()]
    if not texts:
        raise CheckpointError(f"{KEY}: {path} has no calibration samples (empty file)")
    return texts


def _jsonl_texts(path: Path, content: str) -> list[str]:
    texts = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise CheckpointError(f"{KEY}: {path}:{lineno}: invalid JSON ({e})") from None
        text = record.get("text") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise CheckpointError(f"{KEY}: {path}:{lineno}: expected an object with a string field 'text'")
        if text.strip():
            texts.append(text)
    return texts


# ----------------------------------------------------------------------------------------- datasets
def _hf_dataset_texts(dataset: str) -> list[str]:
    name = dataset[len("hf://"):]
    if not name:
        raise CheckpointError(f"{KEY}: {dataset!r} names no dataset")
    try:
        import datasets
    except ImportError:
        raise CheckpointError(
            f"{KEY}: {dataset} needs the 'datasets' package, which is not installed; use 'builtin' "
            "or a local .txt/.jsonl file") from None
    try:
        config = "3.0.0" if "cnn_dailymail" in name else None
        ds = datasets.load_dataset(name, config, split="train")
    except Exception as e:  # datasets raises many unrelated types (FileNotFoundError, ConnectionError, ...)
        raise CheckpointError(f"{KEY}: could not load {dataset} (offline cache or network): "
                              f"{type(e).__name__}: {e}") from None
    column = "article" if "cnn_dailymail" in name and "text" not in ds.column_names else "text"
    if column not in ds.column_names:
        raise CheckpointError(f"{KEY}: {dataset} has no '{column}' column (columns: {ds.column_names})")
    texts = [t for t in ds[column] if isinstance(t, str) and t.strip()]
    if not texts:
        raise CheckpointError(f"{KEY}: {dataset} has no non-empty '{column}' values")
    return texts


# ------------------------------------------------------------------------------------------ batches
def make_batches(texts: Sequence[str], tokenizer: Any, *, max_seq_len: int, batch_size: int,
                 device: str) -> list[dict[str, Any]]:
    """Tokenize (truncating to ``max_seq_len``) and group into padded batches with attention masks."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    batches = []
    for start in range(0, len(texts), batch_size):
        chunk = list(texts[start:start + batch_size])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_seq_len)
        batches.append({"input_ids": enc["input_ids"].to(device),
                        "attention_mask": enc["attention_mask"].to(device)})
    return batches
