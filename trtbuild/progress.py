"""Progress display for long work: a line per step on stderr, a live bar on a terminal.

Stages take a ``Progress`` (constructor injection); tests pass ``Progress.silent()`` or a
recording instance. Nothing here prints at import or construction.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Task:
    name: str
    total: int | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)


class Progress:
    """Reports named tasks with optional totals. ``sink`` gets (event, task) for tests/JSON."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True,
                 sink: Callable[[str, Task], None] | None = None):
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._sink = sink
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._last_draw = 0.0
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
            self._clear_line()
            print(message, file=self._stream, flush=True)

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
        self._clear_line()
        if live:
            self._stream.write(text)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
