"""Contracts with NVIDIA's code: facts other programs rely on, derived from their source, with provenance.

Each fixture is a JSON file under ``trtbuild/contracts/<release>/`` (today ``trtllm_1_2``): what it states
(``data``), where it came from (``sources``: repository, path, commit) and how it was made
(``generated_by``). ``python -m trtbuild.contracts.regenerate`` rebuilds them from a checkout of
NVIDIA/TensorRT-LLM, so a new release is a fixture update; templates, planner and lint are tested against
them (tests/contracts/). The loader is generic: any ``*.json`` dropped into a release directory loads, and
:mod:`trtbuild.contracts.trtllm` gives typed views of the fixtures trtbuild itself consumes.

Self-contained on purpose (stdlib + pydantic, no trtbuild imports) so it can move to
``trtbuild/backends/contracts/`` unchanged.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

CONTRACTS_DIR = Path(__file__).resolve().parent
DEFAULT_RELEASE = "trtllm_1_2"
_KNOWN = ("contract", "release", "about", "sources", "generated_by", "data")


class Source(BaseModel):
    """One upstream file a fixture was derived from."""

    model_config = ConfigDict(frozen=True, extra="allow")

    repo: str
    """``owner/name`` on GitHub, e.g. ``NVIDIA/TensorRT-LLM``."""
    path: str
    """Path of the file inside the repository."""
    commit: str | None = None
    """The commit the file was read at; null where only a search-index copy was available (see ``note``)."""
    version: str | None = None
    """Directory name of the saved copy under an upstream shelf (the commit, or ``index-<id>``)."""
    note: str = ""

    def cite(self) -> str:
        at = self.commit[:8] if self.commit else (self.version or "unknown version")
        return f"{self.repo} {self.path} @{at}"


class Fixture(BaseModel):
    """A contract fixture: the facts (``data``) and their provenance."""

    model_config = ConfigDict(frozen=True)

    contract: str
    release: str
    about: str = ""
    sources: tuple[Source, ...] = ()
    generated_by: str = ""
    data: dict[str, Any]
    path: Path


def release_dir(release: str = DEFAULT_RELEASE) -> Path:
    return CONTRACTS_DIR / release


def fixture_names(release: str = DEFAULT_RELEASE) -> tuple[str, ...]:
    """Every fixture of ``release`` (file stems), sorted."""
    return tuple(sorted(p.stem for p in release_dir(release).glob("*.json")))


@functools.cache
def load_fixture(name: str, release: str = DEFAULT_RELEASE) -> Fixture:
    """Load ``<release>/<name>.json``. A file without a ``data`` key is taken whole as the data."""
    path = release_dir(release) / f"{name}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no contract fixture {name!r} for {release} (have: "
                                f"{', '.join(fixture_names(release)) or 'none'})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a contract fixture is a JSON object")
    data = raw["data"] if isinstance(raw.get("data"), dict) else {k: v for k, v in raw.items() if k not in _KNOWN}
    sources = raw.get("sources") or []
    if isinstance(sources, dict):  # {"utils.cc": {...}, ...}: named sources
        sources = [{"name": name, **src} for name, src in sources.items()]
    return Fixture(contract=str(raw.get("contract", name)), release=str(raw.get("release", release)),
                   about=str(raw.get("about", "")), sources=tuple(Source(**s) for s in sources),
                   generated_by=str(raw.get("generated_by", "")), data=data, path=path)


__all__ = ["CONTRACTS_DIR", "DEFAULT_RELEASE", "Fixture", "Source", "fixture_names", "load_fixture", "release_dir"]
