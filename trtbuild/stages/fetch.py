"""Fetch stage: resolve a model source to a local directory and list every file used, with digests.

Sources: a local directory (the caller resolves a recipe-relative path to an absolute one) or
``hf://org/name[@revision]``, downloaded with ``huggingface_hub.snapshot_download`` into the HF cache.
The revision is resolved to a commit sha. The token is huggingface_hub's own choice: ``HF_TOKEN``, else
the one saved by ``hf auth login`` (passed through, never printed or written); ``HF_HUB_OFFLINE``,
``HF_HOME`` and ``HF_HUB_CACHE`` are read when the fetch runs, not at import.

Weights policy: safetensors only, unless ``allow_pickle`` and the model has no safetensors. A
safetensors header is checked without torch (size, JSON, offsets), so a truncated file is reported by
name before any stage loads it. huggingface_hub is imported inside the functions.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from trtbuild.errors import StageError
from trtbuild.fsutil import sha256_file

# Top-level files a model directory contributes (weights are added by policy below).
CONFIG_PATTERNS = (
    "config.json", "generation_config.json", "*.safetensors.index.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "*.tiktoken", "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja",
    "chat_template.json", "preprocessor_config.json",
)
SAFETENSORS_PATTERNS = ("*.safetensors",)
PICKLE_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
REMOTE_CODE_PATTERNS = ("*.py",)
_MAX_HEADER = 100 * 1024 * 1024
_SHA = re.compile(r"^[0-9a-f]{40}$")


class FileDigest(NamedTuple):
    """One file of a model or artifact: path relative to its directory, sha256 hex, size in bytes."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class FetchedModel:
    """A model resolved to a local directory, with the digest of every file the build uses."""

    path: Path
    """Absolute local directory (a snapshot folder in the HF cache for hf:// sources)."""
    files: tuple[FileDigest, ...]
    """Every file used, sorted by path."""
    revision: str | None
    """Commit sha for hf:// sources; None for local directories."""
    source: str
    """The source as written in the recipe."""

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "source": self.source,
            "revision": self.revision,
            "files": [f._asdict() for f in self.files],
        }


def fetch_error(message: str) -> StageError:
    return StageError("fetch", message)


# --------------------------------------------------------------------------------------- entry point
def fetch_model(source: str, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> FetchedModel:
    """Resolve ``source`` (absolute local dir or hf://org/name[@revision]) and digest the files used."""
    if source.startswith("hf://"):
        path, revision = _download(source, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    elif "://" in source:
        raise fetch_error(f"model.source: unsupported scheme in {source!r}; use a local directory or hf://org/name")
    else:
        path, revision = Path(source), None
        if not path.is_absolute():
            raise fetch_error(f"model.source: {source!r} must be resolved against the recipe directory first")
        if not path.is_dir():
            raise fetch_error(f"model.source: {path} is not a directory")
    files = model_files(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    digests = tuple(FileDigest(str(p.relative_to(path)), sha256_file(p), p.stat().st_size) for p in files)
    return FetchedModel(path=path.resolve(), files=digests, revision=revision, source=source)


def parse_hf_source(source: str) -> tuple[str, str | None]:
    """``hf://org/name@rev`` → (``org/name``, ``rev`` or None); a malformed source is a fetch error."""
    from trtbuild.plan.sources import parse_hf_source as split

    repo, rev = split(source)
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo):
        raise fetch_error(f"model.source: expected hf://org/name[@revision], got {source!r}")
    return repo, rev


# ------------------------------------------------------------------------------------ model directory
def model_files(path: Path, *, allow_pickle: bool, trust_remote_code: bool = False) -> list[Path]:
    """The files of ``path`` the build uses: configs, tokenizer files and one weights format.

    Raises a fetch error naming the directory when it has no config.json or no weights, or only
    pickle weights without ``allow_pickle``; and naming the file when a safetensors file is damaged.
    """
    weights = weight_files(path, allow_pickle=allow_pickle)
    patterns = CONFIG_PATTERNS + (REMOTE_CODE_PATTERNS if trust_remote_code else ())
    used = {p for p in _top_level_files(path) if _matches(p.name, patterns)}
    return sorted(used | set(weights))


def weight_files(path: Path, *, allow_pickle: bool) -> list[Path]:
    """The weight files of ``path``: its safetensors (checked), else pickle files if allowed."""
    if not (path / "config.json").is_file():
        raise fetch_error(f"{path}: no config.json (not a Hugging Face model directory)")
    top = _top_level_files(path)
    safetensors = [p for p in top if _matches(p.name, SAFETENSORS_PATTERNS)]
    pickles = [p for p in top if _matches(p.name, PICKLE_PATTERNS)]
    if safetensors:
        _check_index(path, safetensors)
        for p in safetensors:
            check_safetensors_file(p)
        return sorted(safetensors)
    if pickles and not allow_pickle:
        names = ", ".join(p.name for p in sorted(pickles)[:3])
        raise fetch_error(
            f"{path}: only pickle weights ({names}); pickle can run code when loaded. Convert the model "
            "to safetensors, or set model.allow_pickle: true if you trust its source")
    if pickles:
        return sorted(pickles)
    raise fetch_error(f"{path}: no weights (*.safetensors) found")


def read_safetensors_header(path: Path) -> dict[str, dict[str, Any]]:
    """The tensor table of a safetensors file ({name: {dtype, shape, data_offsets}}), checked against
    the file size; ``__metadata__`` is dropped. Needs no torch. Raises a fetch error naming the file."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than the 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > min(size - 8, _MAX_HEADER):
                raise ValueError(f"header length {n} exceeds the file size")
            header = json.loads(f.read(n).decode("utf-8"))
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
        header.pop("__metadata__", None)
        ends = [int(v["data_offsets"][1]) for v in header.values()]
        expected = 8 + n + max(ends, default=0)
    except (ValueError, KeyError, TypeError, IndexError, UnicodeDecodeError) as e:
        raise fetch_error(f"{path}: not a valid safetensors file ({e})") from None
    if expected != size:
        what = "truncated" if size < expected else "has trailing bytes"
        raise fetch_error(f"{path}: safetensors file is {what} ({size} bytes, header describes {expected})")
    return header


def check_safetensors_file(path: Path) -> None:
    """Check a safetensors file's framing without loading it: header length, JSON, data size."""
    read_safetensors_header(path)


def _check_index(path: Path, safetensors: list[Path]) -> None:
    for index in path.glob("*.safetensors.index.json"):
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = set(weight_map.values())
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise fetch_error(f"{index}: invalid safetensors index ({e})") from None
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            raise fetch_error(f"{index}: lists missing shard(s) {', '.join(missing)}")


def _top_level_files(path: Path) -> list[Path]:
    return [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pat) for pat in patterns)


# -------------------------------------------------------------------------------------- hf:// sources
def _hf_cache_dir() -> str:
    """The same cache the planner looks in for config.json (read when the stage runs, not at import)."""
    from trtbuild.plan.sources import hf_cache_dir

    return str(hf_cache_dir())


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _download(source: str, *, allow_pickle: bool, trust_remote_code: bool) -> tuple[Path, str]:
    repo, revision = parse_hf_source(source)
    base = CONFIG_PATTERNS + (REMOTE_CODE_PATTERNS if trust_remote_code else ())
    path = _snapshot(source, repo, revision, base + SAFETENSORS_PATTERNS)
    top = _top_level_files(path)
    if allow_pickle and not any(_matches(p.name, SAFETENSORS_PATTERNS) for p in top):
        path = _snapshot(source, repo, revision, base + PICKLE_PATTERNS)
    sha = path.name
    if not _SHA.match(sha):
        raise fetch_error(f"model.source: {source}: could not resolve revision to a commit (got {sha!r})")
    if revision and _SHA.match(revision) and revision != sha:
        raise fetch_error(f"model.source: {source}: resolved to commit {sha}, not the requested {revision}")
    return path, sha


def _snapshot(source: str, repo: str, revision: str | None, patterns: tuple[str, ...]) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as e:
        raise fetch_error(f"model.source: {source} needs huggingface_hub, which is not installed ({e})") from None
    from trtbuild.hf_access import describe_hub_error, hf_token

    token = hf_token()  # HF_TOKEN, else the token saved by `hf auth login`
    try:
        folder = snapshot_download(
            repo_id=repo, revision=revision or "main", allow_patterns=list(patterns),
            cache_dir=_hf_cache_dir(), local_files_only=_offline(), token=token)
    except (GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError, LocalEntryNotFoundError,
            HfHubHTTPError, OSError) as e:  # OSError covers requests' ConnectionError: "no network", not a trace
        raise fetch_error(f"model.source: {describe_hub_error(e, source)}") from None
    return Path(folder)
