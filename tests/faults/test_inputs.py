"""Issue 11, findings 4, 5 and 6: hostile or nonsensical input is a clear error with the usual exit code,
never a crash, a hang, a path outside the Hub cache or a plan that says "feasible".

Replayed: ``.inf`` and a 400-digit number in duration and size fields (OverflowError), ``validate`` of a
FIFO and ``/dev/zero`` (hung reading), end/pad ids outside the vocabulary, ``build.workers`` > tp x pp,
``opt_num_tokens`` > ``max_num_tokens``, booleans and quoted numbers where integers belong, ``recipe: true``,
``hf://org/name@../../x``. Then a little fuzzing beyond them.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trtbuild.errors import PlanError, RecipeError, StageError
from trtbuild.recipe.loader import parse_recipe

from .faultlib import TRTBUILD, base_env

BASE = {"recipe": 1, "name": "tiny", "model": {"source": "model"},
        "build": {"max_seq_len": 256, "max_input_len": 128, "max_batch_size": 4, "max_num_tokens": 512}}
DURATIONS = (("toolchain", "build_timeout"), ("runtime", "kv_cache", "retention", "decode_duration"))
SIZES = (("runtime", "kv_cache", "host_offload"),)
BIG = "9" * 400


def _doc(path: tuple[str, ...], value: object) -> dict:
    doc = json.loads(json.dumps(BASE))
    node = doc
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return doc


def _cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRTBUILD), *args], cwd=cwd, env=base_env(), capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("path", DURATIONS + SIZES, ids=lambda p: ".".join(p))
@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", BIG, f"{BIG}.5", f"{BIG}GiB", f"{BIG}m", "1e999"])
def test_overflowing_numbers_are_schema_errors(tmp_path: Path, path: tuple[str, ...], value: str) -> None:
    text = yaml.safe_dump(_doc(path, "PLACEHOLDER"), sort_keys=False).replace("PLACEHOLDER", value)
    (tmp_path / "r.yaml").write_text(text)
    r = _cli("validate", "r.yaml", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    line = [ln for ln in r.stderr.splitlines() if ".".join(path) in ln]
    assert line and line[0].startswith("r.yaml:"), r.stderr
    assert "internal error" not in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory", "huge"])
@pytest.mark.parametrize("command", ["validate", "plan"])
def test_special_files_are_refused_at_once(tmp_path: Path, kind: str, command: str) -> None:
    path = tmp_path / "recipe.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "directory":
        path.mkdir()
    else:
        with open(path, "wb") as f:
            f.truncate(64 * 1024 * 1024)  # sparse: as large as a real 64 MiB file, costs nothing
    args = [command, str(path)] + (["--gpu", "h100"] if command == "plan" else [])
    r = _cli(*args, cwd=tmp_path, timeout=30)  # a hang is a TimeoutExpired, i.e. a failure
    assert r.returncode == 2, r.stderr  # an unreadable file is a usage error in every command (README table)
    assert str(path) in r.stderr and "Traceback" not in r.stderr


def test_model_config_fifo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    os.mkfifo(tmp_path / "model" / "config.json")
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(BASE))
    r = _cli("plan", "r.yaml", "--gpu", "h100", cwd=tmp_path, timeout=30)
    assert r.returncode == 3 and "config.json: not a regular file" in r.stderr, r.stderr
    # read directly (bounded, non-blocking) when given as model.config
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({**BASE, "model": {"source": "model", "config": "/dev/zero"}}))
    r = _cli("plan", "r.yaml", "--gpu", "h100", cwd=tmp_path, timeout=30)
    assert r.returncode == 3 and "/dev/zero: not a regular file" in r.stderr, r.stderr


@pytest.mark.parametrize("path, value, message", [
    (("build", "max_num_tokens"), True, "Input should be a valid integer, got True"),
    (("build", "max_num_tokens"), "64", "Input should be a valid integer, got '64'"),
    (("build", "max_batch_size"), 4.0, "Input should be a valid integer"),
    (("serving", "end_ids"), [2, "3"], "Input should be a valid integer, got '3'"),
    (("runtime", "streaming"), 1, "Input should be a valid boolean"),
    (("runtime", "kv_cache", "free_gpu_memory_fraction"), True, "Input should be a valid number"),
    (("recipe",), True, "expected the recipe format version 1, got True"),
    (("model", "source"), "hf://org/name@../../x", "invalid revision '../../x'"),
    (("model", "source"), "hf://org/name@-rf", "invalid revision '-rf'"),
    (("model", "source"), "hf://org/name@a/.b", "invalid revision 'a/.b'"),
], ids=lambda v: str(v)[:24])
def test_wrong_types_and_bad_revisions_are_schema_errors(path: tuple[str, ...], value: object, message: str) -> None:
    with pytest.raises(RecipeError) as err:
        parse_recipe(yaml.safe_dump(_doc(path, value), sort_keys=False), Path("r.yaml"))
    text = "\n".join(d.format() for d in err.value.diagnostics)
    assert message in text and text.startswith("r.yaml:") and ".".join(path) in text


def test_nonsense_values_get_rule_ids(tmp_path: Path, tiny_model: Path) -> None:
    (tmp_path / "model").symlink_to(tiny_model, target_is_directory=True)
    vocab = json.loads((tiny_model / "config.json").read_text())["vocab_size"]
    (tmp_path / "r.yaml").write_text(textwrap.dedent(f"""\
        recipe: 1
        name: tiny
        model: {{source: model}}
        build: {{max_seq_len: 256, max_input_len: 128, max_batch_size: 4, max_num_tokens: 512, workers: 3,
                opt_num_tokens: 1024}}
        serving: {{end_ids: [1, {vocab}], pad_id: {vocab + 7}}}
        """))
    r = _cli("plan", "r.yaml", "--gpu", "h100", "--json", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    (plan,) = json.loads(r.stdout)["plans"]
    rules = {d["rule"]: d for d in plan["diagnostics"] if d["severity"] == "error"}
    assert {"serving.token_ids", "build.workers", "len.opt_num_tokens"} <= set(rules)
    assert rules["build.workers"]["path"] == "build.workers" and "at most 1" in rules["build.workers"]["message"]
    r = _cli("plan", "r.yaml", "--gpu", "h100", cwd=tmp_path)
    assert "r.yaml:6:" in r.stdout + r.stderr  # compiler form, positioned at serving


def test_revision_never_becomes_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """hf://org/name@../../x escaped the Hub cache; a ref file may only name a commit."""
    from trtbuild.hub import hub_file_digests
    from trtbuild.plan.sources import cached_hf_file, parse_hf_source
    from trtbuild.stages.fetch import parse_hf_source as fetch_parse

    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    outside = tmp_path / "x" / "config.json"
    outside.parent.mkdir()
    outside.write_text("{}")
    repo = cache / "models--org--name"
    (repo / "refs").mkdir(parents=True)
    (repo / "snapshots").mkdir()
    assert cached_hf_file("org/name", "../../../x", "config.json") is None
    with pytest.raises(PlanError, match="invalid revision"):
        parse_hf_source("hf://org/name@../../x")
    with pytest.raises(PlanError, match="invalid revision"):
        fetch_parse("hf://org/name@..")
    # A ref file that holds a path, not a commit, is not followed.
    (repo / "refs" / "main").write_text("../../../x\n")
    assert cached_hf_file("org/name", "main", "config.json") is None
    (repo / "refs" / "main").write_text("a" * 40)
    (repo / "snapshots" / ("a" * 40)).mkdir()
    (repo / "snapshots" / ("a" * 40) / "config.json").write_text("{}")
    assert cached_hf_file("org/name", "main", "config.json") == repo / "snapshots" / ("a" * 40) / "config.json"

    def no_network(*args: object, **kw: object) -> None:
        raise AssertionError("the Hub must not be asked about an invalid revision")

    with pytest.raises(StageError, match="invalid revision"):
        hub_file_digests("org/name", "../../x", api=no_network, download=no_network)


# ------------------------------------------------------------------------------------- fuzzing
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**400), max_value=10**400),
                    st.booleans(), st.none(), st.text(alphabet="0123456789.eE+-_ ", max_size=420),
                    st.builds(lambda n, u: f"{n}{u}", st.integers(min_value=0, max_value=10**400),
                              st.sampled_from(["", "ms", "s", "m", "h", "GiB", "TB", "B", "kib"])))
FIELDS = DURATIONS + SIZES + (("build", "max_num_tokens"), ("build", "opt_num_tokens"), ("build", "workers"),
                              ("runtime", "kv_cache", "free_gpu_memory_fraction"), ("serving", "pad_id"),
                              ("quantization", "awq_block_size"), ("recipe",), ("parallelism", "tp"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(FIELDS), value=numbers)
def test_fuzz_numbers_never_crash_the_loader(path: tuple[str, ...], value: object) -> None:
    if isinstance(value, float) and math.isnan(value):
        text = yaml.safe_dump(_doc(path, "X")).replace("X", ".nan")
    else:
        text = yaml.safe_dump(_doc(path, value), sort_keys=False)
    try:
        parse_recipe(text, Path("f.yaml"))
    except RecipeError as exc:
        assert all(d.format().startswith("f.yaml:") for d in exc.diagnostics)


@settings(max_examples=300, deadline=None)
@given(rev=st.text(max_size=60))
def test_fuzz_revisions_are_refs_or_refused(rev: str) -> None:
    from trtbuild.plan.sources import hf_revision_problem

    if hf_revision_problem(rev) is None:
        parts = rev.split("/")
        assert ".." not in parts and "." not in parts and not rev.startswith("/") and "\x00" not in rev
