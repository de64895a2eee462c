"""One key per stage (issue 12 item 3): `trtbuild plan --status`, the compile report, `status`, the cache
and the manifests written into the artifact all show the same key for the same stage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_plan_status_report_cache_and_manifests_show_one_key(cli, project: Path, env: dict[str, str]) -> None:
    def run(*args: str) -> dict:
        r = cli(*args, "--json", cwd=project, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout)

    planned = run("plan", "recipe.yaml", "--gpu", "h100", "--status", "--executor", "fake")
    plan_keys = {st["name"]: st["key"] for st in planned["plans"][0]["stages"]}
    bare = run("plan", "recipe.yaml", "--gpu", "h100")
    assert {st["key"] for st in bare["plans"][0]["stages"]} == {None}  # a bare plan has no second key

    report = run("compile", "recipe.yaml", "--gpu", "h100", "--executor", "fake", "--out", "out")
    report_keys = {s["stage"]: s["key"] for s in report["targets"][0]["stages"]}
    status_keys = run("status", "recipe.yaml", "--gpu", "h100", "--executor", "fake")["targets"][0]["keys"]
    cached = {e["stage"]: e["key"] for e in run("cache", "ls")["entries"]}
    art = project / "out" / "h100-sxm"
    repo_manifest = json.loads((art / "repository" / "trtbuild-repository.json").read_text())
    engine_manifest = json.loads((art / "engine" / "trtbuild-engine.json").read_text())

    assert set(plan_keys) == {"fetch", "checkpoint", "engine", "repository"}
    assert all(len(k) == 64 for k in plan_keys.values())
    assert plan_keys == report_keys == status_keys == cached
    assert repo_manifest["stage_key"] == plan_keys["repository"]
    assert engine_manifest["stage_key"] == plan_keys["engine"]
