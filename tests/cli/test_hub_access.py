"""Issue 14, item 6: Hugging Face credentials and offline use, as a user meets them with `lock` and `init`.

The real huggingface_hub client talks to a fake Hub on 127.0.0.1 (tests/cli/fakehub.py): the token saved
by `hf auth login` is honoured, a gated model without a token and an unreachable Hub are one clear sentence
(exit 4, documented), never a raw ConnectionError or a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.cli.conftest import TOKEN
from tests.cli.recipes import README, RECIPES, with_absolute_config, write_data
from trtbuild.repository.server import free_port

LLAMA = RECIPES / "llama-3.1-8b-fp8.yaml"


def _recipe(tmp_path: Path, source: Path = LLAMA) -> Path:
    data = with_absolute_config(yaml.safe_load(source.read_text()), source.parent)
    return write_data(tmp_path / source.name, data)


def _clean(r) -> None:  # type: ignore[no-untyped-def]
    text = r.stdout + r.stderr
    assert "Traceback" not in text and "ConnectionError" not in text, text
    assert TOKEN not in text


def test_lock_uses_the_token_saved_by_hf_auth_login(cli, tmp_path: Path, hub_env, fake_hub) -> None:
    recipe = _recipe(tmp_path)
    r = cli("lock", str(recipe), env=hub_env)
    assert r.returncode == 0, r.stderr
    _clean(r)
    lock = json.loads(recipe.with_name("llama-3.1-8b-fp8.lock.json").read_text())
    assert lock["model"]["revision"] == "0e9e39f249a16976918f6564b8830bc894c89659"
    assert set(lock["model"]["files"]) == {"config.json", "model.safetensors", "tokenizer.json",
                                           "tokenizer_config.json"}
    assert f"Bearer {TOKEN}" in fake_hub.seen_auth  # the gated repository was read with the saved token
    # No TensorRT-LLM here: the model is locked anyway and the note says what to do about the toolchain.
    assert "toolchain not recorded" in r.stderr and "trtllm-build" in r.stderr


def test_gated_model_without_a_token_says_how_to_log_in(cli, tmp_path: Path, hub_env) -> None:
    Path(hub_env["HF_HOME"], "token").unlink()
    r = cli("lock", str(_recipe(tmp_path)), env=hub_env)
    assert r.returncode == 4, r.stderr
    _clean(r)
    assert "is gated" in r.stderr and "HF_TOKEN" in r.stderr and "hf auth login" in r.stderr


def test_unreachable_hub_says_no_network(cli, tmp_path: Path, hub_env) -> None:
    env = dict(hub_env, HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    r = cli("lock", str(_recipe(tmp_path)), env=env)
    assert r.returncode == 4, r.stderr
    _clean(r)
    assert "no network" in r.stderr and "HF_HUB_OFFLINE" in r.stderr


def test_readme_names_hf_token_and_hf_auth_login() -> None:
    text = README.read_text()
    assert "HF_TOKEN" in text and "hf auth login" in text
