"""Issue 12, item 8: the progress display draws with rich on a terminal, and stays plain text (without
importing rich) everywhere else."""

from __future__ import annotations

import io
import subprocess
import sys

from trtbuild.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_bar_redraws_one_line_and_the_marks_are_coloured() -> None:
    out = Terminal()
    p = Progress(out)
    task = p.start("hash weights", 4)
    for _ in range(4):
        p.advance(task)
    p.finish(task, "4 files")
    with_fail = Terminal()
    try:
        with Progress(with_fail, heartbeat_s=10).waiting("start server"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    text = out.getvalue()
    assert "\x1b[1m▸\x1b[0m hash weights (0/4)\n" in text  # the start: bold mark
    redraws = [part for part in text.split("\r\x1b[2K") if part.startswith("  hash weights: ")]
    assert len(redraws) == 4 and not any(r.endswith("\n") for r in redraws)  # live: one line, redrawn
    assert "━" in redraws[1] and "2/4" in redraws[1] and "4/4" in redraws[-1]
    assert "\x1b[32m✓\x1b[0m hash weights (" in text and text.endswith("4 files\n")
    assert "\x1b[1;31m✗\x1b[0m start server (" in with_fail.getvalue()


def test_off_a_terminal_lines_are_plain_and_rich_is_not_imported() -> None:
    code = ("import io, sys\nfrom trtbuild.progress import Progress\nout = io.StringIO()\np = Progress(out)\n"
            "t = p.start('hash', 2)\np.advance(t)\np.advance(t)\np.finish(t)\n"
            "sys.stdout.write(out.getvalue())\nassert 'rich' not in sys.modules, 'rich imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "▸ hash (0/2)" and lines[1].startswith("  hash: [############............] 1/2 (")
    assert lines[-1].startswith("✓ hash (") and "\x1b" not in r.stdout
