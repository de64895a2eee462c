"""`trtbuild compile` end to end (fake toolchain for the engine step): caching by content, reasons,
several GPUs sharing a checkpoint, status, lock, publish to a real registry, SIGKILL and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

COMPILE = ("compile", "recipe.yaml", "--gpu", "h100", "--executor", "fake", "--out", "out", "--json")


def _compile(cli, project: Path, env: dict[str, str], *extra: str) -> dict:
    r = cli(*COMPILE, *extra, cwd=project, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _statuses(report: dict, target: int = 0) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in report["targets"][target]["stages"]}


def test_compile_then_everything_cached_and_reasons_on_change(cli, project: Path, env: dict[str, str]) -> None:
    first = _compile(cli, project, env)
    assert _statuses(first) == {"fetch": "built", "checkpoint": "built", "engine": "built", "repository": "built"}
    t = first["targets"][0]
    for s in t["stages"]:
        assert s["wall_s"] >= 0 and s["artifact_bytes"] > 0 and s["peak_rss_bytes"] > 0 and len(s["key"]) == 64
    assert t["memory_prediction"]["kv_bytes_per_token"] > 0
    art = project / "out" / "h100-sxm"
    assert (art / "repository" / "models" / "ensemble" / "config.pbtxt").is_file()
    assert (art / "engine" / "config.json").is_file() and (art / "engine" / "rank0.engine").is_file()
    meta = json.loads((art / "trtbuild-artifact.json").read_text())
    assert meta["fingerprint"] == t["fingerprint"] and meta["sm"] == 90
    assert (project / "out" / "report.json").is_file() and (project / "out" / "h100-sxm.report.json").is_file()
    # The engine is referenced relative to the repository (the artifact can move), and lint finds it.
    trt = (art / "repository" / "models" / "tensorrt_llm" / "config.pbtxt").read_text()
    assert 'key: "gpt_model_path" value { string_value: "../engine" }' in trt
    lint = cli("lint", str(art / "repository"), "--json", cwd=project, env=env)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    second = _compile(cli, project, env)
    assert set(_statuses(second).values()) == {"cached"}
    assert second["targets"][0]["fingerprint"] == t["fingerprint"]

    recipe = project / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("samples: 8", "samples: 4"))
    third = _compile(cli, project, env)
    assert _statuses(third) == {"fetch": "cached", "checkpoint": "built", "engine": "built", "repository": "built"}
    ck = next(s for s in third["targets"][0]["stages"] if s["stage"] == "checkpoint")
    assert "quantization.calibration.samples 8 → 4" in ck["reasons"]

    recipe.write_text(recipe.read_text() + "runtime: {scheduler_policy: max_utilization}\n")
    fourth = _compile(cli, project, env)
    assert _statuses(fourth) == {"fetch": "cached", "checkpoint": "cached", "engine": "cached",
                                 "repository": "built"}
    rp = next(s for s in fourth["targets"][0]["stages"] if s["stage"] == "repository")
    assert "runtime.scheduler_policy guaranteed_no_evict → max_utilization" in rp["reasons"]


def test_targets_share_the_checkpoint(cli, project: Path, env: dict[str, str]) -> None:
    r = cli("compile", "recipe.yaml", "--gpu", "h100", "--gpu", "h200", "--executor", "fake", "--out", "out",
            "--json", cwd=project, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads(r.stdout)
    h100, h200 = (_statuses(report, i) for i in (0, 1))
    assert h100["checkpoint"] == "built" and h200["checkpoint"] == "cached"   # same precision and parallelism
    assert h200["engine"] == "built"                                           # one engine per GPU
    keys = [{s["stage"]: s["key"] for s in t["stages"]} for t in report["targets"]]
    assert keys[0]["checkpoint"] == keys[1]["checkpoint"] and keys[0]["engine"] != keys[1]["engine"]


def test_infeasible_target_builds_nothing(cli, project: Path, env: dict[str, str]) -> None:
    r = cli("compile", "recipe.yaml", "--gpu", "h100", "--gpu", "a100", "--executor", "fake", "--out", "out",
            cwd=project, env=env)
    assert r.returncode == 3 and "quant.sm" in r.stderr
    assert not (project / "out").exists() and not (Path(env["TRTBUILD_CACHE_DIR"]) / "store").exists()


def test_status_fresh_stale_missing_and_matrix(cli, project: Path, env: dict[str, str]) -> None:
    args = ("status", "recipe.yaml", "--gpu", "h100", "--executor", "fake")
    missing = json.loads(cli(*args, "--json", cwd=project, env=env).stdout)["targets"][0]
    assert missing["state"] == "missing"
    matrix = json.loads(cli(*args, "--github-matrix", cwd=project, env=env).stdout)
    assert matrix == {"include": [{"recipe": "recipe.yaml", "gpu": "h100-sxm"}]}
    _compile(cli, project, env)
    fresh = json.loads(cli(*args, "--json", cwd=project, env=env).stdout)["targets"][0]
    assert fresh["state"] == "fresh" and set(fresh["stages"].values()) == {"cached"}
    assert json.loads(cli(*args, "--github-matrix", cwd=project, env=env).stdout) == {"include": []}
    recipe = project / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("max_batch_size: 4", "max_batch_size: 8"))
    stale = json.loads(cli(*args, "--json", cwd=project, env=env).stdout)["targets"][0]
    assert stale["state"] == "stale"
    assert stale["stages"] == {"fetch": "cached", "checkpoint": "cached", "engine": "to build",
                               "repository": "to build"}
    assert "engine: build.max_batch_size 4 → 8" in stale["reasons"]


def test_lock_is_honoured(cli, project: Path, env: dict[str, str], tmp_path: Path) -> None:
    r = cli("lock", "recipe.yaml", "--gpu", "h100", "--executor", "fake", cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    lock = json.loads((project / "recipe.lock.json").read_text())
    assert "model.safetensors" in lock["model"]["files"] and lock["calibration"]["source"] == "builtin"
    # A changed model file is refused before anything is built.
    model = tmp_path / "model-copy"
    subprocess.run(["cp", "-rL", str(project / "model"), str(model)], check=True)
    (project / "model").unlink()
    (project / "model").symlink_to(model, target_is_directory=True)
    with open(model / "generation_config.json", "a") as f:
        f.write("\n")
    r = cli(*COMPILE, cwd=project, env=env)
    assert r.returncode == 4 and "differ from the lockfile: generation_config.json" in r.stderr


def test_publish_skip_published_and_pull(cli, project: Path, env: dict[str, str], registry, tmp_path: Path) -> None:
    ref = registry.ref("models/tiny")
    report = _compile(cli, project, env, "--publish", ref, "--plain-http")
    pinned = report["targets"][0]["published"][0]
    fp = report["targets"][0]["fingerprint"]
    assert "@sha256:" in pinned
    assert set(registry.tags("models/tiny")) >= {"tiny-h100-sxm", f"fp-{fp}"[:128]} or any(
        t.startswith("fp-") for t in registry.tags("models/tiny"))
    again = cli(*COMPILE, "--publish", ref, "--plain-http", "--skip-published", cwd=project, env=env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["skipped"][0]["fingerprint"] == fp
    status = json.loads(cli("status", "recipe.yaml", "--gpu", "h100", "--executor", "fake", "--registry", ref,
                            "--plain-http", "--json", cwd=project, env=env).stdout)
    assert status["targets"][0]["state"] == "fresh"
    dest = tmp_path / "pulled"
    r = cli("pull", pinned, str(dest), "--plain-http", cwd=project, env=env)
    assert r.returncode == 0, r.stderr
    assert (dest / "repository" / "models" / "ensemble" / "config.pbtxt").read_bytes() == \
        (project / "out" / "h100-sxm" / "repository" / "models" / "ensemble" / "config.pbtxt").read_bytes()


@pytest.mark.parametrize("delay", [1.0, 4.0, 8.0])
def test_sigkill_then_rerun_completes_and_cache_verifies(cli, project: Path, env: dict[str, str],
                                                          delay: float) -> None:
    full_env = {**os.environ, **env}
    proc = subprocess.Popen([sys.executable, "-m", "trtbuild", *COMPILE], cwd=project, env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(delay)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    verify = cli("cache", "verify", "--json", cwd=project, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    report = _compile(cli, project, env)
    assert all(s["status"] in ("cached", "built") for s in report["targets"][0]["stages"])
    assert (project / "out" / "h100-sxm" / "repository" / "models" / "ensemble" / "config.pbtxt").is_file()
    assert set(_statuses(_compile(cli, project, env)).values()) == {"cached"}
    assert cli("cache", "verify", cwd=project, env=env).returncode == 0
