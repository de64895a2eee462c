"""Toolchain detection: the probe runs for real in a child interpreter; the range and SM checks."""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trtbuild.errors import ToolchainError
from trtbuild.toolchain.detect import (
    SUPPORTED_TRTLLM,
    GpuInfo,
    ToolchainInfo,
    check_toolchain,
    detect_local_toolchain,
    info_from_probe,
    parse_version,
    run_probe,
    script_interpreter,
)

from .helpers import plan_for


@pytest.mark.parametrize(("version", "ok"), [
    ("1.2.0", True), ("1.2.1", True), ("1.2.1.post1", True), ("1.2.10", True),
    ("1.2.0rc5", False), ("1.3.0", False), ("1.3.0rc15", False), ("1.1.0", False), ("0.21.0", False),
])
def test_supported_range(version, ok):
    assert SUPPORTED_TRTLLM.contains(version) is ok


def test_parse_version():
    assert parse_version("1.2.1") == ((1, 2, 1), False)
    assert parse_version("1.2.0rc5") == ((1, 2, 0), True)
    assert parse_version("v1.2") == ((1, 2, 0), False)
    with pytest.raises(ValueError):
        parse_version("latest")


# ---------------------------------------------------------------------------- the probe, for real
def fake_site(tmp_path: Path, dists: dict[str, str]) -> Path:
    """A directory with *.dist-info metadata only, as pip would leave it."""
    site = tmp_path / "site"
    for name, version in dists.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return site


def fake_nvidia_smi(tmp_path: Path, rows: list[str], rc: int = 0) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    smi = bin_dir / "nvidia-smi"
    body = "".join(f"print({row!r})\n" for row in rows)
    smi.write_text(f"#!{sys.executable}\nimport sys\n"
                   f"assert sys.argv[1:] == ['--query-gpu=index,name,compute_cap', '--format=csv,noheader']\n"
                   f"{body}sys.exit({rc})\n")
    smi.chmod(0o755)
    return bin_dir


def probe(tmp_path: Path, *, path: str, site: Path | None = None, visible: str | None = None) -> dict:
    env = {"PATH": path, "PYTHONPATH": str(site or tmp_path / "empty")}
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    # -S: no site-packages, so neither this venv's pynvml nor its packages are seen; NVML is then "absent".
    return run_probe([sys.executable, "-S"], run=functools.partial(subprocess.run, env=env))


def test_probe_reads_versions_and_nvidia_smi(tmp_path):
    site = fake_site(tmp_path, {"tensorrt_llm": "1.2.1", "tensorrt": "10.14.1.48"})
    bin_dir = fake_nvidia_smi(tmp_path, ["0, NVIDIA H100 80GB HBM3, 9.0", "1, NVIDIA H100 80GB HBM3, 9.0"])
    data = probe(tmp_path, path=str(bin_dir), site=site)
    info = info_from_probe(data, executor="local")
    assert info.trtllm_version == "1.2.1" and info.tensorrt_version == "10.14.1.48"
    assert info.gpu_source == "nvidia-smi"
    assert info.gpus == (GpuInfo(0, "NVIDIA H100 80GB HBM3", 90), GpuInfo(1, "NVIDIA H100 80GB HBM3", 90))


def test_probe_honours_cuda_visible_devices(tmp_path):
    bin_dir = fake_nvidia_smi(tmp_path, ["0, NVIDIA A100-SXM4-80GB, 8.0", "1, NVIDIA H100 80GB HBM3, 9.0"])
    data = probe(tmp_path, path=str(bin_dir), visible="1")
    assert [(g["index"], g["sm"]) for g in data["gpus"]] == [(0, 90)]


def test_probe_without_tensorrt_llm_or_gpu(tmp_path):
    (tmp_path / "bin").mkdir()
    data = probe(tmp_path, path=str(tmp_path / "bin"))
    assert data["tensorrt_llm"] is None and data["gpus"] == []
    assert "nvidia-smi: not found on PATH" in data["gpu_error"]


def test_probe_with_failing_nvidia_smi(tmp_path):
    bin_dir = fake_nvidia_smi(tmp_path, [], rc=9)
    data = probe(tmp_path, path=str(bin_dir))
    assert data["gpus"] == [] and "nvidia-smi: exit 9" in data["gpu_error"]


def test_probe_failure_is_a_toolchain_error():
    def run(argv, **kw):
        return subprocess.CompletedProcess(argv, 1, "", "python3: not a python\n")

    with pytest.raises(ToolchainError, match="probe failed") as err:
        run_probe(["python3"], run=run)
    assert "not a python" in err.value.failure.log_tail


def test_local_detection_uses_the_interpreter_of_trtllm_build(tmp_path):
    program = tmp_path / "trtllm-build"
    program.write_text(f"#!{sys.executable}\nprint('hi')\n")
    seen = []

    def run(argv, **kw):
        seen.append(argv)
        return subprocess.run(argv, **kw)

    info = detect_local_toolchain(which=lambda name: str(program), run=run)
    assert seen[0][0] == sys.executable
    assert info.trtllm_build == str(program) and info.executor == "local"


def test_script_interpreter(tmp_path):
    env_script = tmp_path / "a"
    env_script.write_text("#!/usr/bin/env python3\n")
    direct = tmp_path / "b"
    direct.write_text(f"#!{sys.executable} -E\n")
    binary = tmp_path / "c"
    binary.write_bytes(b"\x7fELF\x02")
    assert script_interpreter(str(env_script)) == shutil.which("python3")
    assert script_interpreter(str(direct)) == sys.executable
    assert script_interpreter(str(binary)) is None
    assert script_interpreter(None) is None


# ----------------------------------------------------------------------------------- the checks
def info(**kw) -> ToolchainInfo:
    base = dict(executor="local", trtllm_version="1.2.1", tensorrt_version="10.14.1.48",
                gpus=(GpuInfo(0, "NVIDIA H100 80GB HBM3", 90),), trtllm_build="/usr/bin/trtllm-build",
                python="/usr/bin/python3")
    base.update(kw)
    return ToolchainInfo(**base)


H100 = plan_for("llama-3.1-8b-fp8.yaml", "h100")


def test_matching_toolchain_passes():
    check_toolchain(info(), H100)


@pytest.mark.parametrize(("kw", "message"), [
    (dict(trtllm_version=None), "TensorRT-LLM is not installed on this machine"),
    (dict(trtllm_version="1.3.0rc15"), "TensorRT-LLM 1.3.0rc15 on this machine is outside the supported range 1.2.x"),
    (dict(trtllm_version="nightly"), "outside the supported range"),
    (dict(trtllm_build=None), "`trtllm-build` is not on PATH"),
    (dict(gpus=(), gpu_error="NVML: Driver Not Loaded"), "no NVIDIA GPU is visible on this machine (NVML: Driver"),
    (dict(gpus=(GpuInfo(0, "NVIDIA A100-SXM4-80GB", 80),)),
     "GPU 0 is NVIDIA A100-SXM4-80GB (SM 80) but the plan targets H100 SXM (SM 90)"),
])
def test_toolchain_problems(kw, message):
    with pytest.raises(ToolchainError) as err:
        check_toolchain(info(**kw), H100)
    assert message in str(err.value)
    assert err.value.exit_code == 4


def test_missing_local_toolchain_points_to_the_container():
    with pytest.raises(ToolchainError, match=r"toolchain: \{executor: container, image: nvcr.io/nvidia/tritonserver"):
        check_toolchain(info(trtllm_version=None), H100)


def test_every_gpu_a_multi_gpu_build_uses_must_match():
    plan = plan_for("llama-3.1-70b-fp8-tp4.yaml", "h100")
    gpus = (GpuInfo(0, "H100", 90), GpuInfo(1, "L40S", 89))
    check_toolchain(info(gpus=gpus), plan, workers=1)
    with pytest.raises(ToolchainError, match="GPU 1 is L40S"):
        check_toolchain(info(gpus=gpus), plan, workers=4)


def test_probe_script_is_self_contained():
    """It runs in the container's Python: nothing from trtbuild may be imported."""
    from trtbuild.toolchain.detect import PROBE_SCRIPT

    assert "trtbuild" not in PROBE_SCRIPT
    compile(PROBE_SCRIPT, "<probe>", "exec")
