"""The stored fixtures are exactly what the parsers make of NVIDIA's files (when a saved copy is here).

The saved files live outside the repository (never commit upstream code): ``$TRTBUILD_UPSTREAM`` or
/work/upstream/NVIDIA/TensorRT-LLM, laid out as ``<version>/<path>``. Without them this test is skipped and the
parsers are still covered by test_parsers.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trtbuild.contracts import load_fixture
from trtbuild.contracts.regenerate import SPECS, SourceTree, dump, regenerate

SHELF = Path(os.environ.get("TRTBUILD_UPSTREAM", "/work/upstream/NVIDIA/TensorRT-LLM"))


@pytest.mark.parametrize("name", sorted(SPECS))
def test_stored_fixture_matches_a_regeneration_from_the_saved_sources(name):
    fixture = load_fixture(name)
    missing = [s.path for s in fixture.sources if not (SHELF / (s.version or s.commit or "") / s.path).is_file()]
    if missing:
        pytest.skip(f"no saved upstream copy of {', '.join(missing)} under {SHELF}")
    assert dump(regenerate(name, SourceTree(shelf=SHELF))) == fixture.path.read_text(encoding="utf-8"), \
        f"{name} is stale: run python -m trtbuild.contracts.regenerate --shelf {SHELF}"
