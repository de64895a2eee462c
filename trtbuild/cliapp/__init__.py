"""The typer declarations of trtbuild's commands: names, arguments, options and help, nothing else.

Each module holds a ``typer.Typer`` named ``app``; ``trtbuild.cli`` imports only the module of the command
that runs. Every command function here is a thin wrapper: it hands its typed arguments to the command's
body in ``trtbuild.commands`` and returns the exit code.
"""

from __future__ import annotations

from typing import Literal, TypedDict

Executor = Literal["auto", "local", "container", "fake"]
Device = Literal["auto", "cpu", "cuda"]

EXECUTOR_HELP = "where trtllm-build runs (default: the recipe's toolchain.executor)"
CACHE_DIR_HELP = "cache directory (default: $TRTBUILD_CACHE_DIR or the user cache directory)"
QUIET_HELP = "no progress display"


class HelpTexts(TypedDict):
    help: str
    short_help: str


def with_help(short: str, long: str) -> HelpTexts:
    """A command's help: the one line the command list shows, then the paragraph its own --help adds."""
    return {"help": f"{short}\n\n{long}", "short_help": short}
