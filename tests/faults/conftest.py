"""Fault injection (issue 11): one real compile of the tiny model (fake toolchain for the engine step), shared;
each test tampers with its own copy of the cache, the working directory, the registry or the input.

``built`` compiles once per session (an h100 engine target and the cpu reference) into a cache and an output
directory that no test changes; ``project`` gives a test its own recipe directory, cache copy and output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .faultlib import Project, make_project


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trtbuild.demo.tiny_model import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("faults-model") / "model")


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Project:
    """One compile (h100 + cpu); its cache and output are read-only for tests (copy them to tamper)."""
    project = make_project(tmp_path_factory.mktemp("faults-built"), tiny_model)
    r = project.compile()
    assert r.returncode == 0, r.stderr[-3000:]
    return project


@pytest.fixture
def project(tmp_path: Path, tiny_model: Path, built: Project) -> Project:
    """A project of its own with a copy of ``built``'s cache (everything cached)."""
    p = make_project(tmp_path / "project", tiny_model)
    shutil.copytree(built.cache, p.cache, symlinks=True)
    return p
