"""Issue 14, item 8: one exit code per kind of mistake, in every command, as the README's table says.

The table in README.md is parsed; every command is run with each mistake that applies to it, and the exit
code must be the mistake's code and one the README lists for that command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.cli.recipes import README, RECIPES

MISSING, INVALID, INFEASIBLE, UNKNOWN_GPU, NO_GPUS, NO_TOOL = 2, 3, 3, 2, 2, 4


def documented() -> dict[str, set[int]]:
    """{command: exit codes} from the README's command table."""
    table = README.read_text().split("## Commands", 1)[1].split("\n\n", 2)[2]
    out: dict[str, set[int]] = {}
    for line in table.splitlines():
        if not line.startswith("| `trtbuild"):
            continue
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        codes = {int(c) for c in re.findall(r"\d", cells[-1])}
        for name in re.findall(r"`trtbuild ([a-z][a-z-]*)", cells[0]):
            out[name] = codes
    return out


def test_every_command_is_in_the_table(cli) -> None:
    r = cli("--help")
    listed = set(re.findall(r"^│ ([a-z][a-z-]+)\s", r.stdout, flags=re.M))  # the help's Commands panel
    assert listed, r.stdout
    missing = listed - set(documented())
    assert not missing, f"commands without documented exit codes: {sorted(missing)}"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model

    root = tmp_path_factory.mktemp("exit-codes")
    make_tiny_model(root / "model")
    base = "recipe: 1\nname: tiny\nmodel: {source: model}\nbuild: {max_batch_size: 4, max_input_len: 64, max_seq_len: 128}\n"
    (root / "ok.yaml").write_text(base + "gpus: [h100]\n")
    (root / "nogpus.yaml").write_text(base)
    (root / "invalid.yaml").write_text(base + "gpus: [h100]\nquantization: {weights: fp9}\n")
    (root / "infeasible.yaml").write_text(base + "gpus: [a100]\nquantization: {weights: fp8}\n")
    return root


def _cases() -> list[tuple[str, tuple[str, ...], int]]:
    c: list[tuple[str, tuple[str, ...], int]] = []
    recipe_cmds = {
        "plan": (), "compile": (), "status": (), "lock": (),
        "checkpoint": ("--out", "ck"), "engine": ("--checkpoint", "ck", "--out", "eng"),
        "validate": (),
    }
    for cmd, extra in recipe_cmds.items():
        gpu = () if cmd in ("plan", "compile", "status", "lock", "validate") else ("--gpu", "h100")
        c.append((cmd, ("nope.yaml", *gpu, *extra), MISSING))
        c.append((cmd, ("invalid.yaml", *gpu, *extra), INVALID))
        if cmd != "validate":
            c.append((cmd, ("ok.yaml", "--gpu", "h10", *extra), UNKNOWN_GPU))
    for cmd in ("plan", "compile", "status"):
        c.append((cmd, ("nogpus.yaml",), NO_GPUS))
        c.append((cmd, ("infeasible.yaml",), INFEASIBLE))
    c.append(("checkpoint", ("infeasible.yaml", "--gpu", "a100", "--out", "ck"), INFEASIBLE))
    c.append(("engine", ("infeasible.yaml", "--gpu", "a100", "--checkpoint", "ck", "--out", "e"), INFEASIBLE))
    c.append(("compile", ("ok.yaml",), NO_TOOL))  # h100 needs trtllm-build, absent here
    for cmd, extra in (("lint", ()), ("serve", ()), ("smoke", ("--prompt", "x"))):
        c.append((cmd, ("no-such-repo", *extra), MISSING))
    c.append(("publish", ("no-such-dir", "oci://127.0.0.1:5999/ns/name:tag", "--plain-http"), MISSING))
    c.append(("init", ("no-such-model-dir", "--gpu", "h100"), MISSING))
    c.append(("init", ("model", "--gpu", "h10"), UNKNOWN_GPU))
    return c


@pytest.mark.parametrize(("cmd", "args", "code"), _cases(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_same_mistake_same_code_everywhere(cli, project: Path, cmd: str, args: tuple[str, ...], code: int) -> None:
    r = cli(cmd, *args, cwd=project, env={"TRTBUILD_CACHE_DIR": str(project / "cache"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == code, f"{cmd} {' '.join(args)}: exit {r.returncode}\n{r.stderr[-1500:]}"
    assert code in documented()[cmd], f"README does not list exit {code} for {cmd}"
    assert "Traceback" not in r.stderr


def test_serve_without_tritonserver_is_a_failed_step(cli, tmp_path: Path) -> None:
    """An engine repository needs the system's tritonserver: without it, exit 4 (documented), not 2."""
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    (tmp_path / "r.yaml").write_text("recipe: 1\nname: tiny\nmodel: {source: model}\ngpus: [h100]\n"
                                     "build: {max_batch_size: 4, max_input_len: 64, max_seq_len: 128}\n")
    env = {"TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1", "TRTBUILD_CACHE_DIR": str(tmp_path / "cache")}
    built = cli("compile", "r.yaml", "--executor", "fake", "--out", "out", "--quiet", cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    repo = tmp_path / "out" / "h100-sxm" / "repository"
    for cmd, extra in (("serve", ()), ("smoke", ("--prompt", "x"))):
        r = cli(cmd, str(repo), *extra, env={"TRITONSERVER": str(tmp_path / "absent"), "PATH": "/usr/bin:/bin"})
        assert r.returncode == NO_TOOL and "tritonserver not found" in r.stderr, r.stderr
        assert NO_TOOL in documented()[cmd]


def test_status_and_recipes_dir_examples_name_gpus() -> None:
    """The reason `status recipes/*.yaml` used to skip H100 for the Llama-3.1-8B recipe: it built only the
    targets: keys. Now the recipe names its GPUs and status follows them."""
    from trtbuild.recipe.loader import load_recipe

    loaded = load_recipe(RECIPES / "llama-3.1-8b-fp8.yaml")
    assert loaded.gpus[0] == "h100-sxm" and set(loaded.targets) < set(loaded.gpus)
