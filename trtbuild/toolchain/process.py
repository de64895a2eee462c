"""Child processes: output streamed to a log file and a callback, a timeout that kills the whole process
group, failures reported with the command, the exit status and the log's tail; and the environment every
child of trtbuild starts with.

The process factory is injected (``runner``): :func:`spawn_process` starts a real child (its own session,
so a timeout kills the workers it spawned too); tests pass fakes that implement :class:`ProcessHandle`.

Nothing runs that the user did not ask for: a child never resolves a program or a Python module through
the current directory. :func:`child_environment` drops empty and relative ``PATH``/``PYTHONPATH`` entries
(both mean "the current directory"), :func:`which` looks in absolute ``PATH`` entries only, and
:func:`isolated_python_argv` starts a Python child with ``-I`` (no current directory, no ``PYTHON*``
variables, no user site) and this process's own ``sys.path`` minus the current directory, so an editable
install, a ``PYTHONPATH`` install and a source checkout are found exactly as the parent found them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

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


# ------------------------------------------------------------------------------- child environment
def _absolute_entries(value: str) -> str:
    keep: list[str] = []
    for entry in value.split(os.pathsep):
        if entry and os.path.isabs(entry) and entry not in keep:
            keep.append(entry)
    return os.pathsep.join(keep)


def child_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with every empty or relative ``PATH``/``PYTHONPATH`` entry
    removed: such entries resolve programs and modules in whatever directory the child runs in."""
    out = dict(os.environ if env is None else env)
    for name in ("PATH", "PYTHONPATH"):
        if name in out:
            cleaned = _absolute_entries(out[name])
            if cleaned:
                out[name] = cleaned
            else:
                del out[name]
    return out


def which(name: str, path: str | None = None) -> str | None:
    """``shutil.which`` over the absolute entries of ``PATH`` only (never the current directory)."""
    import shutil

    search = _absolute_entries(os.environ.get("PATH", os.defpath) if path is None else path)
    return shutil.which(name, path=search) if search else None


def run_child(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
              **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` with :func:`child_environment` (of ``env`` when given)."""
    return subprocess.run(list(argv), env=child_environment(env), **kwargs)


def child_sys_path() -> list[str]:
    """This process's ``sys.path`` without the current directory (``''``, relative entries, or the
    cwd itself), for a Python child; trtbuild's own root stays (appended last) when it was found there."""
    import trtbuild

    cwd = os.path.realpath(os.getcwd())
    root = os.path.realpath(Path(trtbuild.__file__).parent.parent)
    out: list[str] = []
    root_via_cwd = False
    for entry in sys.path:
        real = os.path.realpath(entry or ".")
        if not entry or not os.path.isabs(entry) or real == cwd:
            root_via_cwd = root_via_cwd or real == root
            continue
        if entry not in out:
            out.append(entry)
    if root_via_cwd and root not in {os.path.realpath(p) for p in out}:
        out.append(root)
    return out


_BOOTSTRAP = """\
import sys, os, json
a = json.loads(sys.argv.pop(1))
sys.path[:] = a["path"]
import trtbuild
root = os.path.realpath(os.path.join(os.path.dirname(trtbuild.__file__), os.pardir))
if root != a["root"]:
    sys.exit("trtbuild child: imported trtbuild from %s, the parent runs %s" % (root, a["root"]))
import runpy
runpy.run_module(a["module"], run_name="__main__", alter_sys=True)
"""


def isolated_python_argv(module: str, *args: str, python: str | None = None) -> list[str]:
    """argv for ``python -m module args`` run isolated (``-I``) with :func:`child_sys_path`.

    The child imports the same trtbuild as this process (it exits with an error otherwise) and never
    code from the current directory: not a ``numpy.py``, a ``concurrent.py`` or a ``sitecustomize.py``."""
    import trtbuild

    root = os.path.realpath(Path(trtbuild.__file__).parent.parent)
    spec = json.dumps({"path": child_sys_path(), "root": root, "module": module})
    return [python or sys.executable, "-I", "-c", _BOOTSTRAP, spec, *args]


# ------------------------------------------------------------------------------------- processes
class _PopenHandle:
    def __init__(self, argv: Sequence[str], cwd: Path | None, env: Mapping[str, str] | None):
        self._proc = subprocess.Popen(list(argv), cwd=cwd, env=child_environment(env),
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
    """The default runner: a real child process in its own session, stdout and stderr merged, started with
    :func:`child_environment` (``env``, default this process's, without relative search-path entries)."""
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
