"""Subcommands of the build stages. Each module has ``register(subparsers)``; handlers import
their heavy machinery lazily so that `trtbuild plan` stays light."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def registrars() -> list[Callable[[Any], None]]:
    from trtbuild.commands import cache, checkpoint, compile, engine, init, lock, publish, repository, status

    return [init.register, compile.register, status.register, lock.register, checkpoint.register, engine.register,
            repository.register, cache.register, publish.register]
