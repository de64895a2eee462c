"""Progress display for long work: a line per step on stderr, a live bar on a terminal.

Stages take a ``Progress`` (constructor injection); tests pass ``Progress.silent()`` or a
recording instance. Nothing here prints at import or construction.

Every step that can take more than a couple of seconds says what it is doing and how far it is:
counted work advances a bar (``start``/``advance``/``finish``); a wait with no count (a server loading
models, a model converting) runs under ``waiting``, which redraws the elapsed time and an optional status
("3/5 models ready") — live on a terminal, as a plain line every ``heartbeat_s`` seconds otherwise (CI
logs). ``--quiet`` (``enabled=False``) draws nothing.

On a terminal the lines are drawn with rich (a coloured bar, ✓ green, ✗ red), imported only then; off a
terminal (CI logs, pipes, tests) they are the plain text below, byte for byte.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class Task:
    name: str
    total: int | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)


class Progress:
    """Reports named tasks with optional totals. ``sink`` gets (event, task) for tests/JSON."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True,
                 sink: Callable[[str, Task], None] | None = None, heartbeat_s: float = 10.0):
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._sink = sink
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_draw = 0.0
        self._heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._console: Any = None  # rich's Console, made on the first line drawn on a terminal
        self.tasks: list[Task] = []

    @classmethod
    def silent(cls) -> Progress:
        return cls(enabled=False)

    def start(self, name: str, total: int | None = None) -> Task:
        task = Task(name, total)
        self.tasks.append(task)
        self._emit("start", task)
        return task

    def advance(self, task: Task, n: int = 1) -> None:
        task.done += n
        self._emit("advance", task)

    def finish(self, task: Task, note: str = "") -> None:
        if task.total is not None:
            task.done = task.total
        self._emit("finish", task, note)

    def log(self, message: str) -> None:
        if self._enabled:
            with self._lock:
                self._clear_line()
                print(message, file=self._stream, flush=True)

    @contextlib.contextmanager
    def waiting(self, name: str, status: Callable[[], str] | None = None) -> Iterator[Task]:
        """A step with no count: show it started, then the elapsed time (and ``status()``) until it ends.
        A step that raises is shown as failed (✗), not done."""
        task = self.start(name)
        stop = threading.Event()

        def beat() -> None:
            interval = 0.5 if self._tty else self._heartbeat_s
            while not stop.wait(interval):
                try:
                    extra = status() if status is not None else ""
                except Exception:  # noqa: BLE001 - a status probe must never break the wait it describes
                    extra = ""
                elapsed = time.monotonic() - task.started
                self._line(f"  {name}: {extra + ' ' if extra else ''}({elapsed:.0f}s)", live=self._tty)

        thread = threading.Thread(target=beat, name="trtbuild-progress", daemon=True) if self._enabled else None
        if thread is not None:
            thread.start()
        try:
            yield task
        except BaseException:
            stop.set()
            if thread is not None:
                thread.join()
            if self._enabled:
                self._line(f"✗ {name} ({time.monotonic() - task.started:.1f}s)")
            raise
        stop.set()
        if thread is not None:
            thread.join()
        self.finish(task)

    # -- drawing -------------------------------------------------------------------------
    def _emit(self, event: str, task: Task, note: str = "") -> None:
        if self._sink is not None:
            self._sink(event, task)
        if not self._enabled:
            return
        elapsed = time.monotonic() - task.started
        if event == "start":
            self._line(f"▸ {task.name}" + (f" (0/{task.total})" if task.total else ""))
        elif event == "advance":
            now = time.monotonic()
            if not self._tty and task.total and task.done not in (task.total,) and (now - self._last_draw) < 5:
                return
            self._last_draw = now
            total = f"/{task.total}" if task.total else ""
            bar = ""
            if task.total:
                if self._tty:
                    self._bar_line(task, f"{task.done}{total} ({elapsed:.1f}s)")
                    return
                width = 24
                filled = int(width * min(task.done, task.total) / task.total)
                bar = "[" + "#" * filled + "." * (width - filled) + "] "
            self._line(f"  {task.name}: {bar}{task.done}{total} ({elapsed:.1f}s)", live=self._tty)
        elif event == "finish":
            self._line(f"✓ {task.name} ({elapsed:.1f}s){' ' + note if note else ''}")

    def _clear_line(self) -> None:
        if self._tty:
            self._stream.write("\r\x1b[2K")

    def _line(self, text: str, live: bool = False) -> None:
        with self._lock:
            self._clear_line()
            if self._tty:
                self._rich().print(_styled(text), end="" if live else "\n", highlight=False)
            elif live:
                self._stream.write(text)
            else:
                self._stream.write(text + "\n")
            self._stream.flush()

    def _bar_line(self, task: Task, counts: str) -> None:
        from rich.text import Text

        width = 24
        filled = int(width * min(task.done, task.total or 0) / (task.total or 1))
        line = Text.assemble(f"  {task.name}: ", ("━" * filled, "magenta"), ("━" * (width - filled), "grey37"),
                             f" {counts}")
        with self._lock:
            self._clear_line()
            self._rich().print(line, end="", highlight=False)
            self._stream.flush()

    def _rich(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(file=self._stream, force_terminal=True, soft_wrap=True)
        return self._console


_STYLES = {"✓": "green", "✗": "bold red", "▸": "bold"}


def _styled(text: str) -> Any:
    """A drawn line as rich text: its leading mark coloured, nothing else interpreted as markup."""
    from rich.text import Text

    line = Text(text)
    style = _STYLES.get(text[:1])
    if style:
        line.stylize(style, 0, 1)
    return line
