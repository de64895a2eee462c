"""Executors with injected runners: timeouts, failures, missing programs, the container command line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from trtbuild.errors import EngineError, ToolchainError
from trtbuild.toolchain.executors import (
    BuildJob,
    ContainerExecutor,
    LocalExecutor,
    choose_executor_kind,
    find_container_runtime,
    load_image_lock,
    require_pinned,
    split_image,
)
from trtbuild.toolchain.process import TAIL_LINES, run_logged

from .helpers import FakeProcess, RecordingRunner

DIGEST = "sha256:" + "0123456789abcdef" * 4
IMAGE = "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3@" + DIGEST


def job(tmp_path: Path, *, timeout: float | None = 5, cache: bool = True) -> BuildJob:
    return BuildJob(argv=("trtllm-build", "--checkpoint_dir", "/c", "--output_dir", "/o"),
                    checkpoint_dir=tmp_path / "ckpt", output_dir=tmp_path / "out",
                    timing_cache=tmp_path / "cache" / "timing-cache" / "h100-sxm-sm90.cache" if cache else None,
                    log_path=tmp_path / "build.log", work_dir=tmp_path / "work", timeout_s=timeout, job_id="j1")


def test_timeout_kills_the_process_and_reports(tmp_path):
    proc = FakeProcess(lines=["[TRT-LLM] [I] building rank 0", "[TRT-LLM] [I] still tuning"], hang=True)
    runner = RecordingRunner(proc)
    with pytest.raises(EngineError) as err:
        LocalExecutor(runner).run(job(tmp_path, timeout=0.2))
    assert proc.killed
    text = str(err.value)
    assert "did not finish within 0.2s (toolchain.build_timeout) and was killed" in text
    assert "still tuning" in err.value.failure.log_tail
    assert err.value.failure.command[:1] == ["trtllm-build"]
    assert err.value.exit_code == 4
    assert "still tuning" in (tmp_path / "build.log").read_text()


def test_nonzero_exit_reports_status_and_log_tail(tmp_path):
    lines = [f"line {i}" for i in range(100)] + ["RuntimeError: out of GPU memory"]
    runner = RecordingRunner(FakeProcess(lines=lines, rc=3))
    with pytest.raises(EngineError) as err:
        LocalExecutor(runner).run(job(tmp_path))
    text = str(err.value)
    assert "trtllm-build failed with exit status 3" in text
    assert f"full log: {tmp_path / 'build.log'}" in text
    assert "command: trtllm-build --checkpoint_dir /c --output_dir /o" in text
    tail = err.value.failure.log_tail.splitlines()
    assert len(tail) == TAIL_LINES and tail[-1] == "RuntimeError: out of GPU memory" and "line 5" not in tail
    log = (tmp_path / "build.log").read_text()
    assert log.startswith("$ trtllm-build --checkpoint_dir /c") and "line 5\n" in log and "exit status 3" in log


def test_killed_by_signal_is_reported(tmp_path):
    with pytest.raises(EngineError, match=r"killed by signal 9 .*\(out of memory\?\)"):
        LocalExecutor(RecordingRunner(FakeProcess(rc=-9))).run(job(tmp_path))


def test_success_streams_lines_and_uses_program_and_work_dir(tmp_path):
    runner = RecordingRunner(FakeProcess(lines=["a", "b"], rc=0))
    seen: list[str] = []
    result = LocalExecutor(runner, program=["/opt/trtllm/bin/trtllm-build"]).run(job(tmp_path), seen.append)
    assert seen == ["a", "b"] and result.returncode == 0
    argv, cwd, _ = runner.calls[0]
    assert argv == ["/opt/trtllm/bin/trtllm-build", "--checkpoint_dir", "/c", "--output_dir", "/o"]
    assert cwd == tmp_path / "work" and cwd.is_dir()


def test_program_not_found_is_a_toolchain_error(tmp_path):
    def runner(argv, cwd, env):
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(ToolchainError, match="'trtllm-build' not found on PATH"):
        run_logged(["trtllm-build"], runner=runner, log_path=tmp_path / "l.log", timeout_s=1)


# ------------------------------------------------------------------------------------ container
def test_missing_container_runtime():
    with pytest.raises(ToolchainError) as err:
        find_container_runtime(which=lambda name: None)
    assert "docker or podman is not on PATH" in str(err.value) and err.value.exit_code == 4
    with pytest.raises(ToolchainError, match="podman is not on PATH"):
        find_container_runtime("podman", which=lambda name: "/usr/bin/docker" if name == "docker" else None)
    assert find_container_runtime(which=lambda name: "/usr/bin/podman" if name == "podman" else None) == "podman"


def test_docker_command_line(tmp_path):
    ex = ContainerExecutor(IMAGE, "docker", uid_gid=(1234, 5678))
    j = job(tmp_path)
    argv = ex.command_lines(j)[0]
    assert argv[:3] == ["docker", "run", "--rm"]
    assert argv[argv.index("--gpus") + 1] == "all"
    assert "--ipc=host" in argv
    assert argv[argv.index("--user") + 1] == "1234:5678"
    mounts = [argv[i + 1] for i, a in enumerate(argv) if a == "-v"]
    assert mounts == [f"{tmp_path / 'ckpt'}:/trtbuild/checkpoint:ro", f"{tmp_path / 'out'}:/trtbuild/output:rw",
                      f"{tmp_path / 'cache' / 'timing-cache'}:/trtbuild/cache:rw"]
    image_at = argv.index(IMAGE)
    assert argv[image_at + 1:] == list(j.argv)
    assert argv[argv.index("--name") + 1] == "trtbuild-engine-j1"


def test_podman_command_line_and_shm_size(tmp_path):
    ex = ContainerExecutor(IMAGE, "podman", uid_gid=(1000, 1000), shm_size="16g")
    argv = ex.command_lines(job(tmp_path, cache=False))[0]
    assert argv[argv.index("--device") + 1] == "nvidia.com/gpu=all" and "--gpus" not in argv
    assert "--userns=keep-id" in argv
    assert argv[argv.index("--shm-size") + 1] == "16g" and "--ipc=host" not in argv
    assert sum(a == "-v" for a in argv) == 2  # no timing cache mount


def test_container_tool_paths():
    ex = ContainerExecutor(IMAGE, "docker", uid_gid=(1, 1))
    assert ex.tool_paths(Path("/a"), Path("/b"), Path("/x/y/h100-sxm-sm90.cache")) == (
        Path("/trtbuild/checkpoint"), Path("/trtbuild/output"), Path("/trtbuild/cache/h100-sxm-sm90.cache"))


def test_container_timeout_stops_the_container(tmp_path):
    calls: list[list[str]] = []

    def run(argv, **kw):
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    proc = FakeProcess(hang=True)
    ex = ContainerExecutor(IMAGE, "docker", runner=RecordingRunner(proc), run=run, uid_gid=(1, 1))
    with pytest.raises(EngineError, match="did not finish"):
        ex.run(job(tmp_path, timeout=0.1))
    assert proc.killed and calls == [["docker", "kill", "trtbuild-engine-j1"]]


def test_container_probe_reads_versions_from_the_image():
    seen: list[list[str]] = []

    def run(argv, **kw):
        seen.append(list(argv))
        out = {"python": "/usr/bin/python3", "tensorrt_llm": "1.2.1", "tensorrt": "10.14.1.48",
               "trtllm_build": "/usr/local/bin/trtllm-build", "gpu_source": "nvml", "gpu_error": None,
               "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "sm": 90, "memory_bytes": 85e9}]}
        return subprocess.CompletedProcess(argv, 0, "some banner\n" + json.dumps(out) + "\n", "")

    info = ContainerExecutor(IMAGE, "docker", run=run, uid_gid=(1, 2)).probe()
    assert info.trtllm_version == "1.2.1" and info.gpus[0].sm == 90
    assert info.image == IMAGE and info.image_digest == DIGEST and info.executor == "container"
    assert seen[0][:2] == ["docker", "run"] and IMAGE in seen[0] and "--gpus" in seen[0]
    assert seen[0][seen[0].index(IMAGE) + 1:][:2] == ["python3", "-c"]


# ------------------------------------------------------------------------------------ image pins
def test_split_image():
    assert split_image("localhost:5000/ns/img:1.0@" + DIGEST) == ("localhost:5000/ns/img", "1.0", DIGEST)
    assert split_image("localhost:5000/ns/img") == ("localhost:5000/ns/img", None, None)


@pytest.mark.parametrize("image", [None, "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3",
                                   "nvcr.io/nvidia/tritonserver@" + DIGEST,
                                   "nvcr.io/nvidia/tritonserver:26.03@sha256:abc"])
def test_unpinned_images_are_refused(image):
    with pytest.raises(ToolchainError, match="pinned|digest"):
        require_pinned(image)


def test_lockfile_pins_a_tag(tmp_path):
    lock = tmp_path / "trtbuild.lock.json"
    lock.write_text(json.dumps({"images": {"nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3": DIGEST}}))
    pinned = require_pinned("nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3", load_image_lock(lock))
    assert pinned == IMAGE
    assert load_image_lock(tmp_path / "absent.json") == {}
    lock.write_text("[1, 2]")
    with pytest.raises(ToolchainError, match="expected"):
        load_image_lock(lock)


def test_auto_executor_choice():
    assert choose_executor_kind("auto", image=None, which=lambda n: "/x/trtllm-build") == "local"
    assert choose_executor_kind("auto", image=IMAGE, which=lambda n: None) == "container"
    assert choose_executor_kind("container", image=None, which=lambda n: "/x") == "container"
    with pytest.raises(ToolchainError, match="trtllm-build is not on PATH"):
        choose_executor_kind("auto", image=None, which=lambda n: None)
