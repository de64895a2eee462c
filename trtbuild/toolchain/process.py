"""Child processes for the engine build: output streamed to a log file and a callback, a timeout that kills
the whole process group, and failures reported with the command, the exit status and the log's tail.

The process factory is injected (``runner``): :func:`spawn_process` starts a real child (its own session,
so a timeout kills the workers it spawned too); tests pass fakes that implement :class:`ProcessHandle`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from trtbuild.errors import EngineError, ToolchainError

TAIL_LINES = 40


class ProcessHandle(Protocol):
    """A started child process as the executors see it."""

    def lines(self) -> Iterator[str]:
        """Its combined stdout/stderr, line by line, until it closes."""
        ...

    def wait(self, timeout: float | None) -> int | None:
        """Its exit status (negative: killed by that signal), or None if still running after ``timeout``."""
        ...

    def kill(self) -> None:
        """Stop it and everything it started."""
        ...


Runner = Callable[[Sequence[str], "Path | None", "Mapping[str, str] | None"], ProcessHandle]


class _PopenHandle:
    def __init__(self, argv: Sequence[str], cwd: Path | None, env: Mapping[str, str] | None):
        self._proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True)

    def lines(self) -> Iterator[str]:
        stream: IO[bytes] | None = self._proc.stdout
        if stream is None:
            return
        for raw in iter(stream.readline, b""):
            yield raw.decode("utf-8", "replace").rstrip("\r\n")

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)
            try:
                self._proc.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue


def spawn_process(argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None) -> ProcessHandle:
    """The default runner: a real child process in its own session, stdout and stderr merged."""
    return _PopenHandle(argv, cwd, env)


@dataclass(frozen=True)
class RunResult:
    returncode: int
    wall_s: float
    log_path: Path
    tail: str


def run_logged(argv: Sequence[str], *, runner: Runner, log_path: Path, timeout_s: float | None,
               on_line: Callable[[str], None] | None = None, cwd: Path | None = None,
               env: Mapping[str, str] | None = None, on_kill: Callable[[], None] | None = None,
               what: str = "trtllm-build") -> RunResult:
    """Run ``argv`` to completion, teeing its output into ``log_path`` and ``on_line``.

    Raises EngineError (with the command and the last lines of output) when it exits non-zero or outlives
    ``timeout_s`` (then it is killed, and ``on_kill`` runs, e.g. to stop a container), and
    ToolchainError when the program cannot be started.
    """
    argv = list(argv)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    started = time.monotonic()
    with open(log_path, "w", encoding="utf-8", buffering=1) as log:
        log.write("$ " + shlex.join(argv) + "\n")
        try:
            handle = runner(argv, cwd, env)
        except FileNotFoundError as exc:
            raise ToolchainError(f"cannot start {what}: {exc.strerror or exc} ({argv[0]!r} not found on PATH)",
                                 command=argv) from None
        except OSError as exc:  # not executable, bad interpreter, ...
            raise ToolchainError(f"cannot start {what}: {exc}", command=argv) from None

        def pump() -> None:
            for line in handle.lines():
                log.write(line + "\n")
                tail.append(line)
                if on_line is not None:
                    with contextlib.suppress(Exception):  # a display problem must not stop the build's log
                        on_line(line)

        reader = threading.Thread(target=pump, name="trtbuild-log", daemon=True)
        reader.start()
        try:
            rc = handle.wait(timeout_s)
        except BaseException:  # Ctrl-C: leave no orphaned build behind
            handle.kill()
            if on_kill is not None:
                on_kill()
            raise
        timed_out = rc is None
        if timed_out:
            handle.kill()
            if on_kill is not None:
                on_kill()
            rc = handle.wait(30)
        reader.join(timeout=10)
        wall = time.monotonic() - started
        log.write(f"# exit status {rc} after {wall:.1f}s{' (timed out)' if timed_out else ''}\n")
    text = "\n".join(tail)
    if timed_out:
        raise EngineError(f"{what} did not finish within {_duration(timeout_s)} (toolchain.build_timeout) and was "
                          f"killed; full log: {log_path}", command=argv, log_tail=text)
    assert rc is not None
    if rc != 0:
        why = f"was killed by signal {-rc}" if rc < 0 else f"failed with exit status {rc}"
        if rc in (-9, 137):
            why += " (out of memory?)"
        raise EngineError(f"{what} {why} after {wall:.1f}s; full log: {log_path}", command=argv, log_tail=text)
    return RunResult(returncode=rc, wall_s=wall, log_path=log_path, tail=text)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "forever"
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}m"
    return f"{seconds:g}s"
