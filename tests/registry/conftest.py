"""Fixtures: an artifact dir (the real registry fixture is in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_server import make_artifact_dir


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    return make_artifact_dir(tmp_path / "artifact")
