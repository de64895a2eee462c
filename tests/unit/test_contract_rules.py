"""Planner rules derived from NVIDIA's code: builder refusals by SM, the NVFP4 gemm rewrite, strip_plan,
retention ranges. Each is checked through `make_plan` (what a user runs) and against the fixtures."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

from trtbuild.catalog.gpus import all_gpus, get_gpu
from trtbuild.contracts.trtllm import builder_refusal
from trtbuild.plan.contract_rules import buildable_weights, builder_refuses
from trtbuild.plan.planner import BuildPlan, make_plan
from trtbuild.recipe.loader import load_recipe

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "recipes" / "models"
BLACKWELL_DC = ("b200", "gb200", "b300", "gb300")


def _plan(tmp_path: Path, model: str, gpu: str, body: str = "") -> BuildPlan:
    mdir = tmp_path / "model"
    mdir.mkdir(exist_ok=True)
    shutil.copy(MODELS / model / "config.json", mdir / "config.json")
    p = tmp_path / "recipe.yaml"
    p.write_text("recipe: 1\nname: t\nmodel:\n  source: ./model\n" + textwrap.dedent(body))
    return make_plan(load_recipe(p), gpu)


def _errors(plan: BuildPlan, rule: str) -> list:
    return [d for d in plan.diagnostics if d.rule == rule and d.severity == "error"]


def test_the_blackwell_datacenter_gpus_are_sm_100_to_119():
    assert {g.key for g in all_gpus() if 100 <= g.sm <= 119} == set(BLACKWELL_DC)


def test_the_shipped_mistral_int4_awq_recipe_does_not_plan_for_blackwell():
    loaded = load_recipe(ROOT / "recipes" / "mistral-7b-int4-awq.yaml")
    for gpu in BLACKWELL_DC:
        plan = make_plan(loaded, gpu)
        assert not plan.feasible
        (finding,) = _errors(plan, "quant.builder_refusal")
        assert "INT8/INT4 quantization is not supported on SM>=100." in finding.message
        assert finding.path == "quantization.weights" and finding.position  # points at the recipe line
        assert "try quantization.weights: fp8 in a targets: " in finding.message  # Mistral has no nvfp4 export
    for gpu in ("a100", "l4", "h100", "rtx-5090"):  # SM 120 is outside the builder's range
        assert make_plan(loaded, gpu).feasible, gpu


@pytest.mark.parametrize(("weights", "kv", "message", "path"), [
    ("int4_awq", "none", "INT8/INT4 quantization is not supported on SM>=100.", "quantization.weights"),
    ("w4a8_awq", "none", "INT8/INT4 quantization is not supported on SM>=100.", "quantization.weights"),
    ("int8_wo", "none", "INT8/INT4 quantization is not supported on SM>=100.", "quantization.weights"),
    ("int4_wo", "none", "INT8/INT4 quantization is not supported on SM>=100.", "quantization.weights"),
    ("int8_sq", "none", "SmoothQuant is not supported on SM>=100.", "quantization.weights"),
    ("fp8", "int8", "INT8/INT4 quantization is not supported on SM>=100.", "quantization.kv_cache"),
])
def test_refused_formats_on_b200(tmp_path, weights, kv, message, path):
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "b200",
                 f"dtype: bfloat16\nquantization: {{weights: {weights}, kv_cache: {kv}}}\n"
                 "runtime: {kv_cache: {reuse: false}}\n")
    (finding,) = _errors(plan, "quant.builder_refusal")
    assert message in finding.message and finding.path == path
    assert builder_refusal(100, *{"int4_awq": ("W4A16_AWQ",), "w4a8_awq": ("W4A8_AWQ",), "int8_wo": ("W8A16",),
                                  "int4_wo": ("W4A16",), "int8_sq": ("W8A8_SQ_PER_CHANNEL",),
                                  "fp8": ("FP8",)}[weights], {"none": None, "int8": "INT8"}[kv]) is not None


def test_buildable_formats_per_gpu():
    assert buildable_weights(get_gpu("b200")) == ["none", "fp8", "nvfp4"]
    assert buildable_weights(get_gpu("rtx-5090")) == buildable_weights(get_gpu("rtx-pro-6000"))
    assert "int4_awq" in buildable_weights(get_gpu("rtx-5090"))
    assert buildable_weights(get_gpu("a100")) == ["none", "int4_awq", "int8_sq", "int8_wo", "int4_wo"]
    assert builder_refuses(get_gpu("cpu"), "int4_awq", "int8") is None


def test_memory_suggestions_never_lead_into_a_refused_format(tmp_path):
    """A ~210B Llama in fp8 does not fit one B200; of the 4-bit formats only nvfp4 builds there."""
    import json

    plan = _plan(tmp_path, "llama-3.1-70b-instruct", "b200",
                 "dtype: bfloat16\nquantization: {weights: fp8}\nbuild: {max_seq_len: 8192, max_input_len: 4096}\n")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    (tmp_path / "model" / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 240}))
    plan = make_plan(load_recipe(tmp_path / "recipe.yaml"), "b200")
    fit = [d for d in plan.errors if d.rule.startswith("memory.")]
    assert fit, [d.format() for d in plan.diagnostics]
    assert re.findall(r"quantization\.weights: (\w+)", fit[0].message) == ["nvfp4"]
    h100 = make_plan(load_recipe(tmp_path / "recipe.yaml"), "h200")  # SM 90: int4_awq builds, nvfp4 does not run
    hints = [re.findall(r"quantization\.weights: (\w+)", d.message) for d in h100.errors if d.rule.startswith("memory.")]
    assert hints and hints[0] == ["int4_awq"]


def test_nvfp4_with_an_explicit_gemm_plugin_says_what_the_builder_records(tmp_path):
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "b200",
                 "dtype: bfloat16\nquantization: {weights: nvfp4}\nbuild: {gemm_plugin: bfloat16}\n")
    assert plan.feasible
    (info,) = [d for d in plan.diagnostics if d.rule == "gemm_plugin.nvfp4"]
    assert info.severity == "info" and "records gemm_plugin nvfp4, not bfloat16" in info.message


def test_strip_plan_is_refused_with_the_reason(tmp_path):
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", "dtype: bfloat16\nbuild: {strip_plan: true}\n")
    (finding,) = _errors(plan, "build.strip_plan")
    assert "trtllm-refit" in finding.message and "Remove build.strip_plan" in finding.message
    assert not plan.feasible
    cpu = _plan(tmp_path, "llama-3.1-8b-instruct", "cpu", "build: {strip_plan: true}\n")
    assert not _errors(cpu, "build.strip_plan")


RETENTION = """\
dtype: bfloat16
build: {{max_seq_len: 4096, max_input_len: 2048}}
runtime:
  kv_cache:
    retention:
      rules:
{rules}
"""


@pytest.mark.parametrize(("rules", "findings"), [
    ("        - {tokens: {start: 5000, end: 6000}, priority: 90}", {("kv.retention.range", "error")}),
    ("        - {tokens: {start: 4096}, priority: 90}", {("kv.retention.range", "error")}),
    ("        - {tokens: {start: 3000, end: 3500}, priority: 90}", {("kv.retention.range", "warning")}),
    ("        - {tokens: prompt, priority: 60}\n        - {tokens: system_prompt, priority: 90}",
     {("kv.retention.shadowed", "warning")}),
    ("        - {tokens: {start: 0, end: 512}, priority: 60}\n        - {tokens: {start: 10, end: 100}, priority: 90}",
     {("kv.retention.shadowed", "warning")}),
    ("        - {tokens: system_prompt, priority: 90}\n        - {tokens: prompt, priority: 60}", set()),
    ("        - {tokens: {start: 0, end: 64}, priority: 60}\n        - {tokens: {start: 32}, priority: 90}", set()),
])
def test_retention_rules_that_can_never_apply(tmp_path, rules, findings):
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", RETENTION.format(rules=rules))
    got = {(d.rule, d.severity) for d in plan.diagnostics if d.rule.startswith("kv.retention.")}
    assert got == findings, [d.format() for d in plan.diagnostics]
    assert all(d.path.startswith("runtime.kv_cache.retention.rules.") for d in plan.diagnostics
               if d.rule in ("kv.retention.range", "kv.retention.shadowed"))


def test_weights_and_kv_cache_refused_together_are_two_findings(tmp_path):
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "gb300",
                 "dtype: bfloat16\nquantization: {weights: int8_sq, kv_cache: int8}\n"
                 "runtime: {kv_cache: {reuse: false}}\n")
    found = {d.path: d.message for d in _errors(plan, "quant.builder_refusal")}
    assert set(found) == {"quantization.weights", "quantization.kv_cache"}
    assert "SmoothQuant is not supported on SM>=100." in found["quantization.weights"]
    assert "has_int8_kv_cache" in found["quantization.kv_cache"] and "quantization.kv_cache: fp8" in \
        found["quantization.kv_cache"]
