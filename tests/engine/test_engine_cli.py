"""`trtbuild engine` as a user runs it: dry runs, the fake executor gate, exit codes."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import yaml

from trtbuild.stages.engine_command import build_command

from .helpers import ROOT, plan_for, write_checkpoint

RECIPE = str(ROOT / "recipes" / "llama-3.1-8b-fp8.yaml")
DIGEST = "sha256:" + "fe" * 32


def container_recipe(tmp_path: Path, image: str) -> Path:
    data = yaml.safe_load(Path(RECIPE).read_text())
    data["model"]["config"] = str(ROOT / "recipes" / "models" / "llama-3.1-8b-instruct" / "config.json")
    data["toolchain"] = {"executor": "container", "image": image, "build_timeout": "2h"}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def path_with(tmp_path: Path, *programs: str) -> str:
    """A PATH holding only stub programs named ``programs`` (plus this Python's directory)."""
    bin_dir = tmp_path / "stub-bin"
    bin_dir.mkdir(exist_ok=True)
    for name in programs:
        stub = bin_dir / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}"


def test_local_dry_run_prints_the_exact_command(cli, tmp_path):
    r = cli("engine", RECIPE, "--gpu", "h100", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "eng"),
            "--executor", "local", "--dry-run", "--cache-dir", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    plan = plan_for("llama-3.1-8b-fp8.yaml", "h100")
    # The timing cache is copied into trtllm-build's scratch working directory: the path trtllm-build records
    # in the engine's config.json is then the same wherever the cache lives (reproducible engines).
    expected = build_command(plan, tmp_path / "ck", tmp_path / "eng", timing_cache=Path("h100-sxm-sm90.cache"))
    assert shlex.split(r.stdout.strip()) == expected
    assert str(tmp_path / "cache" / "timing-cache" / "h100-sxm-sm90.cache") in r.stderr
    assert not (tmp_path / "eng").exists() and not (tmp_path / "cache").exists()


def test_container_dry_run_json(cli, tmp_path):
    recipe = container_recipe(tmp_path, "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3@" + DIGEST)
    r = cli("engine", str(recipe), "--gpu", "h100", "--checkpoint", str(tmp_path / "ck"), "--out",
            str(tmp_path / "eng"), "--dry-run", "--json", env={"PATH": path_with(tmp_path, "podman")})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["executor"] == "container" and out["fake"] is False
    argv = out["commands"][0]
    assert argv[:2] == ["podman", "run"] and "nvidia.com/gpu=all" in argv
    assert argv[argv.index("--user") + 1] == f"{os.getuid()}:{os.getgid()}"
    assert "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3@" + DIGEST in argv
    assert out["display"][0] == shlex.join(argv)


def test_missing_container_runtime_exit_4(cli, tmp_path):
    recipe = container_recipe(tmp_path, "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3@" + DIGEST)
    write_checkpoint(tmp_path / "ck", plan_for("llama-3.1-8b-fp8.yaml", "h100"))
    r = cli("engine", str(recipe), "--gpu", "h100", "--checkpoint", str(tmp_path / "ck"), "--out",
            str(tmp_path / "eng"), env={"PATH": path_with(tmp_path)})
    assert r.returncode == 4
    assert "no container runtime: docker or podman is not on PATH" in r.stderr
    assert not (tmp_path / "eng").exists()


def test_tag_only_image_pinned_by_the_lockfile(cli, tmp_path):
    recipe = container_recipe(tmp_path, "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3")
    args = ("engine", str(recipe), "--gpu", "h100", "--checkpoint", "ck", "--out", "eng", "--dry-run")
    env = {"PATH": path_with(tmp_path, "docker")}
    r = cli(*args, env=env)
    assert r.returncode == 4 and "is not pinned: it needs a sha256 digest" in r.stderr
    (tmp_path / "recipe.lock.json").write_text(json.dumps(  # the recipe's lockfile, as for compile and lock
        {"images": {"nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3": DIGEST}}))
    r = cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert "tritonserver:26.03-trtllm-python-py3@" + DIGEST in r.stdout


def test_fake_executor_needs_the_opt_in(cli, tmp_path):
    write_checkpoint(tmp_path / "ck", plan_for("llama-3.1-8b-fp8.yaml", "h100"))
    args = ("engine", RECIPE, "--gpu", "h100", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "eng"),
            "--executor", "fake", "--cache-dir", str(tmp_path / "cache"))
    r = cli(*args, env={"TRTBUILD_ALLOW_FAKE_TOOLCHAIN": ""})
    assert r.returncode == 2 and "TRTBUILD_ALLOW_FAKE_TOOLCHAIN=1" in r.stderr
    r = cli(*args, "--json", env={"TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["fake"] is True and out["out"] == str(tmp_path / "eng")
    assert json.loads((tmp_path / "eng" / "trtbuild-engine.json").read_text())["fake"] is True
    r = cli(*args, env={"TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1"})
    assert r.returncode == 0 and r.stdout.startswith("FAKE engine (not servable)")


def test_checkpoint_mismatch_exit_4(cli, tmp_path):
    write_checkpoint(tmp_path / "ck", plan_for("llama-3.1-8b-fp8.yaml", "h100"), dtype="float16")
    r = cli("engine", RECIPE, "--gpu", "h100", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "eng"),
            "--executor", "fake", env={"TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1"})
    assert r.returncode == 4
    assert f"{tmp_path / 'ck' / 'config.json'}: the checkpoint does not match the plan" in r.stderr
    assert "dtype is 'float16', the plan has 'bfloat16'" in r.stderr
    assert not (tmp_path / "eng").exists()


def test_cpu_target_and_infeasible_plan(cli, tmp_path):
    r = cli("engine", RECIPE, "--gpu", "cpu", "--checkpoint", "ck", "--out", "eng", "--dry-run")
    assert r.returncode == 2 and "CPU reference" in r.stderr
    r = cli("engine", RECIPE, "--gpu", "a10g", "--checkpoint", "ck", "--out", "eng", "--dry-run")
    assert r.returncode == 3 and "infeasible" in r.stderr and "quant.sm" in r.stderr


def test_required_arguments(cli):
    r = cli("engine", RECIPE, "--gpu", "h100")
    assert r.returncode == 2 and "--checkpoint" in r.stderr
