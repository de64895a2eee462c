"""Issue 14, items 1 and 3: `lock` pins the toolchain so that `status` on a CPU runner keys the engine stage
(not `unknown`), and `compile` refuses a toolchain that differs from the lock."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.recipes import RECIPES, with_absolute_config, write_data


def _recipe(tmp_path: Path, image: str) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    data = {"recipe": 1, "name": "tiny", "model": {"source": "model"}, "gpus": ["h100"],
            "build": {"max_batch_size": 4, "max_input_len": 64, "max_seq_len": 128},
            "toolchain": {"executor": "container", "image": image}}
    return write_data(tmp_path / "tiny.yaml", data)


def test_lock_resolves_the_image_tag_and_status_keys_the_engine_from_it(cli, registry, tmp_path: Path) -> None:
    art = tmp_path / "image"
    art.mkdir()
    (art / "trtbuild-artifact.json").write_text("{}")
    pushed = cli("publish", str(art), registry.ref("nvidia/tritonserver:26.03-trtllm-python-py3"), "--plain-http",
                 "--json", "--no-fingerprint-tag", "--quiet")
    assert pushed.returncode == 0, pushed.stderr
    digest = json.loads(pushed.stdout)["digest"]
    image = f"{registry.host}/nvidia/tritonserver:26.03-trtllm-python-py3"
    recipe = _recipe(tmp_path, image)
    env = {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}  # no docker, no trtllm-build
    r = cli("lock", str(recipe), "--plain-http", env=env)
    assert r.returncode == 0, r.stderr
    lock = json.loads((tmp_path / "tiny.lock.json").read_text())
    assert lock["images"] == {image: digest}
    assert lock["toolchain"] == {"executor": "container", "image": f"{image}@{digest}"}
    status = json.loads(cli("status", str(recipe), "--json", env=env).stdout)["targets"][0]
    assert status["state"] == "missing", status  # keyed, not unknown
    assert set(status["keys"]) == {"fetch", "checkpoint", "engine", "repository"}


def test_compile_refuses_a_toolchain_that_differs_from_the_lock(cli, tmp_path: Path) -> None:
    data = with_absolute_config(yaml.safe_load((RECIPES / "demo" / "recipe.yaml").read_text()), RECIPES / "demo")
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    data["model"] = {"source": str(tmp_path / "model")}
    recipe = write_data(tmp_path / "demo.yaml", data)
    env = {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache"), "TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1"}
    assert cli("lock", str(recipe), "--executor", "fake", env=env).returncode == 0
    lock_path = tmp_path / "demo.lock.json"
    lock = json.loads(lock_path.read_text())
    lock["toolchain"]["tensorrt_llm"] = "1.2.0"  # locked elsewhere with another TensorRT-LLM
    lock_path.write_text(json.dumps(lock))
    r = cli("compile", str(recipe), "--gpu", "h100", "--executor", "fake", "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 4, r.stderr
    assert "differs from the lockfile" in r.stderr and "tensorrt_llm=1.2.0" in r.stderr
