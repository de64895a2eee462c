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


_ADD_FORMAT = """
import dataclasses, json, sys
from pathlib import Path
import trtbuild.formats as formats
formats.WEIGHT_FORMATS["int6_test"] = dataclasses.replace(formats.WEIGHT_FORMATS["int8_wo"], name="int6_test", bits=6)

from trtbuild.plan.planner import make_plan
from trtbuild.recipe.loader import load_recipe
from trtbuild.recipe.schema import Recipe

out = {"enum": Recipe.model_json_schema()["$defs"]["Quantization"]["properties"]["weights"]["enum"]}
for fmt in ("int8_wo", "int6_test", "int4_wo"):
    Path(sys.argv[1], "recipe.yaml").write_text(
        "recipe: 1\\nname: t\\nmodel:\\n  source: ./model\\nquantization: {weights: %s}\\n" % fmt)
    plan = make_plan(load_recipe(Path(sys.argv[1], "recipe.yaml")), "a100")
    out[fmt] = {"feasible": plan.feasible, "weights_bytes": plan.memory["weights_bytes_per_rank"],
                "errors": [d.message for d in plan.diagnostics if d.severity == "error"],
                "ckpt": plan.stage("checkpoint").params["weights"]}
print(json.dumps(out))
"""


def test_a_new_format_is_one_table_entry(tmp_path: Path) -> None:
    """A test-only 6-bit weight-only format, added to the table alone, is accepted by the schema, runs on the
    GPU catalog and the architecture catalog, and sizes the memory plan between the 8- and 4-bit formats."""
    import json
    import subprocess
    import sys

    (tmp_path / "model").mkdir()
    shutil.copy(MODELS / "llama-3.1-8b-instruct" / "config.json", tmp_path / "model" / "config.json")
    run = subprocess.run([sys.executable, "-c", _ADD_FORMAT, str(tmp_path)], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert "int6_test" in out["enum"]
    six, eight, four = out["int6_test"], out["int8_wo"], out["int4_wo"]
    assert six["feasible"] and not six["errors"] and six["ckpt"] == "int6_test"
    assert four["weights_bytes"] < six["weights_bytes"] < eight["weights_bytes"]


def test_table_matches_what_the_stages_were_checked_against() -> None:
    """Facts the table carries, pinned: the FP8 family (trtllm-build keeps FP8 context FMHA for exactly these
    checkpoint quant_algos), the calibrated formats, and the SM ranges read from the builder-refusal fixture."""
    from trtbuild import formats

    assert formats.fp8_family() == ("fp8", "w4a8_awq", "nvfp4")
    assert formats.fp8_family_algos() == {"FP8", "W4A8_AWQ", "NVFP4"}
    assert set(formats.calibrated_weights()) == {"fp8", "int8_sq", "int4_awq", "w4a8_awq", "nvfp4"}
    assert formats.weight_bits("w4a8_awq", 2) == 4 and formats.weight_bits("none", 2) == 16
    assert formats.builder_refused_sms("fp8") == ()
    assert [r[:2] for r in formats.builder_refused_sms("int8_sq")] == [(100, 119)]
    assert "SmoothQuant" in formats.builder_refused_sms("int8_sq")[0][2]


def test_schema_descriptions_name_every_format() -> None:
    from trtbuild.commands.planning import recipe_schema
    from trtbuild.formats import KV_FORMATS, WEIGHT_FORMATS

    props = recipe_schema()["$defs"]["Quantization"]["properties"]
    for name in WEIGHT_FORMATS:
        assert name in props["weights"]["description"]
    for name in KV_FORMATS:
        assert name in props["kv_cache"]["description"] or name == "none"
