"""Issue 14, item 3: examples/ci/github-actions.yml works as shipped.

* it is a valid GitHub workflow (SchemaStore's workflow schema, vendored in check-jsonschema: offline);
* the build job's runner comes from a label map keyed by GPU key, never from the GPU key itself, and every
  GPU a shipped recipe names has labels; no CPU torch wheel is installed on the GPU runner; the artifact is
  pulled back by digest;
* its status step, run as written (bash, jq) on the repository's recipes with their lockfiles (made by
  `trtbuild lock` against a fake Hub and a recorded toolchain) and a real registry, keys every target (no
  `unknown`), and a recipe × GPU that cannot be built is left out of the matrix without failing the job.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.recipes import RECIPES, ROOT, with_absolute_config, write_data
from trtbuild.catalog.gpus import find_gpu

WORKFLOW = ROOT / "examples" / "ci" / "github-actions.yml"


def _workflow() -> dict[str, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def _step(job: str, step_id: str) -> dict[str, Any]:
    return next(s for s in _workflow()["jobs"][job]["steps"] if s.get("id") == step_id or s.get("name") == step_id)


def test_workflow_is_valid_against_the_github_workflow_schema() -> None:
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                        str(WORKFLOW)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_runners_come_from_labels_not_gpu_names() -> None:
    wf = _workflow()
    build = wf["jobs"]["build"]
    assert build["runs-on"] == "${{ matrix.runner }}"
    labels = json.loads(wf["env"]["RUNNER_LABELS"])
    for recipe in sorted(RECIPES.glob("*.yaml")):
        for gpu in yaml.safe_load(recipe.read_text())["gpus"]:
            key = find_gpu(gpu).key  # type: ignore[union-attr]
            assert key in labels, f"{recipe.name} builds for {key}, which has no runner labels"
            assert key not in labels[key], "a runner label must not be the GPU key itself"


def test_gpu_runner_installs_no_cpu_torch_and_pulls_by_digest() -> None:
    text = WORKFLOW.read_text()
    assert "whl/cpu" not in text and "--index-url" not in text
    steps = " ".join(s.get("run", "") for s in _workflow()["jobs"]["build"]["steps"])
    assert "--publish" in steps and "--skip-published" in steps
    assert 'trtbuild pull "$PINNED"' in steps and '["pinned"]' in steps  # oci://host/ns/name@sha256:...


@pytest.fixture
def ci_repo(tmp_path: Path, cli, hub_env: dict[str, str]) -> Path:
    """A copy of the repository's recipes, each locked as the workflow asks (model from the Hub, toolchain
    recorded where it runs: here the fake toolchain), plus one recipe with a target that cannot be built."""
    repo = tmp_path / "repo"
    (repo / "recipes").mkdir(parents=True)
    for recipe in sorted(RECIPES.glob("*.yaml")):
        data = with_absolute_config(yaml.safe_load(recipe.read_text()), recipe.parent)
        write_data(repo / "recipes" / recipe.name, data)
    broken = with_absolute_config(yaml.safe_load((RECIPES / "llama-3.1-70b-fp8-tp4.yaml").read_text()), RECIPES)
    broken["name"] = "llama-3.1-70b-on-a100"
    broken["gpus"] = ["h100", "a100"]  # FP8 weights need SM >= 89: A100 cannot build it
    broken.pop("targets")
    write_data(repo / "recipes" / "zz-llama-70b-a100.yaml", broken)
    env = dict(hub_env, TRTBUILD_ALLOW_FAKE_TOOLCHAIN="1")
    for recipe in sorted((repo / "recipes").glob("*.yaml")):
        r = cli("lock", str(recipe), "--executor", "fake", env=env, cwd=repo)
        assert r.returncode == 0, r.stderr
        assert json.loads(recipe.with_name(recipe.stem + ".lock.json").read_text())["toolchain"]["executor"] == "fake"
    return repo


def _run_status_step(repo: Path, env: dict[str, str], registry: Any, tmp_path: Path) -> tuple[int, str, Path]:
    script = _step("plan", "status")["run"]
    # The only change: the test registry speaks plain HTTP on loopback (ghcr.io speaks TLS).
    script = script.replace('--registry "$TRTBUILD_REGISTRY"', '--registry "$TRTBUILD_REGISTRY" --plain-http')
    out, summary = tmp_path / "github_output", tmp_path / "step_summary"
    out.write_text("")
    summary.write_text("")
    full = dict(os.environ, **env)
    full.update({"PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
                 "GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary),
                 "TRTBUILD_REGISTRY": registry.ref("engines"),
                 "RUNNER_LABELS": _workflow()["env"]["RUNNER_LABELS"], "HF_HUB_OFFLINE": "1"})
    full.pop("TRTBUILD_ALLOW_FAKE_TOOLCHAIN", None)  # the CPU runner has no toolchain at all
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=repo, env=full, capture_output=True,
                       text=True, timeout=300)
    return r.returncode, r.stderr, out


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is missing (`make system-deps` installs it)")
def test_status_step_runs_on_the_repository_recipes(ci_repo: Path, hub_env: dict[str, str], registry,
                                                    tmp_path: Path, cli) -> None:
    rc, err, out = _run_status_step(ci_repo, hub_env, registry, tmp_path)
    assert rc == 0, err
    outputs = dict(line.split("=", 1) for line in out.read_text().splitlines())
    matrix = json.loads(outputs["matrix"])
    pairs = {(Path(e["recipe"]).name, e["gpu"]) for e in matrix["include"]}
    labels = json.loads(_workflow()["env"]["RUNNER_LABELS"])
    assert all(e["runner"] == labels[e["gpu"]] for e in matrix["include"])
    expected = set()
    for recipe in sorted(RECIPES.glob("*.yaml")):
        expected |= {(recipe.name, find_gpu(g).key) for g in yaml.safe_load(recipe.read_text())["gpus"]}  # type: ignore[union-attr]
    assert expected <= pairs  # every GPU a recipe names, nothing published yet
    assert ("zz-llama-70b-a100.yaml", "h100-sxm") in pairs
    assert ("zz-llama-70b-a100.yaml", "a100-80gb") not in pairs  # infeasible: excluded, the job goes on
    assert int(outputs["stale"]) == len(pairs)
    summary = (tmp_path / "step_summary").read_text()
    assert "Not built" in summary and "zz-llama-70b-a100.yaml --gpu a100-80gb" in summary
    # Every target is keyed from the lockfiles: nothing is `unknown` on a CPU runner.
    status = cli("status", *sorted(str(p) for p in (ci_repo / "recipes").glob("*.yaml")), "--json",
                 env=dict(hub_env, HF_HUB_OFFLINE="1"), cwd=ci_repo)
    states = {(Path(t["recipe"]).name, t["gpu"]): t["state"] for t in json.loads(status.stdout)["targets"]}
    assert "unknown" not in states.values(), states
    assert states[("zz-llama-70b-a100.yaml", "a100-80gb")] == "infeasible"
