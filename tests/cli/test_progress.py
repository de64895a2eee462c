"""Issue 14, item 5: long waits say what they are doing and how far they are; --quiet silences them; a
model that fails to load stops `serve` with the reason from the server log."""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

import pytest

from trtbuild.progress import Progress


def test_waiting_prints_a_heartbeat_with_status_and_marks_failure() -> None:
    out = io.StringIO()
    p = Progress(out, heartbeat_s=0.05)
    with p.waiting("load models", status=lambda: "2/5 models loaded"):
        time.sleep(0.2)
    text = out.getvalue()
    assert text.startswith("▸ load models\n") and "  load models: 2/5 models loaded (0s)\n" in text
    assert text.rstrip().splitlines()[-1].startswith("✓ load models (")
    out = io.StringIO()
    with pytest.raises(RuntimeError), Progress(out, heartbeat_s=10).waiting("start"):
        raise RuntimeError("boom")
    assert "✗ start" in out.getvalue() and "✓" not in out.getvalue()
    quiet = io.StringIO()
    with Progress(quiet, enabled=False, heartbeat_s=0.01).waiting("x"):
        time.sleep(0.05)
    assert quiet.getvalue() == ""


@pytest.fixture
def tiny_repo(tmp_path: Path, cli) -> Path:  # type: ignore[no-untyped-def]
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    (tmp_path / "r.yaml").write_text("recipe: 1\nname: tiny\nmodel: {source: model}\ngpus: [cpu]\n"
                                     "build: {max_batch_size: 4, max_input_len: 64, max_seq_len: 128}\n"
                                     "serving: {instances: {preprocessing: 1, postprocessing: 1, bls: 1}}\n")
    r = cli("compile", "r.yaml", "--out", "out", "--quiet", cwd=tmp_path,
            env={"TRTBUILD_CACHE_DIR": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    return tmp_path / "out" / "cpu" / "repository"


def test_smoke_shows_the_server_start_and_the_request(cli, tiny_repo: Path) -> None:
    r = cli("smoke", str(tiny_repo), "--prompt", "hello", "--max-tokens", "4", "--raw", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "▸ start tritonserver (CPU reference, 5 models)" in r.stderr
    assert "✓ start tritonserver" in r.stderr and "✓ tensorrt_llm_bls: generate up to 4 tokens" in r.stderr  # the default entry point
    quiet = cli("smoke", str(tiny_repo), "--prompt", "hello", "--max-tokens", "4", "--raw", "--quiet", timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_serve_names_the_model_that_failed_to_load(cli, tiny_repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_repo, broken)
    with open(broken / "models" / "tensorrt_llm" / "1" / "model.py", "a") as f:
        f.write("\nraise RuntimeError('weights are corrupt')\n")
    r = cli("serve", str(broken), "--http-port", "0", "--grpc-port", "0", "--metrics-port", "0", timeout=300)
    assert r.returncode == 4, r.stderr
    assert "model 'tensorrt_llm' failed to load: " in r.stderr and "weights are corrupt" in r.stderr
    assert "✗ start tritonserver" in r.stderr and "last output:" in r.stderr


def test_demo_model_shows_its_steps(cli, tmp_path: Path, smollm2_model: Path) -> None:
    r = cli("demo-model", str(tmp_path / "m"), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "SmolLM2-135M-Instruct" in r.stderr and "✓ copy to" in r.stderr
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "chat_template.jinja").is_file()
    quiet = cli("demo-model", str(tmp_path / "q"), "--quiet", timeout=300)
    assert quiet.returncode == 0 and "✓" not in quiet.stderr


def test_every_long_running_command_has_quiet(cli) -> None:
    for cmd in ("compile", "checkpoint", "engine", "serve", "smoke", "demo-model", "publish", "pull", "lock"):
        r = cli(cmd, "--help")
        assert r.returncode == 0 and "--quiet" in r.stdout, cmd
