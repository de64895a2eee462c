"""Fetch stage: local directories, hf:// from a pre-populated offline HF cache, weights policy."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest

from trtbuild.errors import StageError
from trtbuild.stages.fetch import FileDigest, check_safetensors_file, fetch_model, read_safetensors_header

SHA = "0123456789abcdef0123456789abcdef01234567"


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A valid safetensors file (zero-filled data) built by hand: no torch needed."""
    sizes = {"F16": 2, "F32": 4, "I8": 1}
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def make_model_dir(path: Path, weights: dict[str, bytes] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "hidden_size": 8}))
    (path / "tokenizer.json").write_text("{}")
    (path / "README.md").write_text("not used")
    (path / "original").mkdir()
    (path / "original" / "consolidated.pth").write_bytes(b"pickle")
    if weights is None:
        weights = {"model.safetensors": safetensors_bytes({"w": ("F16", [4, 8]), "b": ("F32", [8])})}
    for name, data in weights.items():
        (path / name).write_bytes(data)
    return path


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------- local
def test_local_dir_lists_used_files_with_digests(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "m")
    fetched = fetch_model(str(d))
    assert fetched.path == d.resolve() and fetched.revision is None and fetched.source == str(d)
    assert [f.path for f in fetched.files] == ["config.json", "model.safetensors", "tokenizer.json"]
    for f in fetched.files:
        assert f == FileDigest(f.path, sha(d / f.path), (d / f.path).stat().st_size)
    assert fetched.files[1].size == len(safetensors_bytes({"w": ("F16", [4, 8]), "b": ("F32", [8])}))


def test_relative_or_missing_local_paths_are_errors(tmp_path: Path) -> None:
    with pytest.raises(StageError, match="resolved against the recipe directory"):
        fetch_model("models/tiny")
    with pytest.raises(StageError, match=f"{tmp_path / 'nope'} is not a directory"):
        fetch_model(str(tmp_path / "nope"))
    with pytest.raises(StageError, match="unsupported scheme"):
        fetch_model("s3://bucket/model")


def test_no_config_or_no_weights(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StageError, match=f"{empty}: no config.json"):
        fetch_model(str(empty))
    d = make_model_dir(tmp_path / "noweights", weights={})
    with pytest.raises(StageError, match=rf"{d}: no weights \(\*\.safetensors\)"):
        fetch_model(str(d))


def test_pickle_only_needs_allow_pickle(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "pkl", weights={"pytorch_model.bin": b"\x80\x04pickle"})
    with pytest.raises(StageError) as err:
        fetch_model(str(d))
    assert str(d) in str(err.value) and "pytorch_model.bin" in str(err.value)
    assert "model.allow_pickle" in str(err.value)
    fetched = fetch_model(str(d), allow_pickle=True)
    assert [f.path for f in fetched.files] == ["config.json", "pytorch_model.bin", "tokenizer.json"]


def test_safetensors_preferred_over_pickle(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "both")
    (d / "pytorch_model.bin").write_bytes(b"pickle")
    assert "pytorch_model.bin" not in [f.path for f in fetch_model(str(d), allow_pickle=True).files]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-3], "truncated"),
    (lambda b: b + b"xx", "has trailing bytes"),
    (lambda b: b[:5], "shorter than the 8-byte header length"),
    (lambda b: struct.pack("<Q", 10) + b"{not json!" + b[18:], "not a valid safetensors file"),
    (lambda b: struct.pack("<Q", 1 << 40) + b[8:], "exceeds the file size"),
])
def test_damaged_safetensors_named(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    good = safetensors_bytes({"w": ("F16", [4, 8])})
    d = make_model_dir(tmp_path / "bad", weights={"model.safetensors": damage(good)})
    with pytest.raises(StageError, match=message) as err:
        fetch_model(str(d))
    assert str(d / "model.safetensors") in str(err.value)


def test_header_reader_returns_tensor_table(tmp_path: Path) -> None:
    p = tmp_path / "x.safetensors"
    p.write_bytes(safetensors_bytes({"a": ("I8", [3, 2]), "b": ("F32", [])}))
    header = read_safetensors_header(p)
    assert header["a"]["shape"] == [3, 2] and header["a"]["dtype"] == "I8"
    assert header["b"]["shape"] == [] and header["b"]["data_offsets"] == [6, 10]
    check_safetensors_file(p)


def test_index_with_missing_shard(tmp_path: Path) -> None:
    d = make_model_dir(tmp_path / "sharded", weights={
        "model-00001-of-00002.safetensors": safetensors_bytes({"w": ("F16", [2])})})
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(StageError, match="model-00002-of-00002.safetensors") as err:
        fetch_model(str(d))
    assert "model.safetensors.index.json" in str(err.value)


# ---------------------------------------------------------------------------------------- hf://
def populate_hf_cache(hf_home: Path, repo: str, files: dict[str, bytes], *, ref: str = "main") -> Path:
    """The on-disk layout huggingface_hub uses: blobs by content hash, snapshots of symlinks, refs."""
    root = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / SHA
    (root / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / ref).write_text(SHA)
    for name, data in files.items():
        blob = root / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / name)
    return snapshot


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", "hf_SECRETtoken123")
    return tmp_path / "hf"


def test_hf_source_resolves_offline_to_commit(hf_cache: Path) -> None:
    weights = safetensors_bytes({"w": ("F16", [4, 8])})
    snapshot = populate_hf_cache(hf_cache, "acme/tiny", {
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}', "model.safetensors": weights,
        "tokenizer.json": b"{}", "README.md": b"# card"})
    for source in ("hf://acme/tiny", "hf://acme/tiny@main", f"hf://acme/tiny@{SHA}"):
        fetched = fetch_model(source)
        assert fetched.path == snapshot.resolve() and fetched.revision == SHA and fetched.source == source
        assert [f.path for f in fetched.files] == ["config.json", "model.safetensors", "tokenizer.json"]
        assert fetched.files[1].sha256 == hashlib.sha256(weights).hexdigest()
        assert "hf_SECRET" not in json.dumps(fetched.to_json())


def test_hf_source_not_cached_offline(hf_cache: Path) -> None:
    populate_hf_cache(hf_cache, "acme/tiny", {"config.json": b"{}"})
    with pytest.raises(StageError, match="not in the Hugging Face cache") as err:
        fetch_model("hf://acme/other@main")
    assert "hf://acme/other@main" in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)
    with pytest.raises(StageError, match="hf://acme/tiny@v2"):
        fetch_model("hf://acme/tiny@v2")
    assert "hf_SECRET" not in str(err.value)


def test_hf_source_pickle_only(hf_cache: Path) -> None:
    populate_hf_cache(hf_cache, "acme/old", {"config.json": b"{}", "pytorch_model.bin": b"pickle"})
    with pytest.raises(StageError, match="only pickle weights"):
        fetch_model("hf://acme/old")
    fetched = fetch_model("hf://acme/old", allow_pickle=True)
    assert [f.path for f in fetched.files] == ["config.json", "pytorch_model.bin"]


def test_hf_source_syntax() -> None:
    with pytest.raises(StageError, match="expected hf://org/name"):
        fetch_model("hf://no-org")
