"""The quantization-format table (trtbuild/formats.py) and what derives from it."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from trtbuild.plan.planner import make_plan
from trtbuild.recipe.loader import load_recipe

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "recipes" / "models"


def _plan_70b(tmp_path: Path, gpu: str, body: str):  # type: ignore[no-untyped-def]
    (tmp_path / "model").mkdir(exist_ok=True)
    shutil.copy(MODELS / "llama-3.1-70b-instruct" / "config.json", tmp_path / "model" / "config.json")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("recipe: 1\nname: t\nmodel:\n  source: ./model\n" + textwrap.dedent(body))
    return make_plan(load_recipe(recipe), gpu)


def test_fit_suggestions_know_w4a8_awq_stores_4_bit_weights(tmp_path: Path) -> None:
    """BUG (issue 12 item 1): the planner took w4a8_awq for an 8-bit format, so from int8_sq weights it never
    suggested it. Here int4_awq would break KV reuse (an FP8 KV cache needs an FP8-family format) and
    w4a8_awq is the one 4-bit format that fits and plans clean."""
    plan = _plan_70b(tmp_path, "l40s", """\
        quantization: {weights: int8_sq, kv_cache: fp8}
        build: {max_seq_len: 4096, max_input_len: 2048}
        """)
    fit = [d for d in plan.diagnostics if d.rule == "memory.fit"]
    assert len(fit) == 1
    assert "try quantization.weights: w4a8_awq" in fit[0].message
    assert "int4_awq" not in fit[0].message


def test_fit_suggestions_never_offer_a_format_as_small_as_the_current_one(tmp_path: Path) -> None:
    plan = _plan_70b(tmp_path, "l4", """\
        quantization: {weights: w4a8_awq}
        build: {max_seq_len: 4096, max_input_len: 2048}
        """)
    fit = [d for d in plan.diagnostics if d.rule == "memory.fit"]
    assert len(fit) == 1
    for fmt in ("int4_awq", "int4_wo", "nvfp4"):
        assert f"quantization.weights: {fmt}" not in fit[0].message
