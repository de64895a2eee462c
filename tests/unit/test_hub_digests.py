"""Hub metadata → file digests (LFS sha256 for weights, small files downloaded and hashed)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trtbuild.errors import StageError
from trtbuild.hub import hub_file_digests


@dataclass
class Sibling:
    rfilename: str
    lfs: Any = None


@dataclass
class Info:
    sha: str
    siblings: list[Sibling]


class FakeHub:
    def __init__(self, tmp: Path, files: dict[str, bytes], lfs: set[str]):
        self.tmp, self.files, self.lfs = tmp, files, lfs
        self.downloads: list[str] = []

    def model_info(self, repo: str, revision: str, files_metadata: bool) -> Info:
        assert files_metadata
        sibs = [Sibling(n, {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} if n in self.lfs else None)
                for n, d in self.files.items()]
        return Info("c" * 40, sibs)

    def download(self, *, repo_id: str, filename: str, revision: str, token: Any) -> str:
        assert revision == "c" * 40
        self.downloads.append(filename)
        p = self.tmp / filename
        p.write_bytes(self.files[filename])
        return str(p)


def test_weights_come_from_lfs_metadata_small_files_are_hashed(tmp_path: Path) -> None:
    files = {"config.json": b"{}", "tokenizer.json": b'{"v": 1}', "model-00001.safetensors": b"W" * 1000,
             "model-00002.safetensors": b"X" * 1000, "README.md": b"hi", "sub/extra.json": b"{}",
             "pytorch_model.bin": b"pickle"}
    hub = FakeHub(tmp_path, files, lfs={"model-00001.safetensors", "model-00002.safetensors", "pytorch_model.bin"})
    commit, digests = hub_file_digests("org/name", "main", api=hub, download=hub.download)
    assert commit == "c" * 40
    assert set(digests) == {"config.json", "tokenizer.json", "model-00001.safetensors", "model-00002.safetensors"}
    for name, sha in digests.items():
        assert sha == hashlib.sha256(files[name]).hexdigest()
    assert sorted(hub.downloads) == ["config.json", "tokenizer.json"]     # no weight bytes downloaded


def test_pickle_only_needs_allow_pickle(tmp_path: Path) -> None:
    hub = FakeHub(tmp_path, {"config.json": b"{}", "pytorch_model.bin": b"p"}, lfs={"pytorch_model.bin"})
    with pytest.raises(StageError, match="only pickle weights"):
        hub_file_digests("org/name", None, api=hub, download=hub.download)
    _, digests = hub_file_digests("org/name", None, allow_pickle=True, api=hub, download=hub.download)
    assert set(digests) == {"config.json", "pytorch_model.bin"}


def test_hub_failure_is_one_clear_stage_error(tmp_path: Path) -> None:
    class Broken:
        def model_info(self, *a: Any, **k: Any) -> Info:
            raise ConnectionError("Name or service not known")

    with pytest.raises(StageError, match="cannot read Hub metadata: hf://org/name@main: no network: cannot reach "
                                         "the Hugging Face Hub") as err:
        hub_file_digests("org/name", "main", api=Broken(), download=lambda **k: "")
    assert "ConnectionError" not in str(err.value)  # issue 14: never a raw ConnectionError
