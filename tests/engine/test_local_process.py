"""LocalExecutor with real child processes: a tiny Python script stands in for trtllm-build."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from trtbuild.errors import EngineError, ToolchainError
from trtbuild.toolchain.executors import BuildJob, LocalExecutor
from trtbuild.toolchain.process import run_logged, spawn_process


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "fake_trtllm_build.py"
    path.write_text("import os, sys, time\n" + textwrap.dedent(body))
    return path


def job(tmp_path: Path, timeout: float | None = 30) -> BuildJob:
    return BuildJob(argv=("trtllm-build", "--output_dir", str(tmp_path / "out")), checkpoint_dir=tmp_path,
                    output_dir=tmp_path / "out", timing_cache=None, log_path=tmp_path / "logs" / "build.log",
                    work_dir=tmp_path / "work", timeout_s=timeout)


def test_output_is_streamed_while_the_child_runs(tmp_path):
    """The child waits for a file the parent's line callback creates: only streaming can finish this."""
    go = tmp_path / "go"
    exe = script(tmp_path, f"""
        print("ready", flush=True)
        for _ in range(200):
            if os.path.exists({str(go)!r}):
                break
            time.sleep(0.05)
        else:
            sys.exit(9)
        print("args:", " ".join(sys.argv[1:]))
        print("cwd:", os.getcwd())
        print("to stderr", file=sys.stderr)
    """)
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "ready":
            go.touch()

    result = LocalExecutor(program=[sys.executable, str(exe)]).run(job(tmp_path), on_line)
    assert result.returncode == 0
    assert seen[0] == "ready"
    assert f"args: --output_dir {tmp_path / 'out'}" in seen
    assert f"cwd: {tmp_path / 'work'}" in seen
    assert "to stderr" in seen  # stderr is merged into the log
    log = (tmp_path / "logs" / "build.log").read_text()
    assert "ready\n" in log and "to stderr\n" in log and "# exit status 0" in log


def test_exit_status_and_stderr_tail(tmp_path):
    exe = script(tmp_path, """
        print("building rank 0", flush=True)
        print("Traceback (most recent call last):\\nAssertionError: Engine building failed", file=sys.stderr)
        sys.exit(7)
    """)
    with pytest.raises(EngineError) as err:
        LocalExecutor(program=[sys.executable, str(exe)]).run(job(tmp_path))
    assert "failed with exit status 7" in str(err.value)
    assert "AssertionError: Engine building failed" in err.value.failure.log_tail
    assert err.value.failure.command[0] == sys.executable


def test_timeout_kills_the_child_and_its_children(tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    exe = script(tmp_path, f"""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(pidfile)!r}, "w").write(str(child.pid))
        print("tuning tactics", flush=True)
        time.sleep(120)
    """)
    started = time.monotonic()
    with pytest.raises(EngineError) as err:
        LocalExecutor(program=[sys.executable, str(exe)]).run(job(tmp_path, timeout=1.0))
    assert time.monotonic() - started < 20
    assert "did not finish within 1s" in str(err.value)
    assert "tuning tactics" in err.value.failure.log_tail
    grandchild = int(pidfile.read_text())
    for _ in range(50):
        if not alive(grandchild):
            break
        time.sleep(0.1)
    else:
        pytest.fail("the build's own child process survived the timeout")


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def test_program_that_does_not_exist(tmp_path):
    with pytest.raises(ToolchainError, match="not found on PATH"):
        run_logged(["trtbuild-no-such-program-xyz"], runner=spawn_process, log_path=tmp_path / "l.log", timeout_s=5)


def test_fake_toolchain_as_a_real_program(tmp_path):
    """`python -m trtbuild.toolchain.fake` behaves as trtllm-build, exit status included."""
    ex = LocalExecutor(program=[sys.executable, "-m", "trtbuild.toolchain.fake"])
    bad = BuildJob(argv=("trtllm-build", "--no_such_flag"), checkpoint_dir=tmp_path, output_dir=tmp_path,
                   timing_cache=None, log_path=tmp_path / "b.log", work_dir=tmp_path / "w", timeout_s=60)
    with pytest.raises(EngineError) as err:
        ex.run(bad)
    assert "exit status 2" in str(err.value)
    assert "trtllm-build: error: unrecognized arguments: --no_such_flag" in err.value.failure.log_tail
