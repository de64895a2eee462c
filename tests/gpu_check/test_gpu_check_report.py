"""The GPU check's report: pytest results read from real JUnit files, the loaded-config check against the
contract fixtures, and the JSON + markdown written under the output folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from trtbuild.contracts.trtllm import required_one_of, required_parameters
from trtbuild.gpu_check.environment import Check, Environment
from trtbuild.gpu_check.report import Report, Step, read_junit, write_report
from trtbuild.gpu_check.steps import engine_config_findings, loaded_parameters, run_pytest
from trtbuild.toolchain.detect import GpuInfo

TESTS = """\
import pytest

def test_ok():
    pass

def test_fails():
    assert 1 == 2, "one is not two"

def test_skipped():
    pytest.skip("needs a GPU")
"""


def junit_of(tmp_path: Path, source: str) -> tuple[Path, int]:
    (tmp_path / "test_sample.py").write_text(source, encoding="utf-8")
    junit = tmp_path / "junit.xml"
    status = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                             str(tmp_path / "test_sample.py")], cwd=tmp_path, capture_output=True).returncode
    return junit, status


def test_junit_of_a_real_pytest_run(tmp_path: Path) -> None:
    junit, status = junit_of(tmp_path, TESTS)
    result = read_junit(junit, status)
    outcomes = {c.name.rsplit("::", 1)[-1]: c for c in result.cases}
    assert {n: c.outcome for n, c in outcomes.items()} == {"test_ok": "passed", "test_fails": "failed",
                                                            "test_skipped": "skipped"}
    assert "one is not two" in outcomes["test_fails"].message
    assert "needs a GPU" in outcomes["test_skipped"].message
    assert result.status == "failed" and result.summary == "1 passed, 1 failed, 1 skipped"


def test_a_run_that_passes_nothing_is_not_green(tmp_path: Path) -> None:
    junit, status = junit_of(tmp_path, "import pytest\n\ndef test_a():\n    pytest.skip('no GPU')\n")
    assert status == 0 and read_junit(junit, status).status == "failed"
    assert read_junit(tmp_path / "absent.xml", 0).status == "failed"
    junit, status = junit_of(tmp_path, "def test_a():\n    pass\n")
    assert read_junit(junit, status).status == "passed"


def test_gpu_tests_may_not_skip(tmp_path: Path) -> None:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\ndef test_a():\n    pass\n\ndef test_b():\n    pytest.skip('no tritonserver')\n")
    lenient = run_pytest([str(tmp_path / "test_sample.py")], tmp_path / "a.xml", tmp_path / "a.log")
    strict = run_pytest([str(tmp_path / "test_sample.py")], tmp_path / "b.xml", tmp_path / "b.log", strict_skips=True)
    assert lenient.status == "passed" and strict.status == "failed"
    assert "skipped on the GPU machine" in strict.detail
    assert "test_sample.py" in Path(strict.log or "").read_text()


GOLDEN = Path(__file__).resolve().parents[1] / "repository" / "golden"
PARAMETER = re.compile(r'parameters \{ key: "([^"]+)" value \{ string_value: "([^"]*)" \} \}')


def full_parameters() -> dict[str, str]:
    """The parameters of a generated H100 engine repository's tensorrt_llm model (a golden file)."""
    text = (GOLDEN / "llama-3.1-8b-fp8--h100" / "models" / "tensorrt_llm" / "config.pbtxt").read_text()
    return dict(PARAMETER.findall(text))


def test_loaded_config_against_the_backend_contract() -> None:
    assert "tokenizer_dir" in required_parameters()
    assert engine_config_findings(full_parameters()) == []
    params = full_parameters()
    del params["tokenizer_dir"]
    params["batch_scheduler_policy"] = "static_batch"
    params["max_beam_width"] = "one"
    for group in required_one_of():
        for name in group:
            params[name] = ""
    findings = engine_config_findings(params)
    assert any("'tokenizer_dir'" in f and "Cannot find parameter" in f for f in findings)
    assert any("batch_scheduler_policy='static_batch'" in f for f in findings)
    assert any(f.startswith("none of ") for f in findings)
    assert any("max_beam_width='one' does not parse as int32_t" in f for f in findings), findings


def test_parameters_as_triton_returns_them() -> None:
    config = {"name": "tensorrt_llm", "backend": "tensorrtllm",
              "parameters": {"tokenizer_dir": {"string_value": ""}, "gpt_model_type": {"string_value": "inflight_fused_batching"}}}
    assert loaded_parameters(config) == {"tokenizer_dir": "", "gpt_model_type": "inflight_fused_batching"}
    assert loaded_parameters({}) == {}


def test_report_files(tmp_path: Path) -> None:
    env = Environment(checks=(Check(id="nvidia-smi", label="NVIDIA GPU", ok=True, found="GPU 0: H100 | SXM"),
                              Check(id="tritonserver", label="tritonserver", ok=False, missing="not found")),
                      gpus=(GpuInfo(index=0, name="NVIDIA H100 80GB HBM3", sm=90, memory_bytes=2**36),),
                      gpu_key="h100-sxm", trtllm_version="1.2.0")
    steps = (Step(name="compile", backend="engine/stream", status="passed", seconds=12.5, log="/x/compile.log"),
             Step(name="lint", backend="engine/stream", status="failed", detail="trtllm.required: tokenizer_dir"),
             Step(name="client-contract suite", backend="llmapi/stream", status="passed",
                  data={"deselected": {"tests/x.py::test_pre": "the repository has no preprocessing model"}}))
    report = Report(started="s", finished="f", gpu="h100-sxm", model="tiny", backends=("engine",), environment=env,
                    steps=steps)
    json_path, md_path = write_report(report, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert data["ok"] is False and data["versions"]["tensorrt_llm"] == "1.2.0"
    assert data["versions"]["gpus"] == [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "sm": 90, "memory_bytes": 2**36}]
    assert data["environment"]["gpus"][0]["sm"] == 90
    assert [m["id"] for m in data["missing"]] == ["tritonserver"]
    assert [s["status"] for s in data["steps"]] == ["passed", "failed", "passed"]
    md = md_path.read_text()
    assert md.startswith("# trtbuild GPU check: FAILED")
    assert "| tritonserver | engine, llmapi | MISSING | not found |" in md
    assert "GPU 0: H100 \\| SXM" in md and "| engine/stream | lint | FAILED |" in md and "`/x/compile.log`" in md
    assert "* `tests/x.py::test_pre` (llmapi/stream / client-contract suite): the repository has no" in md
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.json", "report.md"]
    complete = report.model_copy(update={"environment": Environment(checks=env.checks[:1]),
                                         "steps": steps[:1]})
    assert complete.ok
    assert not complete.model_copy(update={"steps": ()}).ok
