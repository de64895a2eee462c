"""Calibration sources: builtin, .txt, .jsonl, hf:// (without datasets), selection and batching."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from trtbuild.demo.corpus import calibration_texts
from trtbuild.errors import CheckpointError
from trtbuild.stages.calibration import load_calibration_texts, make_batches, select_samples


def test_builtin_uses_every_line_when_fewer_than_requested() -> None:
    got = load_calibration_texts("builtin", samples=512, seed=0)
    assert got.texts == calibration_texts() and got.available == len(calibration_texts()) >= 50


def test_selection_is_seeded_and_keeps_order() -> None:
    texts = [f"line {i}" for i in range(100)]
    a, b, c = (select_samples(texts, 10, s) for s in (7, 7, 8))
    assert a == b and a != c and len(a) == 10
    assert list(a) == sorted(a, key=lambda t: int(t.split()[1]))


def test_txt_one_sample_per_nonempty_line(tmp_path: Path) -> None:
    f = tmp_path / "cal.txt"
    f.write_text("first line\n\n   \nsecond line  \nthird\n", encoding="utf-8")
    got = load_calibration_texts(str(f), samples=2, seed=3)
    assert got.available == 3 and len(got.texts) == 2
    assert set(got.texts) <= {"first line", "second line", "third"}


def test_jsonl_text_field(tmp_path: Path) -> None:
    f = tmp_path / "cal.jsonl"
    f.write_text("\n".join(json.dumps({"text": t, "id": i}) for i, t in enumerate(["a b", "c d", "é 東京"])) + "\n")
    assert load_calibration_texts(str(f), samples=10, seed=0).texts == ("a b", "c d", "é 東京")


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"", "has no calibration samples"),
    ("blank.txt", b"\n  \n\n", "has no calibration samples"),
    ("binary.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
    ("latin1.txt", "caf\xe9\n".encode("latin-1"), "not UTF-8 text"),
    ("bad.jsonl", b'{"text": "ok"}\n{"text": 3}\n', "bad.jsonl:2: expected an object with a string field 'text'"),
    ("broken.jsonl", b'{"text": "ok"}\n{oops\n', "broken.jsonl:2: invalid JSON"),
])
def test_bad_files_name_the_file_and_key(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as err:
        load_calibration_texts(str(f), samples=8, seed=0)
    assert "quantization.calibration.dataset" in str(err.value) and str(f) in str(err.value)


def test_missing_relative_or_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_calibration_texts(str(tmp_path / "none.txt"), samples=8, seed=0)
    with pytest.raises(CheckpointError, match="must be an absolute path"):
        load_calibration_texts("data/cal.txt", samples=8, seed=0)
    with pytest.raises(CheckpointError, match=r"neither 'builtin', hf://name, nor a \.txt/\.jsonl"):
        load_calibration_texts(str(tmp_path / "cal.csv"), samples=8, seed=0)


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets is installed")
def test_hf_dataset_without_datasets_package() -> None:
    with pytest.raises(CheckpointError, match="needs the 'datasets' package"):
        load_calibration_texts("hf://cnn_dailymail", samples=8, seed=0)


def test_batches_pad_and_truncate(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    texts = ["short", "a much longer sentence that goes on and on and on for a while", "mid length text"]
    lengths = [min(len(tok(t).input_ids), 8) for t in texts]
    assert lengths[1] == 8 and lengths[0] < 8  # one text is truncated, one is padded
    batches = make_batches(texts, tok, max_seq_len=8, batch_size=2, device="cpu")
    assert [tuple(b["input_ids"].shape) for b in batches] == [(2, 8), (1, lengths[2])]
    first = batches[0]
    assert first["attention_mask"].sum(dim=1).tolist() == lengths[:2]
    assert (first["input_ids"][0][first["attention_mask"][0] == 0] == tok.pad_token_id).all()
    assert first["input_ids"][1, 0] == tok.bos_token_id
