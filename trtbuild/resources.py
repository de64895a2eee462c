"""Where the Triton model templates (`repo_templates/`) and topologies (`ensembles/`) are.

In a source checkout (and an editable install) they are the top-level directories of the repository;
a wheel carries them as the package data `trtbuild/repo_templates` and `trtbuild/ensembles`
(pyproject's package-dir mapping).
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    source_tree = _PKG.parent / name
    if source_tree.is_dir():
        return source_tree
    return _PKG / name


def templates_dir() -> Path:
    return _find("repo_templates")


def topologies_dir() -> Path:
    return _find("ensembles")
