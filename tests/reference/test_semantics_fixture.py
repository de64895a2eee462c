"""The backend-semantics fixture: complete, well formed, and (given a checkout) still true of the source.

Set TRTLLM_SOURCE to a checkout of NVIDIA/TensorRT-LLM at the recorded commits to re-check every quote
at its file:line; files the checkout lacks are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

SOURCE = re.compile(r"([\w.]+?)(?::([\d,\-]+))?(?:\s|$)")


def _rules(semantics):
    return semantics["request"] + semantics["responses"] + semantics["validation"]


def test_every_rule_names_a_recorded_source_and_a_quote(semantics) -> None:
    for item in _rules(semantics):
        match = SOURCE.match(item["source"])
        assert match and match.group(1) in semantics["sources"], item["id"]
        assert item["quote"].strip(), item["id"]
    ids = [item["id"] for item in _rules(semantics)]
    assert len(ids) == len(set(ids))
    for name, src in semantics["sources"].items():
        assert src["repo"] == "NVIDIA/TensorRT-LLM" and src["path"].endswith(name.split(":")[0]), name
        assert src.get("commit") or src.get("note"), f"{name}: neither a commit nor a note on the version read"


def test_outputs_are_exactly_the_templates_outputs(semantics) -> None:
    from trtbuild.repository.render import TEMPLATES_DIR

    config = (TEMPLATES_DIR / "tensorrt_llm" / "config.pbtxt.j2").read_text()
    declared = set(re.findall(r'\{ name: "(\w+)"', config.split("output [", 1)[1].split("]\n", 1)[0]))
    assert declared - {"context_phase_params"} == set(semantics["outputs"])


@pytest.mark.skipif(not os.environ.get("TRTLLM_SOURCE"), reason="TRTLLM_SOURCE (a TensorRT-LLM checkout) not set")
def test_quotes_are_found_at_their_lines_in_a_checkout(semantics) -> None:
    root = Path(os.environ["TRTLLM_SOURCE"])
    checked = 0
    for item in _rules(semantics):
        match = SOURCE.match(item["source"])
        path = root / semantics["sources"][match.group(1)]["path"]
        if not path.is_file():
            continue
        lines = path.read_text(encoding="utf-8").split("\n")
        if match.group(2):
            wanted = [i for part in match.group(2).split(",")
                      for i in range(int(part.partition("-")[0]) - 1, int(part.partition("-")[2] or part.partition("-")[0]))]
            text = "\n".join(lines[i] for i in wanted)
        else:
            text = "\n".join(lines)
        assert item["quote"] in text, f"{item['id']}: {item['quote']!r} not at {item['source']}"
        checked += 1
    assert checked, "no recorded source file found under TRTLLM_SOURCE"
