"""The checkpoint stage in a child process: ``python -m trtbuild.stages.checkpoint_worker``.

``trtbuild compile`` runs :func:`trtbuild.stages.checkpoint.run_checkpoint` in this worker rather than in
its own process, so torch, transformers, ModelOpt and the whole model are given back to the system when
the stage ends, and the stage's peak memory is its own (the worker's ``VmHWM``).

The worker is started isolated (``python -I`` with the parent's ``sys.path`` minus the current directory:
:func:`trtbuild.toolchain.process.isolated_python_argv`), so a ``numpy.py``, ``concurrent.py`` or
``sitecustomize.py`` in the directory compile runs in is never imported.

Protocol (one worker per stage run, nothing written outside the stage's output directory):

* the parent writes one JSON request on the worker's stdin: the :class:`CheckpointInputs` (round-tripped
  exactly by :func:`inputs_to_json` / :func:`inputs_from_json`), the output directory, device, converter;
* the worker writes JSON lines on a pipe (``--events-fd``): progress events, which the parent replays on
  its own :class:`Progress`, then one ``result`` (with the worker's peak RSS) or one ``error`` (the
  error's type, stage, message, command and log tail, so the parent raises the same error);
* the worker's stdout goes to the parent's stderr (library prints never reach ``--json`` output) and its
  stderr is the parent's.

Stopping: the worker stays in the parent's process group (a Ctrl-C reaches both), asks the kernel to
SIGKILL it when the parent dies (``PR_SET_PDEATHSIG``), and the parent terminates, then kills, a worker
that is still running when it leaves :func:`run_checkpoint_in_child` for any reason. The output
directory is the store's staging directory, so a killed stage never looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from trtbuild import errors
from trtbuild.errors import CheckpointError, StageError, TrtbuildError
from trtbuild.progress import Progress, Task

if TYPE_CHECKING:
    from trtbuild.stages.checkpoint import CheckpointInputs

MODULE = "trtbuild.stages.checkpoint_worker"
PROTOCOL = 1
STOP_GRACE_S = 5.0
"""How long a worker gets to clean up after SIGTERM before it is killed."""
_PR_SET_PDEATHSIG = 1


# ------------------------------------------------------------------------------------ memory
def peak_rss_bytes() -> int:
    """This process's peak resident set size (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            match = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.MULTILINE)
        if match:
            return int(match.group(1)) * 1024
    except OSError:
        pass  # no /proc: fall back to getrusage
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux ≥ 4.0). False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


# -------------------------------------------------------------------------------- the request
def inputs_to_json(inputs: CheckpointInputs) -> dict[str, Any]:
    return inputs.to_json()


def inputs_from_json(data: dict[str, Any]) -> CheckpointInputs:
    """The inverse of :func:`inputs_to_json` (an error, not a guess, for unknown or missing fields)."""
    from trtbuild.stages.checkpoint import CheckpointInputs
    from trtbuild.stages.fetch import FileDigest

    names = {f.name for f in fields(CheckpointInputs)}
    if set(data) != names:
        raise CheckpointError(f"checkpoint worker request: fields {sorted(set(data) ^ names)} do not match "
                              "CheckpointInputs (parent and worker run different trtbuild versions?)")
    values = dict(data)
    values["model_dir"] = Path(data["model_dir"])
    values["tokenizer_dir"] = Path(data["tokenizer_dir"]) if data["tokenizer_dir"] is not None else None
    values["input_files"] = tuple(FileDigest(**f) for f in data["input_files"])
    return CheckpointInputs(**values)


# --------------------------------------------------------------------------------- the errors
def error_to_json(exc: BaseException) -> dict[str, Any]:
    """What the parent needs to raise the same error: type, stage, bare message, command, log tail."""
    name = type(exc).__name__
    if isinstance(exc, StageError):
        failure = exc.failure
        suffix = str(StageError(failure.stage, "", command=failure.command, log_tail=failure.log_tail))
        suffix = suffix[len(f"{failure.stage}: "):]
        text = str(exc)[len(f"{failure.stage}: "):]
        message = text[:len(text) - len(suffix)] if suffix and text.endswith(suffix) else text
        return {"event": "error", "kind": "stage", "type": name, "stage": failure.stage, "message": message,
                "command": failure.command, "log_tail": failure.log_tail, "text": str(exc)}
    if isinstance(exc, TrtbuildError):
        return {"event": "error", "kind": "trtbuild", "type": name, "message": str(exc), "text": str(exc)}
    plain = all(isinstance(a, (str, int, float, bool, type(None))) for a in exc.args)
    return {"event": "error", "kind": "bug", "type": name, "message": str(exc), "text": str(exc),
            "args": list(exc.args) if plain else None, "traceback": "".join(traceback.format_exception(exc))}


def error_from_json(data: dict[str, Any]) -> BaseException:
    """The error the worker reported, as the parent raises it (same type where trtbuild has it)."""
    kind, name, message = data.get("kind"), str(data.get("type")), str(data.get("message"))
    if kind == "stage":
        command, tail = list(data.get("command") or []), str(data.get("log_tail") or "")
        stage = str(data.get("stage") or "checkpoint")
        err = (CheckpointError(message, command=command, log_tail=tail) if name == "CheckpointError"
               else StageError(stage, message, command=command, log_tail=tail))
        text = str(data.get("text") or err)
        if str(err) != text and text.startswith(f"{stage}: "):  # a subclass that words itself differently
            err = StageError(stage, text[len(stage) + 2:])
        return err
    if kind == "trtbuild":
        cls = getattr(errors, name, None)
        if cls in (errors.TrtbuildError, errors.UsageError, errors.PlanError, errors.PublishError):
            return cls(message)  # type: ignore[no-any-return]
        return CheckpointError(message)
    import builtins

    cls = getattr(builtins, name, None)
    exc: BaseException
    if isinstance(cls, type) and issubclass(cls, Exception) and data.get("args") is not None:
        try:
            exc = cls(*data["args"])
        except Exception:  # an exception type with an unusual constructor
            exc = RuntimeError(f"{name}: {message}")
    else:
        exc = RuntimeError(f"{name}: {message}")
    if data.get("traceback") and hasattr(exc, "add_note"):  # Python ≥ 3.11; shown by --debug
        exc.add_note("in the checkpoint worker process:\n" + str(data["traceback"]).rstrip())
    return exc


# ------------------------------------------------------------------------------- parent side
@dataclass(frozen=True)
class WorkerResult:
    peak_rss_bytes: int
    """The worker's VmHWM: everything the stage held at once, imports included."""
    pid: int
    facts: dict[str, Any] = field(default_factory=dict)
    """Build facts of the stage (duration, device, converter): for the report, never in the artifact."""


def _child_env() -> dict[str, str]:
    """The parent's environment without relative search-path entries (the interpreter itself runs
    isolated: see :func:`trtbuild.toolchain.process.isolated_python_argv`)."""
    from trtbuild.toolchain.process import child_environment

    return child_environment()


def _stderr_fd() -> int:
    """Where the worker's stdout goes: this process's stderr (fd 2), or nowhere if that is closed."""
    try:
        os.fstat(2)
        return 2
    except OSError:
        return subprocess.DEVNULL


def _replay(events: TextIO, progress: Progress) -> dict[str, Any] | None:
    """Replay the worker's progress on ``progress``; return its result or error message (None: neither)."""
    tasks: dict[int, Task] = {}
    outcome = None
    for line in events:
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        event = msg.get("event")
        if event == "start":
            tasks[msg["id"]] = progress.start(msg["name"], msg.get("total"))
        elif event == "advance" and msg.get("id") in tasks:
            progress.advance(tasks[msg["id"]], msg.get("n", 1))
        elif event == "finish" and msg.get("id") in tasks:
            progress.finish(tasks.pop(msg["id"]), msg.get("note", ""))
        elif event == "log":
            progress.log(str(msg.get("message", "")))
        elif event in ("result", "error"):
            outcome = msg
    return outcome


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a worker that is still running (grace period), then kill it; always reap it."""
    if proc.stdin is not None and not proc.stdin.closed:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


def _died(rc: int, pid: int) -> CheckpointError:
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.valid_signals() else str(-rc)
        hint = (" (out of memory? the checkpoint stage holds the whole model in memory)"
                if -rc == signal.SIGKILL else "")
        return CheckpointError(f"the checkpoint worker (pid {pid}) was killed by {name}{hint}")
    return CheckpointError(f"the checkpoint worker (pid {pid}) exited with status {rc} without a result")


def run_checkpoint_in_child(inputs: CheckpointInputs, out_dir: Path, *, progress: Progress | None = None,
                            device: str | None = None, converter: str = "auto") -> WorkerResult:
    """``run_checkpoint(inputs, out_dir, ...)`` in a worker process; raises the worker's error."""
    progress = progress or Progress.silent()
    request = {"protocol": PROTOCOL, "inputs": inputs_to_json(inputs),
               "out_dir": str(Path(out_dir).absolute()), "device": device, "converter": converter}
    read_fd, write_fd = os.pipe()
    from trtbuild.toolchain.process import isolated_python_argv

    argv = isolated_python_argv(MODULE, "--events-fd", str(write_fd), "--parent-pid", str(os.getpid()))
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=_stderr_fd(), pass_fds=(write_fd,),
                                env=_child_env())
    except OSError as e:
        os.close(read_fd)
        raise CheckpointError(f"could not start the checkpoint worker ({sys.executable}): {e}") from None
    finally:
        os.close(write_fd)
    try:
        with os.fdopen(read_fd, encoding="utf-8") as events:
            assert proc.stdin is not None
            try:
                proc.stdin.write(json.dumps(request).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass  # the worker died at once; its exit status says why
            outcome = _replay(events, progress)
        rc = proc.wait()
    finally:
        _stop(proc)
    if outcome is not None and outcome.get("event") == "error":
        raise error_from_json(outcome)
    if outcome is None or rc != 0:
        raise _died(rc, proc.pid)
    return WorkerResult(peak_rss_bytes=int(outcome["peak_rss_bytes"]), pid=proc.pid,
                        facts=dict(outcome.get("facts") or {}))


# -------------------------------------------------------------------------------- child side
class ForwardingProgress(Progress):
    """A Progress that draws nothing here and sends every event to the parent."""

    def __init__(self, send: Callable[[dict[str, Any]], None]):
        super().__init__(enabled=False)
        self._send = send
        self._ids: dict[int, int] = {}

    def start(self, name: str, total: int | None = None) -> Task:
        task = super().start(name, total)
        self._ids[id(task)] = len(self._ids)
        self._send({"event": "start", "id": self._ids[id(task)], "name": name, "total": total})
        return task

    def advance(self, task: Task, n: int = 1) -> None:
        super().advance(task, n)
        self._send({"event": "advance", "id": self._ids.get(id(task)), "n": n})

    def finish(self, task: Task, note: str = "") -> None:
        super().finish(task, note)
        self._send({"event": "finish", "id": self._ids.get(id(task)), "note": note})

    def log(self, message: str) -> None:
        self._send({"event": "log", "message": message})


def _die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when the parent dies (Linux); exit now if it already has."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:
        os._exit(1)


_interrupted: list[int] = []


def _interrupt(signum: int, frame: object) -> None:
    """First SIGINT/SIGTERM: unwind (the staging directory is removed); later ones: ignored, so a
    Ctrl-C followed by the parent's SIGTERM does not break the cleanup. (Setting SIG_IGN here instead
    would make Python raise "signal ignored due to race condition" for a signal already pending.)"""
    if not _interrupted:
        _interrupted.append(signum)
        raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    opts = dict(zip(args[::2], args[1::2], strict=False))
    if set(opts) != {"--events-fd", "--parent-pid"}:
        print("usage: python -m trtbuild.stages.checkpoint_worker --events-fd FD --parent-pid PID "
              "(started by trtbuild compile; the request is read from stdin)", file=sys.stderr)
        return 2
    _die_with_parent(int(opts["--parent-pid"]))
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    events = os.fdopen(int(opts["--events-fd"]), "w", encoding="utf-8", buffering=1)

    def send(msg: dict[str, Any]) -> None:
        events.write(json.dumps(msg, default=str) + "\n")

    try:
        request = json.loads(sys.stdin.read())
        if request.get("protocol") != PROTOCOL:
            raise CheckpointError(f"checkpoint worker: request protocol {request.get('protocol')!r}, "
                                  f"expected {PROTOCOL}")
        from trtbuild.stages.checkpoint import run_checkpoint

        manifest = run_checkpoint(inputs_from_json(request["inputs"]), Path(request["out_dir"]),
                                  progress=ForwardingProgress(send), device=request["device"],
                                  converter=request["converter"])
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        with contextlib.suppress(OSError):
            send(error_to_json(e))
        return e.exit_code if isinstance(e, TrtbuildError) else 1
    facts = {"wall_s": manifest.wall_s, "device": manifest.device, "converter": manifest.converter}
    send({"event": "result", "peak_rss_bytes": peak_rss_bytes(), "facts": facts})
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
