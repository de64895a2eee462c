"""Issue 14, item 2: every suggestion the planner prints plans without a new error, and every recipe a user is
shown (recipes/, the README) plans feasibly on every GPU it names.

The suggestion test is generic: it plans many recipes (the shipped ones, the README's, and variants that
trip each rule) on every GPU of the catalog, applies each suggested fix (``diagnostics[].fixes``, parsed
from the message) in that GPU's override, and replans. Rules added later are covered as they come.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli.recipes import (
    RECIPES,
    readme_recipes,
    shipped_recipes,
    with_absolute_config,
    write_data,
    write_like_readme,
)
from trtbuild.catalog.gpus import all_gpus
from trtbuild.plan.planner import apply_fix, make_plan, suggested_fixes
from trtbuild.recipe.loader import load_recipe

GPUS = [g.key for g in all_gpus()]
BASE = RECIPES / "llama-3.1-8b-fp8.yaml"

# Variants of the Llama-3.1-8B recipe, each tripping one rule (or a pair) on some GPUs.
VARIANTS: dict[str, dict[str, Any]] = {
    "as shipped": {},
    "int8 kv": {"quantization.kv_cache": "int8"},
    "awq with fp8 kv": {"quantization.weights": "int4_awq", "quantization.kv_cache": "fp8"},
    "no paged context fmha": {"build.paged_context_fmha": False},
    "no paged fmha, no retention": {"build.paged_context_fmha": False, "runtime.kv_cache.retention.rules": []},
    "no chunked context": {"runtime.chunked_context": False, "build.max_num_tokens": 1024},
    "input longer than seq": {"build.max_input_len": 20000},
    "runtime batch above build": {"runtime.max_batch_size": 1000},
    "kv max tokens too small": {"runtime.kv_cache.max_tokens": 100},
    "fp8 fmha with awq": {"build.fp8_context_fmha": True, "quantization.weights": "int4_awq",
                          "quantization.kv_cache": "none"},
    "fp8 gemm without fp8": {"build.gemm_plugin": "fp8", "quantization.weights": "none",
                             "quantization.kv_cache": "none"},
    "weight streaming off": {"runtime.gpu_weights_percent": 0.5},
    "float32": {"dtype": "float32"},
    "nvfp4": {"quantization.weights": "nvfp4"},
    "w4a8": {"quantization.weights": "w4a8_awq"},
    "reuse off with retention": {"runtime.kv_cache.reuse": False},
    "continuous kv": {"build.kv_cache.type": "continuous"},
    "bf16 long context": {"quantization.weights": "none", "quantization.kv_cache": "none",
                          "build.max_seq_len": 131072, "build.max_input_len": 65536, "build.max_batch_size": 256},
    "70b bf16": {"model.config": str(RECIPES / "models" / "llama-3.1-70b-instruct" / "config.json"),
                 "quantization.weights": "none", "quantization.kv_cache": "none"},
}

# Rules whose suggestions the corpus must exercise (a guard: the test cannot pass by finding none).
EXPECTED_RULES = {"quant.sm", "kv_quant.paged_context_fmha", "memory.fit", "kv.reuse.paged_context_fmha",
                  "chunked_context.paged_context_fmha", "len.num_tokens_vs_input", "len.input_vs_seq",
                  "runtime.max_batch_size", "runtime.kv_max_tokens", "fp8_context_fmha.quant", "gemm_plugin.quant",
                  "weight_streaming", "dtype.float32", "kv.retention.reuse", "batching.paged_kv"}


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _variant(name: str) -> dict[str, Any]:
    data = with_absolute_config(yaml.safe_load(BASE.read_text()), BASE.parent)
    data["targets"] = {}  # the variants are about the base settings on each GPU
    for key, value in VARIANTS[name].items():
        _set(data, key, copy.deepcopy(value))
    return data


def _errors(plan: Any) -> set[tuple[str, str]]:
    return {(d.rule, d.path) for d in plan.errors}


def _check_fixes(tmp_path: Path, data: dict[str, Any], label: str) -> tuple[set[str], list[str]]:
    """Apply every suggested fix of every error on every GPU; (rules with fixes, problems)."""
    src = write_data(tmp_path / "recipe.yaml", data)
    loaded = load_recipe(src)
    rules: set[str] = set()
    problems: list[str] = []
    for gpu in GPUS:
        plan = make_plan(loaded, gpu)
        before = _errors(plan)
        for diag in plan.errors:
            for fix in diag.fixes:
                rules.add(diag.rule)
                fixed = write_data(tmp_path / "fixed.yaml", apply_fix(data, gpu, fix))
                after = make_plan(load_recipe(fixed), gpu)
                now = _errors(after)
                if (diag.rule, diag.path) in now or now - before:
                    problems.append(f"{label} on {gpu}: [{diag.rule}] suggests {fix}, which leaves "
                                    f"{sorted(now)} (before: {sorted(before)})\n    {diag.message}")
    return rules, problems


def test_every_suggestion_plans_without_a_new_error(tmp_path: Path) -> None:
    rules: set[str] = set()
    problems: list[str] = []
    for name in VARIANTS:
        found, bad = _check_fixes(tmp_path, _variant(name), name)
        rules |= found
        problems += bad
    for recipe in shipped_recipes():
        data = with_absolute_config(yaml.safe_load(recipe.read_text()), recipe.parent)
        found, bad = _check_fixes(tmp_path, data, recipe.name)
        rules |= found
        problems += bad
    assert not problems, "\n".join(problems[:15])
    assert rules >= EXPECTED_RULES, f"no suggestion was exercised for {sorted(EXPECTED_RULES - rules)}"


def test_the_kv_chain_of_the_issue(tmp_path: Path) -> None:
    """quant.sm on A100 used to say "try kv_cache: int8", which leads into kv_quant.paged_context_fmha."""
    data = _variant("as shipped")  # fp8 weights + fp8 KV, reuse and chunked context on
    loaded = load_recipe(write_data(tmp_path / "r.yaml", data))
    plan = make_plan(loaded, "a100")
    kv = next(d for d in plan.errors if d.rule == "quant.sm" and d.path == "quantization.kv_cache")
    assert kv.fixes == ({"quantization.kv_cache": "none"},)
    weights = next(d for d in plan.errors if d.rule == "quant.sm" and d.path == "quantization.weights")
    both = apply_fix(apply_fix(data, "a100", kv.fixes[0]), "a100", weights.fixes[0])
    assert make_plan(load_recipe(write_data(tmp_path / "f.yaml", both)), "a100").feasible


def test_fixes_are_parsed_from_the_message() -> None:
    assert suggested_fixes("try parallelism.tp: 2 or quantization.weights: fp8 (weights 1.0 GiB)") == (
        {"parallelism.tp": 2}, {"quantization.weights": "fp8"})
    assert suggested_fixes("try quantization.weights: int4_awq with quantization.kv_cache: none here") == (
        {"quantization.weights": "int4_awq", "quantization.kv_cache": "none"},)
    assert suggested_fixes("set build.paged_context_fmha: true with build.kv_cache.type: paged or "
                           "runtime.chunked_context: false") == (
        {"build.paged_context_fmha": True, "build.kv_cache.type": "paged"}, {"runtime.chunked_context": False})
    assert suggested_fixes("needs targets: override, gpus: and foo.bar: 1") == ()  # not recipe keys / values


@pytest.mark.parametrize("recipe", shipped_recipes(), ids=lambda p: str(p.relative_to(RECIPES)))
def test_shipped_recipes_name_their_gpus_and_plan_on_each(recipe: Path) -> None:
    loaded = load_recipe(recipe)
    assert loaded.gpus, f"{recipe} lists no gpus:"
    for gpu in loaded.gpus:
        plan = make_plan(loaded, gpu)
        assert plan.feasible, (gpu, [d.format() for d in plan.errors])
    assert set(loaded.targets) <= set(loaded.gpus)


def test_readme_recipes_plan_on_every_gpu_they_name(tmp_path: Path) -> None:
    texts = readme_recipes()
    assert texts, "the README shows no recipe"
    for i, text in enumerate(texts):
        loaded = load_recipe(write_like_readme(tmp_path, text, f"readme-{i}.yaml"))
        assert loaded.gpus, f"README recipe {i} lists no gpus:"
        for gpu in loaded.gpus:
            plan = make_plan(loaded, gpu)
            assert plan.feasible, (i, gpu, [d.format() for d in plan.errors])
