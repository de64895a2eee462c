"""docs/architecture.md stays honest: every file or folder it names exists in the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
_PATHISH = re.compile(r"^[\w.-]+(/[\w.-]*)+$|^[\w-]+\.(py|md|j2|json|yaml)$")


def _named_paths(text: str) -> list[str]:
    return [t for t in re.findall(r"`([^`\s]+)`", text) if _PATHISH.match(t)]


def test_every_path_the_architecture_doc_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = _named_paths(text)
    assert len(named) >= 30  # the doc names the files; a parser that finds none would prove nothing
    dirs = {p.rstrip("/") for p in named if "/" in p}
    missing = []
    for p in named:
        if "/" in p:
            ok = (ROOT / p).exists()
        else:  # a bare file name: in a folder the same line or the doc names (e.g. `fetch.py` of trtbuild/stages/)
            ok = any((ROOT / d / p).exists() for d in dirs) or any(ROOT.glob(f"trtbuild/**/{p}"))
        if not ok:
            missing.append(p)
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_path_check_catches_a_missing_path() -> None:
    assert _named_paths("see `trtbuild/nowhere.py` and `recipe.yaml:14:7` and `plan --status`") == \
        ["trtbuild/nowhere.py"]
    assert not (ROOT / "trtbuild/nowhere.py").exists()
