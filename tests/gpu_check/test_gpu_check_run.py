"""`python -m trtbuild.gpu_check` on this machine (no GPU): refuses cleanly with exit 4 and what is missing;
argument errors exit 2; with an environment that claims to be complete, every step that fails here (no
trtllm-build, a tritonserver that cannot start) is reported as failed, never as a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from trtbuild.gpu_check.environment import Check, Environment
from trtbuild.gpu_check.run import main

from .doubles import script, trtllm_build

ROOT = Path(__file__).resolve().parents[2]


def gpu_check(*args: str, path: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TRITONSERVER"}
    env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "trtbuild.gpu_check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_refuses_without_a_gpu_and_lists_what_is_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    trtllm_build(bin_dir, "1.2.0")  # found; nvidia-smi and tritonserver are not on this PATH
    out = tmp_path / "out"
    proc = gpu_check("--out", str(out), "--json", path=str(bin_dir))
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "the GPU check cannot run here; missing:" in proc.stderr
    assert "nvidia-smi is not on PATH" in proc.stderr and "NOT RUN (exit 4)" in proc.stderr
    assert "ok      trtllm-build" in proc.stderr and "TensorRT-LLM 1.2.x: 1.2.0" in proc.stderr
    data = json.loads(proc.stdout)
    assert data == json.loads((out / "report.json").read_text())
    missing = {m["id"] for m in data["missing"]}
    assert {"nvidia-smi", "gpu-target"} <= missing and "trtllm-build" not in missing
    if not Path("/opt/tritonserver/bin/tritonserver").exists():
        assert {"tritonserver", "python-backend"} <= missing
        assert "tritonserver not found" in proc.stderr
    assert data["ok"] is False and [s["status"] for s in data["steps"]] == ["skipped", "skipped"]
    assert data["versions"]["tensorrt_llm"] == "1.2.0"
    assert "# trtbuild GPU check: FAILED" in (out / "report.md").read_text()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = gpu_check("--backend", "tensorrt", "--out", str(tmp_path), path=os.environ["PATH"])
    assert proc.returncode == 2 and "invalid choice: 'tensorrt'" in proc.stderr
    proc = gpu_check("--gpu", "h1000", "--out", str(tmp_path), path=os.environ["PATH"])
    assert proc.returncode == 2 and "unknown GPU 'h1000'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "report.json").exists()
    proc = gpu_check("--help", path=os.environ["PATH"])
    assert proc.returncode == 0 and "--contract" not in proc.stdout and "--backend" in proc.stdout


def environment(*missing: str, tritonserver: str = "/opt/tritonserver/bin/tritonserver") -> Environment:
    ids = (("nvidia-smi", ("engine", "llmapi")), ("tensorrt_llm", ("engine", "llmapi")),
           ("tensorrtllm-backend", ("engine",)), ("python-backend", ("engine", "llmapi")))
    checks = tuple(Check(id=i, label=i, ok=i not in missing, missing="absent" if i in missing else "",
                         found="" if i in missing else "here", needed_by=by) for i, by in ids)
    return Environment(checks=checks, gpu_key="h100-sxm", trtllm_version="1.2.0", tritonserver=tritonserver)


def test_check_env_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def probe(**_: object) -> Environment:
        return environment()

    assert main(["--check-env", "--out", str(tmp_path / "a")], probe=probe) == 0
    data = json.loads((tmp_path / "a" / "report.json").read_text())
    assert "environment complete" in data["message"] and data["steps"] == []

    def partial(**_: object) -> Environment:
        return environment("tensorrtllm-backend")

    assert main(["--check-env", "--out", str(tmp_path / "b")], probe=partial) == 4
    assert "pass --backend llmapi" in capsys.readouterr().err
    assert main(["--check-env", "--backend", "llmapi", "--out", str(tmp_path / "c")], probe=partial) == 0


def test_failures_on_this_machine_are_reported_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A complete environment is claimed; here the real trtllm-build is absent and the 'tritonserver' cannot
    start: compile and serve fail as steps, the LLM-API repository still renders and lints, the gpu tests
    skip (which fails the check), and no server is left running."""
    server = script(tmp_path / "triton" / "bin", "tritonserver",
                    'echo "error: creating server: Internal - failed to load all models" >&2\nexit 1')

    def probe(**_: object) -> Environment:
        return environment(tritonserver=str(server))

    out = tmp_path / "out"
    status = main(["--model", "tiny", "--only-streaming", "--out", str(out), "--load-timeout", "60"], probe=probe)
    assert status == 4
    err = capsys.readouterr().err
    assert "Traceback" not in err and "FAILED (exit 4)" in err
    steps = {(s["backend"], s["name"]): s for s in json.loads((out / "report.json").read_text())["steps"]}
    assert steps[("all", "demo model")]["status"] == "passed"
    compile_step = steps[("engine/stream", "compile (real trtllm-build)")]
    assert compile_step["status"] == "failed"
    assert compile_step["detail"].startswith("trtbuild compile exit 4: error: engine: TensorRT-LLM is not installed")
    assert Path(compile_step["log"]).is_file()
    assert steps[("engine/stream", "serve + client contract")]["status"] == "skipped"
    assert steps[("llmapi/stream", "render LLM-API repository")]["status"] == "passed"
    assert steps[("llmapi/stream", "lint")]["status"] == "passed", steps[("llmapi/stream", "lint")]
    serve = steps[("llmapi/stream", "serve (real tritonserver)")]
    assert serve["status"] == "failed" and "failed to load all models" in serve["detail"]
    assert steps[("llmapi/stream", "client-contract suite")]["status"] == "skipped"
    gpu = steps[("all", "gpu-marked tests")]
    assert gpu["status"] == "failed" and gpu["pytest"]["cases"]
    assert all(c["outcome"] == "skipped" for c in gpu["pytest"]["cases"])
    md = (out / "report.md").read_text()
    assert "## Tests not passed" in md and "needs TensorRT-LLM" in md


def test_an_unexpected_error_in_a_step_is_a_failed_step() -> None:
    from trtbuild.errors import RepositoryError
    from trtbuild.gpu_check.steps import timed

    def broken() -> tuple[str, str, dict[str, object]]:
        raise RepositoryError("no trtbuild-repository.json in /x")

    step = timed("serve (real tritonserver)", "engine/stream", broken)
    assert step.status == "failed" and step.detail == "RepositoryError: repository: no trtbuild-repository.json in /x"


def test_every_gpu_marked_test_file_is_run_by_the_check() -> None:
    from trtbuild.gpu_check.run import GPU_TESTS

    mark = re.compile(r"^(pytestmark\s*=.*\bpytest\.mark\.gpu\b|\s*@pytest\.mark\.gpu\b)", re.MULTILINE)
    marked = {str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
              if mark.search(p.read_text(encoding="utf-8"))}
    listed = {t for files in GPU_TESTS.values() for t in files}
    assert marked == listed


def test_contract_suite_arguments_select_its_tests(tmp_path: Path) -> None:
    """The options the check passes exist in the suite, and each deselected test id names real tests."""
    from trtbuild.gpu_check.run import CONTRACT_SUITE, MODEL_TESTS

    args = [CONTRACT_SUITE, "--contract-url=grpc=127.0.0.1:1,http=127.0.0.1:2",
            f"--contract-tokenizer={tmp_path}", "--collect-only", "-q", "-p", "no:cacheprovider"]
    everything = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
    assert everything.returncode == 0, everything.stdout + everything.stderr
    deselect = [f"--deselect={t}" for t in MODEL_TESTS]
    fewer = subprocess.run([sys.executable, "-m", "pytest", *args, *deselect], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert fewer.returncode == 0, fewer.stdout + fewer.stderr
    ids = [ln for ln in everything.stdout.splitlines() if "::" in ln]
    for test in MODEL_TESTS:
        assert any(i.startswith(test) for i in ids), test
    assert f"{sum(1 for i in ids if any(i.startswith(t) for t in MODEL_TESTS))} deselected" in fewer.stdout
