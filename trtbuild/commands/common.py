"""What every command shares: which GPUs a command acts on, and the lockfile's name.

A recipe says which GPUs it is built for in ``gpus:``; ``--gpu`` (repeatable) overrides that list for one
run. ``targets:`` only holds per-GPU overrides and never decides what is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from trtbuild.errors import UsageError


class Args(SimpleNamespace):
    """One command's options as its typer declaration (``trtbuild.cliapp``) names and types them: what a
    command body reads. Library code takes typed arguments, never this."""


def recipe_gpus(loaded: Any, requested: Sequence[str] | None) -> list[str]:
    """``--gpu`` values when given, else the recipe's ``gpus:``; a UsageError saying how to name them."""
    if requested:
        from trtbuild.catalog.gpus import get_gpu

        keys: list[str] = []
        for name in requested:
            key = get_gpu(name).key  # unknown names: exit 2 with suggestions
            if key not in keys:
                keys.append(key)
        return keys
    if loaded.gpus:
        return list(loaded.gpus)
    raise UsageError(f"{loaded.path}: the recipe lists no gpus: to build for; add `gpus: [h100]` (names from "
                     "`trtbuild gpus`; `cpu` is the CPU reference target) or pass --gpu GPU")


def several_targets(loaded: Any, gpus: Sequence[str]) -> bool:
    """Whether a fixed publish tag needs a per-GPU suffix: decided by the recipe's gpus: and this run's
    GPUs together, so `status` (every GPU) and `compile --gpu X` (one CI job per GPU) name the same ref."""
    return len(set(loaded.gpus) | set(gpus)) > 1
