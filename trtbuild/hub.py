"""Model file digests of an `hf://` source from Hugging Face Hub metadata, without downloading weights.

Large files live in Git LFS, whose object id IS the sha256 of the content: the Hub's file metadata
gives it. Small files (configs, tokenizer) are not in LFS (their Git blob id is a sha1 of a header +
content), so those few are downloaded and hashed. The result equals what the fetch stage computes
from the downloaded snapshot, so `trtbuild lock` can pin a 140 GB model from a CPU runner.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trtbuild.errors import StageError
from trtbuild.fsutil import sha256_file

Downloader = Callable[..., str]


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _lfs_sha256(sibling: Any) -> str | None:
    lfs = getattr(sibling, "lfs", None)
    if lfs is None:
        return None
    sha = lfs.get("sha256") if isinstance(lfs, dict) else getattr(lfs, "sha256", None)
    return str(sha) if sha else None


def hub_file_digests(repo: str, revision: str | None, *, allow_pickle: bool = False, trust_remote_code: bool = False,
                     api: Any = None, download: Downloader | None = None) -> tuple[str, dict[str, str]]:
    """(commit sha, {file: sha256}) for the files the build would use. ``api``/``download`` are injectable."""
    from trtbuild.hf_access import describe_hub_error, hf_token
    from trtbuild.plan.sources import hf_revision_problem
    from trtbuild.stages.fetch import (
        CONFIG_PATTERNS,
        PICKLE_PATTERNS,
        REMOTE_CODE_PATTERNS,
        SAFETENSORS_PATTERNS,
    )

    if revision is not None and (problem := hf_revision_problem(revision)) is not None:
        raise StageError("fetch", f"hf://{repo}@{revision}: invalid revision: {problem}")
    token = hf_token()  # HF_TOKEN, else the token saved by `hf auth login` (huggingface_hub's own order)
    if api is None or download is None:
        try:
            from huggingface_hub import HfApi, hf_hub_download
        except ImportError as exc:
            raise StageError("fetch", f"hf://{repo} needs huggingface_hub ({exc})") from None
        api = api or HfApi(token=token)
        download = download or hf_hub_download
    try:
        info = api.model_info(repo, revision=revision or "main", files_metadata=True)
    except Exception as exc:  # noqa: BLE001 - every hub failure becomes one clear message
        raise StageError("fetch", "cannot read Hub metadata: "
                         + describe_hub_error(exc, f"hf://{repo}@{revision or 'main'}")) from None
    commit = str(info.sha)
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        raise StageError("fetch", f"hf://{repo}@{revision or 'main'}: the Hub answered an invalid commit {commit!r}")
    siblings = [s for s in (info.siblings or []) if "/" not in s.rfilename]
    patterns = CONFIG_PATTERNS + (REMOTE_CODE_PATTERNS if trust_remote_code else ())
    weights = [s for s in siblings if _matches(s.rfilename, SAFETENSORS_PATTERNS)]
    if not weights:
        pickles = [s for s in siblings if _matches(s.rfilename, PICKLE_PATTERNS)]
        if pickles and not allow_pickle:
            raise StageError("fetch", f"hf://{repo}@{commit}: only pickle weights; set model.allow_pickle: true if you "
                                      "trust the source")
        weights = pickles
    if not weights:
        raise StageError("fetch", f"hf://{repo}@{commit}: no weights (*.safetensors) in the repository")
    used = [s for s in siblings if _matches(s.rfilename, patterns)] + weights
    digests: dict[str, str] = {}
    for s in sorted(used, key=lambda s: s.rfilename):
        sha = _lfs_sha256(s)
        if sha is None:
            try:
                path = download(repo_id=repo, filename=s.rfilename, revision=commit, token=token)
            except Exception as exc:  # noqa: BLE001 - one clear message, never a raw ConnectionError
                raise StageError("fetch", describe_hub_error(exc, f"hf://{repo}@{commit}/{s.rfilename}")) from None
            sha = sha256_file(Path(path))
        digests[s.rfilename] = sha
    return commit, digests
