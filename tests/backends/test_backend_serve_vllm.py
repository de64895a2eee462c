"""`trtbuild compile` then `trtbuild serve` of a recipe with `backend: vllm`: a real tritonserver running the
generated repository in vLLM's environment (.venv-vllm, found by the backend), answering the client contract."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vllm"))
from vllm_helpers import VLLM_ENV, ask, require_vllm  # noqa: E402

from trtbuild.repository.server import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_compile_and_serve_vllm_through_the_cli(cli, project: Callable[..., Path], env: dict[str, str],
                                                tmp_path: Path) -> None:
    require_vllm()  # skips without .venv-vllm (fails under make test's TRTBUILD_REQUIRE_VLLM=1)
    recipe = project("backend: vllm\n", runtime=", streaming: true")
    out = tmp_path / "out"
    r = cli("compile", str(recipe), "--gpu", "cpu", "--out", str(out), "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    repo = out / "cpu" / "repository"
    ports = [free_port() for _ in range(3)]
    serve_env = {**os.environ, **env, "TRTBUILD_VLLM_ENV": str(VLLM_ENV)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trtbuild", "serve", str(repo), "--http-port", str(ports[0]), "--grpc-port",
         str(ports[1]), "--metrics-port", str(ports[2]), "--quiet", "--timeout", "600"],
        cwd=ROOT, env=serve_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 660
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("ready:"):
                break
        assert lines and lines[-1].startswith("ready:"), "".join(lines) + (proc.stderr.read() if proc.stderr else "")
        assert "[vLLM]" in lines[0]
        server = SimpleNamespace(grpc_url=f"127.0.0.1:{ports[1]}")
        for model in ("ensemble", "tensorrt_llm_bls"):
            result = ask(server, "The capital of France is", max_tokens=8, model=model, return_num_output_tokens=True)
            assert result.error is None and result.text
            assert result.num_output_tokens == 8
        first = ask(server, "Hello", max_tokens=6)
        assert first.text == ask(server, "Hello", max_tokens=6).text  # greedy: the same tokens again
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert json.loads((out / "report.json").read_text())["targets"][0]["stages"][-1]["stage"] == "repository"
