"""Concepts defined once (issue 12 item 7): tokenizer files, canonical digests, byte formatting."""

from __future__ import annotations

from pathlib import Path

from trtbuild.canon import canonical_digest, canonical_json, format_bytes


def test_checkpoint_copies_every_tokenizer_file_the_repository_uses(tmp_path: Path) -> None:
    """BUG: the checkpoint stage and the repository stage kept two TOKENIZER_FILES lists; a SentencePiece
    `spiece.model` was never copied beside the checkpoint (so the repository had no tokenizer), and a
    `chat_template.json` copied by the checkpoint was dropped by the repository."""
    from trtbuild.stages.checkpoint import tokenizer_files

    for name in ("spiece.model", "chat_template.json", "tokenizer_config.json", "model.safetensors"):
        (tmp_path / name).write_text("{}")
    copied = {p.name for p in tokenizer_files(tmp_path, trust_remote_code=False)}
    assert copied == {"spiece.model", "chat_template.json", "tokenizer_config.json"}


def test_canonical_json_is_one_form() -> None:
    assert canonical_json({"b": 1, "a": "é", "c": Path("/x")}) == '{"a":"é","b":1,"c":"/x"}'
    assert canonical_digest({"a": 1, "b": 2}) == canonical_digest({"b": 2, "a": 1})


def test_format_bytes_styles() -> None:
    assert format_bytes(512) == "512 B" and format_bytes(1536) == "1.5 KiB" and format_bytes(3 * 2**40) == "3.0 TiB"
    assert format_bytes(80 * 2**30, "GiB") == "80 GiB" and format_bytes(int(9.26 * 2**30), "GiB") == "9.3 GiB"
    assert format_bytes(1120 * 2**30, "GiB-table") == "1,120.0 GiB"
    assert format_bytes(2048, "KiB") == "2 KiB" and format_bytes(100, "KiB") == "100 B"
