"""Hugging Face Hub access as `huggingface_hub` resolves it, and its failures as one clear sentence.

The token is huggingface_hub's own choice: ``HF_TOKEN``, else the token saved by ``hf auth login`` /
``huggingface-cli login`` (``$HF_HOME/token``). It is passed through, never printed or written.
Failures never surface as a raw ``ConnectionError``: an unreachable Hub says "no network" and how to work
offline; a gated or private repository says which token was used and how to give one.
"""

from __future__ import annotations

import os


def hf_token() -> str | None:
    """The token huggingface_hub would use (HF_TOKEN, else the one saved by `hf auth login`), or None."""
    try:
        from huggingface_hub import get_token
    except ImportError:
        return os.environ.get("HF_TOKEN") or None
    return get_token() or None


def token_source() -> str:
    """Where the token comes from, for messages (never the token itself)."""
    if os.environ.get("HF_TOKEN"):
        return "the token in HF_TOKEN"
    if hf_token():
        return "the token saved by `hf auth login`"
    return "no token (neither HF_TOKEN nor `hf auth login`)"


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def describe_hub_error(exc: BaseException, what: str) -> str:
    """``what`` (e.g. 'hf://org/name@rev') and why the Hub refused or could not be reached, in one message."""
    import requests

    try:
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency of every Hub path
        return f"{what}: {type(exc).__name__}"
    login = "set HF_TOKEN or run `hf auth login`"
    if isinstance(exc, GatedRepoError):
        return (f"{what} is gated: accept its licence on the Hub with your account and give trtbuild a token with "
                f"access ({login}); used {token_source()}")
    if isinstance(exc, RepositoryNotFoundError):
        return f"{what}: no such repository, or it is private and {token_source()} has no access ({login})"
    if isinstance(exc, RevisionNotFoundError):
        return f"{what}: no such revision (branch, tag or commit) in the repository"
    if isinstance(exc, OfflineModeIsEnabled) or (isinstance(exc, LocalEntryNotFoundError) and offline()):
        from trtbuild.plan.sources import hf_cache_dir

        return (f"{what}: offline (HF_HUB_OFFLINE is set) and not in the Hugging Face cache ({hf_cache_dir()}); "
                "unset HF_HUB_OFFLINE to download it, or download it once where there is a network")
    network = (requests.ConnectionError, requests.Timeout, LocalEntryNotFoundError, ConnectionError, TimeoutError)
    if isinstance(exc, network):
        return (f"{what}: no network: cannot reach the Hugging Face Hub at {hub_endpoint()}. Work offline with "
                "files already in the local Hugging Face cache (HF_HUB_OFFLINE=1), a local model directory, or a "
                "lockfile made where the Hub is reachable (`trtbuild lock`)")
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            return f"{what}: the Hub refused access ({status}) with {token_source()} ({login})"
        first = str(exc).splitlines()[0] if str(exc) else ""
        return f"{what}: the Hub answered an error{f' {status}' if status else ''}: {first}"
    if isinstance(exc, OSError):
        return f"{what}: {exc.strerror or exc}"
    return f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
