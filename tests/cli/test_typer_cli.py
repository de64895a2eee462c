"""Issue 12, item 8: the command line on typer — rich help, shell completion, one error boundary with the
documented exit codes, and a planning path that loads only what `plan` needs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.recipes import RECIPES
from trtbuild.cli import COMMANDS, _optional_values

RECIPE_70B = str(RECIPES / "llama-3.1-70b-fp8-tp4.yaml")


def test_no_command_prints_the_help_on_stderr_and_exits_2(cli) -> None:
    r = cli()
    assert r.returncode == 2 and r.stdout == ""
    assert "Usage: trtbuild" in r.stderr and "plan" in r.stderr and "Traceback" not in r.stderr


def test_help_lists_every_command_with_its_line(cli) -> None:
    r = cli("--help")
    assert r.returncode == 0
    for name in COMMANDS:
        assert f"│ {name} " in r.stdout, name
    assert "Exit codes: 0 ok" in r.stdout


@pytest.mark.parametrize("argv", [("plan", RECIPE_70B, "--frobnicate"), ("plan",), ("plna", RECIPE_70B),
                                  ("plan", RECIPE_70B, "--executor", "cloud"), ("smoke", "repo")])
def test_command_line_mistakes_exit_2_with_the_usage_and_no_traceback(cli, argv: tuple[str, ...]) -> None:
    r = cli(*argv)
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert "error: trtbuild" in r.stderr and "--help' for help" in r.stderr


def test_a_misspelt_command_is_suggested(cli) -> None:
    r = cli("plna", RECIPE_70B)
    assert r.returncode == 2 and "Did you mean 'plan'?" in r.stderr


def test_version(cli) -> None:
    from trtbuild import __version__

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"trtbuild {__version__}"


def test_cache_without_an_action_shows_the_actions_on_stderr(cli, tmp_path: Path) -> None:
    r = cli("cache", "--cache-dir", str(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    assert all(f"│ {action} " in r.stderr for action in ("ls", "verify", "gc")), r.stderr


def test_cache_dir_is_taken_before_or_after_the_action(cli, tmp_path: Path) -> None:
    before = cli("cache", "--cache-dir", str(tmp_path / "a"), "ls", "--json")
    after = cli("cache", "ls", "--json", "--cache-dir", str(tmp_path / "b"))
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout)["cache_dir"] == str(tmp_path / "a")
    assert json.loads(after.stdout)["cache_dir"] == str(tmp_path / "b")


def test_publish_without_a_reference_means_the_recipe_registry() -> None:
    """`compile --publish` alone keeps its meaning: the recipe's publish.registry (an empty reference)."""
    assert _optional_values(["compile", "r.yaml", "--publish"]) == ["compile", "r.yaml", "--publish", ""]
    assert _optional_values(["compile", "r.yaml", "--publish", "--json"]) == [
        "compile", "r.yaml", "--publish", "", "--json"]
    assert _optional_values(["compile", "r.yaml", "--publish", "oci://h/n"]) == [
        "compile", "r.yaml", "--publish", "oci://h/n"]
    assert _optional_values(["publish", "dir", "--publish"]) == ["publish", "dir", "--publish"]


def test_bare_publish_reaches_compile(cli, tmp_path: Path) -> None:
    """The recipe names no registry: compile says how to give one (exit 2), before any build starts."""
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    (tmp_path / "r.yaml").write_text("recipe: 1\nname: tiny\nmodel: {source: model}\ngpus: [cpu]\n"
                                     "build: {max_batch_size: 4, max_input_len: 64, max_seq_len: 128}\n")
    r = cli("compile", "r.yaml", "--publish", "--quiet", cwd=tmp_path,
            env={"TRTBUILD_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 2 and "--publish needs a reference" in r.stderr, r.stderr


def test_status_json_and_github_matrix_exclude_each_other(cli) -> None:
    r = cli("status", RECIPE_70B, "--json", "--github-matrix")
    assert r.returncode == 2 and "cannot be combined" in r.stderr


def test_shell_completion_script_and_completions(cli) -> None:
    # typer finds the shell from the process tree (shellingham), not an argument: ask from a bash, as a user
    # would (under `make test` the nearest shell is otherwise make's /bin/sh, which typer refuses); `; exit $?`
    # keeps bash from exec'ing python in its place
    script = subprocess.run(["bash", "-c", f"'{sys.executable}' -m trtbuild --show-completion; exit $?"],
                            capture_output=True, text=True, timeout=60)
    assert script.returncode == 0 and "_TRTBUILD_COMPLETE" in script.stdout, script.stderr
    words = cli(env={"_TRTBUILD_COMPLETE": "complete_bash", "COMP_WORDS": "trtbuild pl", "COMP_CWORD": "1"})
    assert words.returncode == 0 and "plan" in words.stdout.split()
    opts = cli(env={"_TRTBUILD_COMPLETE": "complete_bash", "COMP_WORDS": "trtbuild plan x --exe",
                    "COMP_CWORD": "3"})
    assert "--executor" in opts.stdout.split()


def test_every_long_running_command_documents_its_json_and_quiet(cli) -> None:
    for cmd in ("compile", "engine", "lock", "smoke", "publish", "pull"):
        r = cli(cmd, "--help")
        assert r.returncode == 0 and "--json" in r.stdout and "--quiet" in r.stdout, cmd


def test_plan_loads_only_its_own_command_module() -> None:
    """The planning path: no other command's declarations, no rich (help only), no Jinja, no torch."""
    code = (f"import sys; from trtbuild.cli import main; rc = main(['plan', {RECIPE_70B!r}, '--gpu', 'h100']);"
            "print(sorted(m for m in sys.modules if m.startswith(('trtbuild.cliapp.', 'rich', 'jinja2', 'torch',"
            "'trtbuild.commands.compile', 'trtbuild.build')) ), file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines()[-1] == "['trtbuild.cliapp.recipe']"


def test_a_bug_in_a_command_is_exit_1_with_a_hint(cli, tmp_path: Path) -> None:
    """An internal error is reported as a bug (exit 1), its traceback only with --debug."""
    code = ("import sys, trtbuild.commands.planning as p\n"
            "def boom(**kw): raise ZeroDivisionError('x')\n"
            "p.cmd_gpus = boom\nfrom trtbuild.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    plain = subprocess.run([sys.executable, "-c", code, "gpus"], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 1 and "internal error (a bug in trtbuild): ZeroDivisionError" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, "-c", code, "--debug", "gpus"], capture_output=True, text=True,
                           timeout=60)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_ctrl_c_in_a_command_is_exit_130_and_says_so() -> None:
    code = ("import sys, trtbuild.commands.planning as p\n"
            "def stop(**kw): raise KeyboardInterrupt\n"
            "p.cmd_gpus = stop\nfrom trtbuild.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    r = subprocess.run([sys.executable, "-c", code, "gpus"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 130 and r.stderr.strip() == "interrupted" and r.stdout == ""
