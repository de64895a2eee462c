"""Canonical forms every part of trtbuild shares, each defined once.

* :class:`Frozen`: the base of trtbuild's own records (plans, manifests, lockfiles): immutable, and an
  unknown field is an error rather than silently dropped. (Recipe sections add strict types on top.)
* :func:`canonical_json` / :func:`canonical_digest`: the one JSON form that is hashed, for stage
  fingerprints and plan digests: sorted keys, no spaces, UTF-8, anything unknown by its ``str``.
* :func:`format_bytes`: byte counts for people, in the three styles outputs use.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    """An immutable record; unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DocumentedFrozen(Frozen):
    """A Frozen record whose attribute docstrings become its JSON Schema descriptions."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def canonical_json(obj: Any) -> str:
    """``obj`` as canonical JSON text: sorted keys, compact separators, non-ASCII kept, unknowns as str."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def canonical_digest(obj: Any) -> str:
    """sha256 (hex) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


GIB = 2**30


def format_bytes(n: int | float, style: Literal["auto", "GiB", "GiB-table", "KiB"] = "auto") -> str:
    """A byte count for people.

    ``auto``: the largest binary unit below the number, one decimal (``512 B``, ``1.5 GiB``; cache, publish);
    ``GiB``: in GiB, one decimal, whole numbers from 10 GiB without (``92.4 GiB``, ``80 GiB``; plan messages);
    ``GiB-table``: in GiB, one decimal, thousands separators (``1,120.0 GiB``; the plan's memory table);
    ``KiB``: in KiB with thousands separators (``1,024 KiB``), bytes below one KiB.
    """
    if style == "GiB":
        v = n / GIB
        return f"{v:.0f} GiB" if abs(v - round(v)) < 0.05 and v >= 10 else f"{v:.1f} GiB"
    if style == "GiB-table":
        return f"{n / GIB:,.1f} GiB"
    if style == "KiB":
        return f"{n / 1024:,.0f} KiB" if n >= 1024 else f"{n} B"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"
