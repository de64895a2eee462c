"""Issue 14, item 8: one name per thing — one stage key (the cache's) in plan, compile, report.json and
`cache ls`; one `plan --json` shape; one lockfile name (`<recipe>.lock.json`, engine included)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.recipes import RECIPES


def test_plan_status_compile_report_and_cache_show_the_same_keys(cli, tmp_path: Path) -> None:
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    (tmp_path / "r.yaml").write_text("recipe: 1\nname: tiny\nmodel: {source: model}\ngpus: [cpu]\n"
                                     "build: {max_batch_size: 4, max_input_len: 64, max_seq_len: 128}\n")
    env = {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache")}
    before = json.loads(cli("plan", "r.yaml", "--status", "--json", cwd=tmp_path, env=env).stdout)["plans"][0]
    built = cli("compile", "r.yaml", "--out", "out", "--json", "--quiet", cwd=tmp_path, env=env)
    assert built.returncode == 0, built.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    compiled = {s["stage"]: s["key"] for s in report["targets"][0]["stages"]}
    planned = {s["name"]: s["key"] for s in before["stages"]}
    assert planned == compiled
    cached = {e["stage"]: e["key"] for e in json.loads(cli("cache", "ls", "--json", env=env).stdout)["entries"]}
    assert cached == compiled
    human = cli("plan", "r.yaml", "--status", cwd=tmp_path, env=env).stdout
    assert all(f"key {k[:12]}" in human for k in compiled.values())
    plain = cli("plan", "r.yaml", cwd=tmp_path, env=env).stdout
    assert "key " not in plain and "cache keys: `trtbuild plan --status`" in plain  # no second kind of key
    assert json.loads(cli("plan", "r.yaml", "--json", cwd=tmp_path, env=env).stdout)["plans"][0]["stages"][0][
        "key"] is None


def test_plan_json_has_one_shape(cli) -> None:
    one = json.loads(cli("plan", str(RECIPES / "mistral-7b-int4-awq.yaml"), "--gpu", "a100", "--json").stdout)
    two = json.loads(cli("plan", str(RECIPES / "mistral-7b-int4-awq.yaml"), "--json").stdout)
    assert set(one) == set(two) == {"plans", "feasible"}
    assert len(one["plans"]) == 1 and len(two["plans"]) == 2
    assert set(one["plans"][0]) == set(two["plans"][1])


def test_engine_reads_the_recipes_lockfile(cli, tmp_path: Path) -> None:
    """`engine` used to read trtbuild.lock.json while lock/compile wrote <recipe>.lock.json."""
    import yaml

    data = yaml.safe_load((RECIPES / "llama-3.1-8b-fp8.yaml").read_text())
    data["model"]["config"] = str(RECIPES / "models" / "llama-3.1-8b-instruct" / "config.json")
    data["toolchain"] = {"executor": "container", "image": "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3"}
    recipe = tmp_path / "llama.yaml"
    recipe.write_text(yaml.safe_dump(data))
    digest = "sha256:" + "a" * 64
    (tmp_path / "llama.lock.json").write_text(json.dumps(
        {"images": {"nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3": digest}}))
    r = cli("engine", str(recipe), "--gpu", "h100", "--checkpoint", "ck", "--out", "eng", "--dry-run", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"tritonserver:26.03-trtllm-python-py3@{digest}" in r.stdout
