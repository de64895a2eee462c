"""Issue 14, item 9: `trtbuild init SOURCE --gpu ...` writes a recipe (and the model's config.json) that plans
feasibly on each GPU, choosing quantization and TP the way the planner's suggestions do."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.conftest import TOKEN
from tests.cli.recipes import RECIPES

QWEN = "Qwen/Qwen2.5-7B-Instruct"
QWEN_COMMIT = "a09a35458c702b33eeacc393d103063234e8bc28"


def _plans(cli, recipe: Path, env: dict[str, str] | None = None) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    r = cli("plan", str(recipe), "--json", env=env or {})
    assert r.returncode in (0, 3), r.stderr
    return {p["target"]["key"]: p["feasible"] for p in json.loads(r.stdout)["plans"]}


def test_init_from_the_hub_writes_config_and_pins_the_commit(cli, tmp_path: Path, hub_env, fake_hub) -> None:
    r = cli("init", f"hf://{QWEN}", "--gpu", "h100", "--gpu", "l4", cwd=tmp_path, env=hub_env)
    assert r.returncode == 0, r.stderr
    recipe = tmp_path / "qwen2.5-7b-instruct.yaml"
    data = yaml.safe_load(recipe.read_text())
    assert data["model"]["source"] == f"hf://{QWEN}@{QWEN_COMMIT}"  # main resolved and pinned
    config = tmp_path / data["model"]["config"]
    assert config.read_bytes() == (RECIPES / "models" / "qwen2.5-7b-instruct" / "config.json").read_bytes()
    assert data["gpus"] == ["h100-sxm", "l4"]
    # Planning the written recipe needs no network at all.
    assert _plans(cli, recipe, {"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}) == {
        "h100-sxm": True, "l4": True}
    assert TOKEN not in recipe.read_text() + r.stdout + r.stderr


def test_init_chooses_tp_and_quantization_as_the_planner_suggests(cli, tmp_path: Path) -> None:
    """Llama-3.1-70B in bf16 fits no single GPU: init follows the planner's first suggestion per GPU."""
    config = RECIPES / "models" / "llama-3.1-70b-instruct" / "config.json"
    r = cli("init", "hf://meta-llama/Llama-3.1-70B-Instruct", "--config", str(config), "--gpu", "h100",
            "--gpu", "a100", "--gpu", "l4", "--json", cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    recipe = Path(out["recipe"])
    data = yaml.safe_load(recipe.read_text())
    assert _plans(cli, recipe) == {"h100-sxm": True, "a100-80gb": True, "l4": True}
    # Each GPU's choice is what the planner printed first for the unmodified recipe on that GPU.
    assert out["choices"]["l4"] == {"parallelism.tp": 8}
    assert data["targets"]["l4"] == {"parallelism": {"tp": 8}}
    assert "infeasible" in out and out["infeasible"] == {}


def test_init_from_a_local_model_directory(cli, tmp_path: Path) -> None:
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "models" / "tiny")
    r = cli("init", "models/tiny", "--gpu", "cpu", "--gpu", "h100", "--out", "recipes/tiny.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    recipe = tmp_path / "recipes" / "tiny.yaml"
    assert yaml.safe_load(recipe.read_text())["model"]["source"] == "../models/tiny"
    assert _plans(cli, recipe) == {"cpu": True, "h100-sxm": True}
    again = cli("init", "models/tiny", "--gpu", "cpu", "--out", "recipes/tiny.yaml", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr  # never overwrites silently


def test_init_offline_without_config_says_what_to_give(cli, tmp_path: Path) -> None:
    r = cli("init", f"hf://{QWEN}", "--gpu", "h100", cwd=tmp_path,
            env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty")})
    assert r.returncode == 4 and "--config" in r.stderr and "Traceback" not in r.stderr
    assert not list(tmp_path.glob("*.yaml"))
