"""Issue 14, item 1: the recipe says which GPUs it is built for (`gpus:`); every command follows it;
`targets:` only overrides, and an override for a GPU the recipe does not build is an error."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.recipes import RECIPES, with_absolute_config, write_data

DEMO = RECIPES / "demo" / "recipe.yaml"


def test_plan_without_gpu_plans_every_listed_gpu(cli) -> None:
    r = cli("plan", str(RECIPES / "llama-3.1-8b-fp8.yaml"), "--json")
    assert r.returncode == 0, r.stderr
    assert [p["target"]["key"] for p in json.loads(r.stdout)["plans"]] == ["h100-sxm", "a100-80gb", "l4"]


def test_status_without_gpu_lists_every_listed_gpu(cli, tmp_path: Path) -> None:
    r = cli("status", str(RECIPES / "llama-3.1-8b-fp8.yaml"), "--json",
            env={"TRTBUILD_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    assert [t["gpu"] for t in json.loads(r.stdout)["targets"]] == ["h100-sxm", "a100-80gb", "l4"]


def test_compile_demo_without_trtllm_build_says_how_to_proceed(cli, tmp_path: Path) -> None:
    """`compile recipes/demo/recipe.yaml` as the README's reader types it, on a machine without TensorRT-LLM:
    nothing is built, and the message names --gpu cpu."""
    out = tmp_path / "out"
    r = cli("compile", str(DEMO), "--out", str(out), env={"PATH": "/usr/bin:/bin",
                                                        "TRTBUILD_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 4, r.stderr
    assert "h100-sxm needs TensorRT-LLM" in r.stderr and f"trtbuild compile {DEMO} --gpu cpu" in r.stderr
    assert "nothing was built" in r.stderr and not out.exists()


def test_override_for_a_gpu_not_listed_is_an_error(cli, tmp_path: Path) -> None:
    data = with_absolute_config(yaml.safe_load((RECIPES / "mistral-7b-int4-awq.yaml").read_text()), RECIPES)
    data["gpus"] = ["a100"]  # the l4 override stays
    r = cli("validate", str(write_data(tmp_path / "r.yaml", data)))
    assert r.returncode == 3
    assert "targets.l4: override for L4, which is not in gpus: [a100]; add 'l4' to gpus:" in r.stderr


def test_gpus_names_are_checked_with_positions(cli, tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("recipe: 1\nname: x\nmodel: {source: m}\ngpus: [h100, h10, H100 SXM]\n")
    r = cli("validate", str(p))
    assert r.returncode == 3
    assert f"{p}:4:14: gpus[1]: unknown GPU 'h10' (did you mean" in r.stderr
    assert "gpus[2]: \"H100 SXM\" and 'h100' both name H100 SXM" in r.stderr


def test_lock_without_tensorrt_llm_locks_the_model(cli, tmp_path: Path) -> None:
    """`lock` used to fail on the demo recipe (its h100 target needs trtllm-build)."""
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    data = yaml.safe_load(DEMO.read_text())
    data["model"]["config"] = str(RECIPES / "models" / "smollm2-135m-instruct" / "config.json")
    recipe = write_data(tmp_path / "demo.yaml", data)
    r = cli("lock", str(recipe), env={"PATH": "/usr/bin:/bin", "TRTBUILD_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    lock = json.loads((tmp_path / "demo.lock.json").read_text())
    assert "config.json" in lock["model"]["files"] and lock["toolchain"] == {}
    assert "toolchain not recorded for h100-sxm" in r.stderr
