"""Fixtures of the first-hour tests: a fake Hugging Face Hub serving the example recipes' models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cli.fakehub import FakeHub, FakeRepo
from tests.cli.recipes import RECIPES

TOKEN = "hf_fake_token_for_tests"


def _safetensors(seed: bytes) -> bytes:
    header = json.dumps({"w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
    return len(header).to_bytes(8, "little") + header + (seed * 8)[:8]


def example_repos() -> dict[str, FakeRepo]:
    """Every hf:// model of recipes/*.yaml at its pinned commit, with its real config.json and small fake
    weights; the Llama models are gated, as on the Hub."""
    repos: dict[str, FakeRepo] = {}
    for recipe in sorted(RECIPES.glob("*.yaml")):
        data = yaml.safe_load(recipe.read_text())
        repo, _, commit = data["model"]["source"][len("hf://"):].partition("@")
        config = (recipe.parent / data["model"]["config"]).read_bytes()
        repos[repo] = FakeRepo(files={"config.json": config, "model.safetensors": _safetensors(repo.encode()),
                                      "tokenizer.json": b"{}", "tokenizer_config.json": b"{}"},
                               commit=commit, gated=repo.startswith("meta-llama/"))
    return repos


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub(example_repos(), token=TOKEN).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def hub_env(tmp_path: Path, fake_hub: FakeHub) -> dict[str, str]:
    """Environment of a user online against the fake Hub, logged in with `hf auth login` (the token file
    in HF_HOME, no HF_TOKEN), with empty caches."""
    home = tmp_path / "hf-home"
    home.mkdir()
    (home / "token").write_text(TOKEN)
    return {"HF_ENDPOINT": fake_hub.endpoint, "HF_HOME": str(home), "HF_HUB_OFFLINE": "0", "HF_TOKEN": "",
            "HF_HUB_CACHE": str(home / "hub"), "TRTBUILD_CACHE_DIR": str(tmp_path / "cache"),
            "HF_HUB_DISABLE_TELEMETRY": "1"}
