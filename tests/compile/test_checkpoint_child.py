"""The checkpoint stage of `trtbuild compile` runs in a worker process.

What is checked: the request (CheckpointInputs) and the errors cross the process boundary unchanged; the
report's checkpoint peak is the worker's (torch is imported there, never in the compile process); a
failing checkpoint still exits 4 with the same message and caches nothing; killing or interrupting the
compile during calibration leaves no worker behind, and a rerun completes.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trtbuild.errors import CheckpointError, StageError, UsageError
from trtbuild.progress import Progress
from trtbuild.stages.checkpoint import CheckpointInputs, CheckpointManifest, run_checkpoint
from trtbuild.stages.checkpoint_worker import (
    error_from_json,
    error_to_json,
    inputs_from_json,
    inputs_to_json,
    run_checkpoint_in_child,
)
from trtbuild.stages.fetch import FileDigest

pytestmark = pytest.mark.slow

MiB = 2**20
COMPILE = ("compile", "recipe.yaml", "--gpu", "h100", "--executor", "fake", "--out", "out")
WORKER = "trtbuild.stages.checkpoint_worker"


def _inputs(model_dir: Path, **overrides: object) -> CheckpointInputs:
    values: dict[str, object] = dict(
        model_dir=model_dir, architecture="LlamaForCausalLM", decoder_type="llama", dtype="float16",
        weights="fp8", kv_cache="none", awq_block_size=128, calib_dataset="builtin", calib_samples=4,
        calib_max_seq_len=32, calib_batch_size=2, calib_seed=1234, tp=1, pp=1, trust_remote_code=False)
    values.update(overrides)
    return CheckpointInputs(**values)  # type: ignore[arg-type]


def _set_calibration(project: Path, settings: str) -> None:
    recipe = project / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("{samples: 8, max_seq_len: 64, batch_size: 4}", settings))


# ----------------------------------------------------------------------------------- the protocol
def test_inputs_round_trip_exactly(tiny_model: Path, tmp_path: Path) -> None:
    files = (FileDigest("model.safetensors", "ab" * 32, 123), FileDigest("tokenizer.json", "cd" * 32, 45))
    full = _inputs(tiny_model, weights="int4_awq", kv_cache="fp8", calib_dataset=str(tmp_path / "c.jsonl"),
                   tokenizer_dir=tmp_path / "tok", allow_pickle=True, trust_remote_code=True,
                   input_files=files)
    for inputs in (full, _inputs(tiny_model)):
        back = inputs_from_json(json.loads(json.dumps(inputs_to_json(inputs))))
        assert back == inputs and hash(back) == hash(inputs)
        assert isinstance(back.model_dir, Path) and all(type(f) is FileDigest for f in back.input_files)
    assert isinstance(inputs_from_json(json.loads(json.dumps(inputs_to_json(full)))).tokenizer_dir, Path)
    with pytest.raises(CheckpointError, match="do not match CheckpointInputs"):
        inputs_from_json({**inputs_to_json(full), "surprise": 1})


def test_errors_cross_the_boundary_unchanged() -> None:
    cases = [CheckpointError("calibration: bad", command=["python", "-c", "x"], log_tail="one\ntwo\n"),
             CheckpointError("plain message\n  second line"), StageError("fetch", "gone"), UsageError("nope")]
    for exc in cases:
        back = error_from_json(json.loads(json.dumps(error_to_json(exc))))
        assert type(back) is type(exc) and str(back) == str(exc) and back.exit_code == exc.exit_code
        if isinstance(exc, StageError):
            assert back.failure == exc.failure  # type: ignore[attr-defined]
    try:
        raise ValueError("not a number: 'x'")
    except ValueError as e:
        data = error_to_json(e)
    bug = error_from_json(json.loads(json.dumps(data)))
    assert type(bug) is ValueError and str(bug) == "not a number: 'x'"
    assert "in the checkpoint worker process" in bug.__notes__[0] and 'raise ValueError' in bug.__notes__[0]


def test_worker_builds_and_replays_progress(tiny_model: Path, tmp_path: Path) -> None:
    events: list[tuple[str, str, int]] = []
    progress = Progress(enabled=False, sink=lambda event, task: events.append((event, task.name, task.done)))
    result = run_checkpoint_in_child(_inputs(tiny_model), tmp_path / "ck", progress=progress, device="cpu")
    assert result.pid != os.getpid() and _state(result.pid) is None      # reaped
    assert result.peak_rss_bytes > 150 * MiB                             # torch + the model, in the worker
    manifest = CheckpointManifest.load(tmp_path / "ck")
    assert manifest.quant_algo == "FP8" and manifest.converter == "modelopt"
    finished = [name for event, name, _ in events if event == "finish"]
    assert finished[-1] == "verify checkpoint" and any(n.startswith("calibrate fp8") for n in finished)
    assert ("advance", next(n for n in finished if n.startswith("calibrate")), 2) in events  # 4 samples / 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def test_worker_error_is_the_in_process_error(tiny_model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    inputs = _inputs(tiny_model, calib_dataset=str(empty))
    with pytest.raises(CheckpointError) as here:
        run_checkpoint(inputs, tmp_path / "a")
    with pytest.raises(CheckpointError) as there:
        run_checkpoint_in_child(inputs, tmp_path / "b")
    assert str(there.value) == str(here.value) and there.value.failure == here.value.failure
    assert "has no calibration samples (empty file)" in str(there.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.txt"]   # nothing half-written


# ---------------------------------------------------------------------------------- trtbuild compile
def test_checkpoint_peak_is_the_workers_and_compile_never_imports_torch(cli, project: Path,
                                                                        env: dict[str, str]) -> None:
    marker = project / "marker.json"
    script = ("import json, sys\nfrom trtbuild.cli import main\nrc = main(sys.argv[2:])\n"
              "heavy = [m for m in ('torch', 'transformers', 'modelopt') if m in sys.modules]\n"
              "json.dump({'rc': rc, 'heavy': heavy}, open(sys.argv[1], 'w'))\n")
    r = subprocess.run([sys.executable, "-c", script, str(marker), *COMPILE], cwd=project,
                       env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    assert json.loads(marker.read_text()) == {"rc": 0, "heavy": []}, r.stderr[-3000:]
    report = json.loads((project / "out" / "report.json").read_text())
    stages = {s["stage"]: s for s in report["targets"][0]["stages"]}
    assert {s["peak_rss_scope"] for s in stages.values()} == {"stage-process"}
    assert stages["checkpoint"]["peak_rss_bytes"] > 150 * MiB
    for name in ("fetch", "engine", "repository"):  # the compile process itself stays small
        assert 0 < stages[name]["peak_rss_bytes"] < 150 * MiB, stages[name]
    # The worker's progress is shown on the compile's stderr, in order, and nothing went wrong.
    err = r.stderr
    order = ["▸ checkpoint [h100-sxm]", "▸ load model", "▸ calibrate fp8/kv fp8", "✓ verify checkpoint",
             "✓ checkpoint [h100-sxm]", "▸ engine [h100-sxm]"]
    assert [err.index(line) for line in order] == sorted(err.index(line) for line in order)
    assert "Traceback" not in err
    again = cli(*COMPILE, "--json", cwd=project, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    for s in json.loads(again.stdout)["targets"][0]["stages"]:
        assert (s["status"], s["peak_rss_bytes"], s["peak_rss_scope"]) == ("cached", 0, None)


def test_failing_checkpoint_exits_4_with_the_message_and_caches_nothing(cli, project: Path,
                                                                      env: dict[str, str]) -> None:
    (project / "empty.txt").write_text("")
    _set_calibration(project, "{samples: 8, max_seq_len: 64, batch_size: 4, dataset: empty.txt}")
    r = cli(*COMPILE, cwd=project, env=env, timeout=300)
    assert r.returncode == 4, r.stderr[-2000:]
    path = (project / "empty.txt").resolve()
    assert (f"error: checkpoint: quantization.calibration.dataset: {path} has no calibration samples "
            "(empty file)") in r.stderr.splitlines()
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    store = Path(env["TRTBUILD_CACHE_DIR"]) / "store"
    assert sorted(p.name for p in (store / "checkpoint").iterdir()) == []
    assert not (project / "out").exists()


# ------------------------------------------------------------------------------- kill and interrupt
def _state(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, process group) of a live process; None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid, pgrp = stat.rsplit(")", 1)[1].split()[:3]
    return None if state in ("Z", "X") else (state, int(ppid), int(pgrp))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _group(pgid: int) -> list[int]:
    """Live processes in process group ``pgid``."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return [pid for pid in pids if (s := _state(pid)) is not None and s[2] == pgid]


def _read_until(proc: subprocess.Popen[bytes], text: str | None, timeout: float = 180) -> str:
    """Read the compile's stderr until ``text`` appears (None: until EOF, i.e. every writer is gone)."""
    assert proc.stderr is not None
    buf = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while text is None or text.encode() not in buf:
            left = deadline - time.monotonic()
            assert left > 0 and sel.select(left), f"timed out waiting for {text!r}:\n{buf.decode()[-2000:]}"
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                assert text is None, f"compile ended before {text!r}:\n{buf.decode()[-3000:]}"
                break
            buf += chunk
    return buf.decode(errors="replace")


def _compile_until_calibration(project: Path,
                               env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str, int]:
    """Start `trtbuild compile` (its own process group) with a long calibration; return when the
    worker reports calibration: (compile process, its stderr so far, worker pid)."""
    rng = random.Random(0)
    words = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "engines", "build",
             "tensors", "and", "caches")
    (project / "long.txt").write_text("\n".join(" ".join(rng.choice(words) for _ in range(300))
                                                for _ in range(400)))
    _set_calibration(project, "{samples: 400, max_seq_len: 256, batch_size: 2, dataset: long.txt}")
    proc = subprocess.Popen([sys.executable, "-m", "trtbuild", *COMPILE], cwd=project,
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        before = _read_until(proc, "▸ calibrate")
        workers = [pid for pid in _group(proc.pid) if pid != proc.pid and WORKER in _cmdline(pid)]
        assert len(workers) == 1 and _state(workers[0])[1] == proc.pid  # type: ignore[index]
    except BaseException:
        _reap(proc)
        raise
    return proc, before, workers[0]


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if _group(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def _finish(proc: subprocess.Popen[bytes], before: str) -> tuple[int, str]:
    """Read stderr to EOF (no process holds the pipe any more), reap; (exit status, all of stderr)."""
    try:
        output = before + _read_until(proc, None, timeout=60)
        return proc.wait(timeout=30), output
    finally:
        _reap(proc)


@pytest.mark.parametrize(("target", "sig"), [("group", signal.SIGKILL), ("parent", signal.SIGKILL),
                                             ("group", signal.SIGINT), ("parent", signal.SIGINT)])
def test_kill_during_calibration_leaves_no_worker(cli, project: Path, env: dict[str, str], target: str,
                                                  sig: signal.Signals) -> None:
    proc, before, worker = _compile_until_calibration(project, env)
    if target == "group":
        os.killpg(proc.pid, sig)   # a terminal's Ctrl-C, or a CI runner killing the job
    else:
        os.kill(proc.pid, sig)     # the compile process alone
    rc, output = _finish(proc, before)
    assert "✓ calibrate" not in output, "the kill came after calibration; make calibration longer"
    deadline = time.monotonic() + 15
    while (_state(worker) is not None or _group(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _state(worker) is None and _group(proc.pid) == []
    store = Path(env["TRTBUILD_CACHE_DIR"]) / "store"
    assert [p.name for p in (store / "checkpoint").iterdir() if not p.name.startswith(".")] == []
    if sig == signal.SIGINT:           # an orderly stop: exit 130, no traceback, no staging left behind
        assert rc == 130 and "interrupted" in output and "Traceback" not in output, output[-2000:]
        assert list((store / "checkpoint").iterdir()) == []
    else:
        assert rc == -signal.SIGKILL
    verify = cli("cache", "verify", "--json", cwd=project, env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    if (target, sig) == ("group", signal.SIGKILL):
        r = cli(*COMPILE, "--json", cwd=project, env=env, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        stages = {s["stage"]: s["status"] for s in json.loads(r.stdout)["targets"][0]["stages"]}
        assert stages == {"fetch": "cached", "checkpoint": "built", "engine": "built", "repository": "built"}


def test_worker_killed_alone_is_a_stage_failure(project: Path, env: dict[str, str]) -> None:
    """What the OOM killer does to a big model: the compile reports it (exit 4) and caches nothing."""
    proc, before, worker = _compile_until_calibration(project, env)
    os.kill(worker, signal.SIGKILL)
    rc, output = _finish(proc, before)
    assert rc == 4, output[-2000:]
    assert (f"error: checkpoint: the checkpoint worker (pid {worker}) was killed by SIGKILL (out of memory? "
            "the checkpoint stage holds the whole model in memory)") in output.splitlines()
    assert "Traceback" not in output
    assert list((Path(env["TRTBUILD_CACHE_DIR"]) / "store" / "checkpoint").iterdir()) == []
    assert not (project / "out").exists()

def test_worker_dies_with_its_parent_even_when_idle(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: a worker that writes nothing (here: blocked reading its request) still dies when
    the process that started it is SIGKILLed, so no broken pipe is needed to stop it."""
    starter = ("import os, subprocess, sys, time\nr, w = os.pipe()\n"
               f"p = subprocess.Popen([sys.executable, '-m', {WORKER!r}, '--events-fd', str(w), "
               "'--parent-pid', str(os.getpid())], pass_fds=(w,))\n"
               "print(p.pid, flush=True)\ntime.sleep(600)\n")
    stdin_r, stdin_w = os.pipe()  # the worker's stdin: its write end stays open here, so no EOF either
    proc = subprocess.Popen([sys.executable, "-c", starter], stdin=stdin_r, stdout=subprocess.PIPE,
                            start_new_session=True)
    os.close(stdin_r)
    try:
        assert proc.stdout is not None
        worker = int(proc.stdout.readline())
        deadline = time.monotonic() + 60
        while "pipe_read" not in Path(f"/proc/{worker}/wchan").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)   # until it waits for its request, past the PR_SET_PDEATHSIG call
        assert _state(worker) is not None and WORKER in _cmdline(worker)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _state(worker) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _state(worker) is None
    finally:
        os.close(stdin_w)
        _reap(proc)


def test_worker_reports_a_bug_with_its_traceback(tiny_model: Path, tmp_path: Path) -> None:
    """A bug in the worker is not a stage failure: it comes back as the same exception type (exit 1 in
    the CLI) with the worker's traceback attached for --debug, and the worker itself prints nothing."""
    bad = {**inputs_to_json(_inputs(tiny_model)), "tp": "two"}
    request = {"protocol": 1, "inputs": bad, "out_dir": str(tmp_path / "ck"), "device": None,
               "converter": "auto"}
    read_fd, write_fd = os.pipe()
    argv = [sys.executable, "-m", WORKER, "--events-fd", str(write_fd), "--parent-pid", str(os.getpid())]
    r = subprocess.run(argv, input=json.dumps(request).encode(), pass_fds=(write_fd,), capture_output=True,
                       timeout=120)
    os.close(write_fd)
    with os.fdopen(read_fd, encoding="utf-8") as f:
        events = [json.loads(line) for line in f]
    assert r.returncode == 1 and r.stdout == b"" and r.stderr == b""
    assert [e["event"] for e in events] == ["error"] and events[0]["kind"] == "bug"
    exc = error_from_json(events[0])
    assert type(exc) is TypeError and "'>=' not supported" in str(exc)
    assert "__post_init__" in exc.__notes__[0]
    assert not (tmp_path / "ck").exists()
