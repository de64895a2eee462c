"""Fixtures: a real registry (skipped with a reason when docker-registry is missing), an artifact dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_server import BINARY, RegistryServer, make_artifact_dir


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    if BINARY is None:
        pytest.skip("docker-registry is not installed (`make system-deps` installs Debian's docker-registry)")
    server = RegistryServer(tmp_path / "registry")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def artifact_dir(tmp_path: Path) -> Path:
    return make_artifact_dir(tmp_path / "artifact")
