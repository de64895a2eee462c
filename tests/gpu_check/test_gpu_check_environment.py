"""The GPU check's environment probe, run against test doubles on a private PATH (real child processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtbuild.errors import UsageError
from trtbuild.gpu_check.environment import match_catalog, probe_environment

from .doubles import backends, nvidia_smi, script, trtllm_build, which_in


def probe(tmp_path: Path, bin_dir: Path, *, environ: dict[str, str] | None = None, gpu: str | None = None,
          backends_dir: Path | None = None):
    return probe_environment(requested_gpu=gpu, which=which_in(bin_dir), environ=environ or {},
                             backends_dir=backends_dir or tmp_path / "no-backends",
                             default_tritonserver=tmp_path / "no-tritonserver")


def by_id(env) -> dict:
    return {c.id: c for c in env.checks}


def test_gpu_and_trtllm_found_tritonserver_missing(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    trtllm_build(bin_dir, "1.2.0")
    nvidia_smi(bin_dir)
    env = probe(tmp_path, bin_dir)
    checks = by_id(env)
    assert checks["nvidia-smi"].ok and "NVIDIA H100 80GB HBM3 (SM 90)" in checks["nvidia-smi"].found
    assert env.gpus[0].memory_bytes == 81559 * 2**20
    assert checks["gpu-target"].ok and env.gpu_key == "h100-sxm"
    assert checks["trtllm-build"].ok and checks["trtllm-build"].found.startswith(str(bin_dir / "trtllm-build"))
    assert checks["tensorrt_llm"].ok and env.trtllm_version == "1.2.0"
    assert not checks["tritonserver"].ok and "tritonserver not found" in checks["tritonserver"].missing
    assert "nvidia-pytriton's server has no tensorrtllm backend" in checks["tritonserver"].missing
    assert not checks["tensorrtllm-backend"].ok and "libtriton_tensorrtllm.so" in checks["tensorrtllm-backend"].missing
    assert [c.id for c in env.missing_for("engine")] == ["tritonserver", "tensorrtllm-backend", "python-backend"]
    assert [c.id for c in env.missing_for("llmapi")] == ["tritonserver", "python-backend"]


def test_everything_present(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    trtllm_build(bin_dir, "1.2.1")
    nvidia_smi(bin_dir, "0, NVIDIA A100-SXM4-80GB, 8.0, 81920\n1, NVIDIA A100-SXM4-80GB, 8.0, 81920")
    root = tmp_path / "opt" / "tritonserver"
    server = script(root / "bin", "tritonserver", "exit 0")
    (root / "TRITON_VERSION").write_text("2.59.0\n")
    env = probe(tmp_path, bin_dir, environ={"TRITONSERVER": str(server)}, backends_dir=backends(root / "backends"))
    assert all(c.ok for c in env.checks), [c.missing for c in env.checks if not c.ok]
    assert env.tritonserver == str(server) and env.triton_version == "2.59.0"
    assert len(env.gpus) == 2 and env.gpu_key == "a100-80gb"
    assert env.versions()["tensorrt_llm"] == "1.2.1"


def test_tritonserver_on_path_without_the_tensorrtllm_backend_blocks_only_the_engine(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    trtllm_build(bin_dir)
    nvidia_smi(bin_dir)
    script(bin_dir, "tritonserver", "exit 0")
    env = probe(tmp_path, bin_dir, backends_dir=backends(tmp_path / "backends", tensorrtllm=False))
    assert [c.id for c in env.missing_for("engine")] == ["tensorrtllm-backend"]
    assert env.missing_for("llmapi") == []


def test_old_tensorrt_llm_blocks_the_engine_not_the_llm_api(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    trtllm_build(bin_dir, "1.1.0")
    nvidia_smi(bin_dir)
    check = by_id(probe(tmp_path, bin_dir))["tensorrt_llm"]
    assert not check.ok and check.needed_by == ("engine",)
    assert "1.1.0 is outside 1.2.x" in check.missing and "LLM-API check still runs" in check.missing
    check = by_id(probe(tmp_path, trtllm_build(tmp_path / "b2", "0.21.0").parent))["tensorrt_llm"]
    assert not check.ok and check.needed_by == ("engine", "llmapi")


def test_trtllm_build_that_cannot_start_says_why(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    script(bin_dir, "trtllm-build", "echo 'ImportError: libcuda.so.1: cannot open shared object file' >&2\nexit 1")
    checks = by_id(probe(tmp_path, bin_dir))
    assert not checks["trtllm-build"].ok
    assert "exit status 1" in checks["trtllm-build"].missing and "libcuda.so.1" in checks["trtllm-build"].missing
    assert not checks["tensorrt_llm"].ok and "not installed" in checks["tensorrt_llm"].missing


def test_no_nvidia_smi(tmp_path: Path) -> None:
    checks = by_id(probe(tmp_path, tmp_path / "empty-bin"))
    assert not checks["nvidia-smi"].ok and "--gpus all" in checks["nvidia-smi"].missing
    assert not checks["gpu-target"].ok
    assert "`trtllm-build` is not on PATH" in checks["trtllm-build"].missing
    assert "trtllm-python-py3" in checks["trtllm-build"].missing


def test_nvidia_smi_without_a_driver(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    nvidia_smi(bin_dir, "", status=9, stderr="NVIDIA-SMI has failed because it couldn't communicate with the "
                                             "NVIDIA driver.")
    check = by_id(probe(tmp_path, bin_dir))["nvidia-smi"]
    assert not check.ok and "exit status 9" in check.missing and "couldn't communicate" in check.missing


def test_gpu_outside_the_catalog_and_requested_gpu(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    nvidia_smi(bin_dir, "0, NVIDIA Jetson Thor, 11.0, 131072")
    check = by_id(probe(tmp_path, bin_dir))["gpu-target"]
    assert not check.ok and "not in trtbuild's catalog" in check.missing and "SM 110" in check.missing
    env = probe(tmp_path, nvidia_smi(tmp_path / "b2").parent, gpu="h100-pcie")
    assert env.gpu_key == "h100-pcie"  # same SM as the GPU found: allowed
    env = probe(tmp_path, nvidia_smi(tmp_path / "b3").parent, gpu="a100")
    check = by_id(env)["gpu-target"]
    assert not check.ok and "SM 80" in check.missing and "SM 90" in check.missing and env.gpu_key is None


def test_unknown_requested_gpu_is_a_usage_error(tmp_path: Path) -> None:
    from trtbuild.gpu_check.environment import GpuInfo

    with pytest.raises(UsageError, match="unknown GPU"):
        match_catalog([GpuInfo(index=0, name="NVIDIA H100", sm=90)], "h1000x")
