"""Subcommands of the build stages. Each module has ``register(subparsers)``; handlers import
their heavy machinery lazily so that `trtbuild plan` stays light."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def registrars() -> list[Callable[[Any], None]]:
    from trtbuild.commands import cache, checkpoint, engine, publish

    return [checkpoint.register, cache.register, engine.register, publish.register]
