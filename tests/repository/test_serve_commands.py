"""`trtbuild serve` and `trtbuild smoke` start real servers and stop everything they started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trtbuild.repository.client import build_inputs, generate_grpc
from trtbuild.repository.launch import command_line, rank_arguments
from trtbuild.repository.server import TritonServer, free_port

from .helpers import ROOT


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_multi_rank_command_line_runs_one_tritonserver_per_rank() -> None:
    ranks = rank_arguments(2, tritonserver="ts", models_dir="/r/models", http_port="1", grpc_port="2",
                           metrics_port="3")
    argv = command_line(ranks)
    assert argv[:2] == ["mpirun", "--allow-run-as-root"] and argv.count(":") == 1
    assert "--backend-config=python,shm-region-prefix-name=prefix0_" in ranks[0]
    assert ranks[1][-3:] == ["--backend-config=python,shm-region-prefix-name=prefix1_",
                             "--model-control-mode=explicit", "--load-model=tensorrt_llm"]
    assert command_line(rank_arguments(1, tritonserver="ts", models_dir="m", http_port="1", grpc_port="2",
                                       metrics_port="3"))[0] == "ts"


@pytest.mark.slow
def test_smoke_starts_and_stops_its_own_server(reference_repo: Path, cli) -> None:
    done = cli("smoke", str(reference_repo), "--prompt", "Hello world", "--max-tokens", "6", "--model",
               "tensorrt_llm_bls", "--stream", timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip()


@pytest.mark.slow
def test_serve_runs_until_interrupted_and_cleans_up(reference_repo: Path) -> None:
    http, grpc, metrics = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "trtbuild", "serve", str(reference_repo), "--http-port", str(http),
                             "--grpc-port", str(grpc), "--metrics-port", str(metrics)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        lines = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            lines.append(line)
            if line.startswith("ready:") or not line:
                break
        assert lines[-1].startswith("ready:"), "".join(lines)
        assert "CPU REFERENCE" in lines[0]
        result = generate_grpc(f"127.0.0.1:{grpc}", "ensemble", build_inputs("Hello", 4))
        assert result.error is None and result.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert _group_gone(proc.pid)
    assert generate_grpc(f"127.0.0.1:{grpc}", "ensemble", build_inputs("Hello", 4), timeout=5).error


@pytest.mark.slow
def test_stop_ends_the_whole_process_group(server) -> None:
    assert isinstance(server, TritonServer) and server.process is not None
    assert server.http_url.startswith("127.0.0.1:") and server.grpc_url.startswith("127.0.0.1:")
    # the stubs are children of tritonserver, in its process group (stop() kills the group)
    children = subprocess.run(["ps", "-o", "pgid=,args=", "-g", str(server.process.pid)], capture_output=True,
                              text=True).stdout
    assert "triton_python_backend_stub" in children
