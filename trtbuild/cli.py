"""The `trtbuild` command line (typer). The one place that maps errors to exit codes:

0 ok · 1 bug · 2 usage · 3 recipe/plan invalid · 4 stage failed · 5 publish failed.

Start-up stays light: the command table below is static, and only the module declaring the command that
runs is imported (`trtbuild.cliapp.*`, which import typer; rich only to draw help, completion, or progress
on a terminal).
Each command body imports its own machinery, so `trtbuild plan` never pays for torch or Jinja.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

from trtbuild.errors import PlanError, RecipeError, TrtbuildError, UsageError

# name -> module that declares it (a ``typer.Typer`` named ``app`` there). The order is the help's order.
COMMANDS: dict[str, str] = {
    "validate": "trtbuild.cliapp.recipe", "plan": "trtbuild.cliapp.recipe", "schema": "trtbuild.cliapp.recipe",
    "gpus": "trtbuild.cliapp.recipe", "init": "trtbuild.cliapp.recipe", "compile": "trtbuild.cliapp.build",
    "status": "trtbuild.cliapp.recipe", "lock": "trtbuild.cliapp.recipe", "checkpoint": "trtbuild.cliapp.build",
    "demo-model": "trtbuild.cliapp.build", "engine": "trtbuild.cliapp.build", "lint": "trtbuild.cliapp.serve",
    "serve": "trtbuild.cliapp.serve", "smoke": "trtbuild.cliapp.serve", "cache": "trtbuild.cliapp.serve",
    "publish": "trtbuild.cliapp.serve", "pull": "trtbuild.cliapp.serve",
}

# Options whose value may be left out (`compile --publish` alone: the recipe's publish.registry). The
# parser needs a value, so a bare one is given the empty string here, as argparse's nargs="?" did.
OPTIONAL_VALUES = {("compile", "--publish")}

# Set by the shell completion script that `trtbuild --install-completion` installs.
COMPLETE_VAR = "_TRTBUILD_COMPLETE"


class Interrupted(Exception):
    """Ctrl-C (SIGINT) during a command: exit 130 with "interrupted" on stderr."""


class LazyCommands(MutableMapping[str, Any]):
    """The root group's commands, built on first use: running `plan` imports only its module."""

    def __init__(self) -> None:
        self._built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            if name not in COMMANDS:
                raise KeyError(name)
            self._built[name] = _declared(name)
        return self._built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


def _declared(name: str) -> Any:
    """The click command of ``name``, built from its typer declaration alone (typer builds a pydantic
    adapter per parameter: building the other commands of its module would cost more than `plan` itself)."""
    import importlib

    from typer.main import get_command_from_info, get_group_from_info

    app = importlib.import_module(COMMANDS[name]).app
    markup = app.rich_markup_mode
    for info in app.registered_commands:
        if info.name == name:
            return get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                         rich_markup_mode=markup)
    for group in app.registered_groups:
        if group.name == name:
            return get_group_from_info(group, pretty_exceptions_short=app.pretty_exceptions_short,
                                       suggest_commands=app.suggest_commands, rich_markup_mode=markup)
    raise KeyError(f"{COMMANDS[name]} declares no command {name!r}")


def build_command() -> Any:
    """The root click command of the typer app, with --install-completion / --show-completion."""
    import typer
    from typer.core import TyperGroup
    from typer.main import get_command

    from trtbuild import __version__

    class Root(TyperGroup):
        def __init__(self, **attrs: Any) -> None:
            super().__init__(**attrs)
            self.commands = LazyCommands()

        def invoke(self, ctx: Any) -> Any:
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:  # typer would make it a silent Exit(130): the boundary says so
                raise Interrupted from None

    app = typer.Typer(cls=Root, name="trtbuild", rich_markup_mode="rich",
                      help="Compile a recipe into TensorRT-LLM engines and a Triton repository.",
                      context_settings={"help_option_names": ["-h", "--help"]},
                      epilog="Exit codes: 0 ok · 1 bug · 2 usage · 3 recipe/plan invalid · 4 stage failed · "
                             "5 publish failed.")

    def show_version(value: bool) -> None:
        if value:
            print(f"trtbuild {__version__}")
            raise typer.Exit(0)

    @app.callback()
    def root(
        version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                     help="print the version and exit"),
        debug: bool = typer.Option(False, "--debug", help="show tracebacks for internal errors"),
    ) -> None:
        """Compile a recipe into TensorRT-LLM engines and a Triton repository."""

    return get_command(app)


def _optional_values(argv: list[str]) -> list[str]:
    command = next((a for a in argv if not a.startswith("-")), None)
    out: list[str] = []
    for i, arg in enumerate(argv):
        out.append(arg)
        if (command, arg) in OPTIONAL_VALUES and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append("")
    return out


def _usage_error(exc: Any) -> int:
    """A mistake on the command line: what was wrong and where help is (exit 2)."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        print(ctx.get_usage(), file=sys.stderr)
        print(f"Try '{ctx.command_path} --help' for help.", file=sys.stderr)
    prefix = f"{ctx.command_path}: " if ctx is not None else ""
    print(f"error: {prefix}{exc.format_message()}", file=sys.stderr)
    return UsageError.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("TRTBUILD_DEBUG") == "1"
    try:
        if not argv and COMPLETE_VAR not in os.environ:  # what there is to do, on stderr (exit 2)
            with contextlib.redirect_stdout(sys.stderr):
                build_command().main(args=["--help"], prog_name="trtbuild", standalone_mode=False)
            return UsageError.exit_code
        from typer import Abort, Exit
        from typer._click.exceptions import ClickException
        from typer._click.exceptions import UsageError as ClickUsageError

        try:
            rv = build_command().main(args=_optional_values(argv), prog_name="trtbuild", complete_var=COMPLETE_VAR,
                                      standalone_mode=False)
        except ClickUsageError as exc:
            return _usage_error(exc)
        except ClickException as exc:
            print(f"error: {exc.format_message()}", file=sys.stderr)
            return int(exc.exit_code)
        except Exit as exc:
            return int(exc.exit_code)
        except Abort:
            print("interrupted", file=sys.stderr)
            return 130
        return int(rv or 0)
    except RecipeError as exc:
        for d in exc.diagnostics:
            print(d.format(), file=sys.stderr)
        return exc.exit_code
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for d in exc.diagnostics:
            print("  " + d.format(), file=sys.stderr)
        return exc.exit_code
    except TrtbuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, Interrupted):
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # a bug: say so, and how to report it
        if debug:
            traceback.print_exc()
        else:
            etype, value, _ = sys.exc_info()
            print(f"internal error (a bug in trtbuild): {etype.__name__ if etype else 'Exception'}: {value}\n"
                  "  rerun with --debug for the traceback", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
