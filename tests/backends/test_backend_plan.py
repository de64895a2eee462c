"""The backend in the recipe: defaults, per-target override, stages, keys and the backend.* diagnostics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from trtbuild.backends import BACKENDS, backend_of_manifest, default_backend, get_backend
from trtbuild.catalog.gpus import get_gpu
from trtbuild.errors import UsageError


def plan(recipe: Path, gpu: str):  # type: ignore[no-untyped-def]
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe

    return make_plan(load_recipe(recipe), gpu)


def rules(p, severity: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    return [d.rule for d in p.diagnostics if severity is None or d.severity == severity]


def test_four_backends_and_defaults_from_the_hardware() -> None:
    assert set(BACKENDS) == {"trtllm_engine", "reference", "vllm", "llmapi"}
    assert default_backend(get_gpu("h100")).name == "trtllm_engine"
    assert default_backend(get_gpu("cpu")).name == "reference"
    assert BACKENDS["trtllm_engine"].has_engine and not BACKENDS["vllm"].has_engine
    with pytest.raises(UsageError, match="expected one of trtllm_engine, reference, vllm, llmapi"):
        get_backend("tgi")

    class M:
        backend = "python-reference"
    assert backend_of_manifest(M()).name == "reference"


def test_default_backend_keeps_todays_stages(project: Callable[..., Path]) -> None:
    recipe = project()
    gpu, cpu = plan(recipe, "h100"), plan(recipe, "cpu")
    assert gpu.backend == "trtllm_engine" and cpu.backend == "reference"
    assert [s.name for s in gpu.stages] == ["fetch", "checkpoint", "engine", "repository"]
    assert [s.name for s in cpu.stages] == ["fetch", "repository"]
    assert gpu.stage("repository").params["backend"] == "tensorrtllm"
    assert cpu.stage("repository").params["backend"] == "python-reference"


def test_vllm_backend_has_no_engine_and_its_own_stage_key(project: Callable[..., Path]) -> None:
    reference = plan(project(), "cpu")
    vllm = plan(project("backend: vllm\n"), "cpu")
    assert vllm.feasible, [d.format() for d in vllm.diagnostics]
    assert vllm.backend == "vllm"
    assert [s.name for s in vllm.stages] == ["fetch", "repository"]
    assert vllm.stage("repository").params["backend"] == "vllm"
    # keys are the fingerprints, filled in when a target is resolved (test_backend_compile checks them);
    # what feeds them: the same fetch, a different repository
    assert vllm.stage("fetch").params == reference.stage("fetch").params
    assert vllm.stage("repository").params != reference.stage("repository").params
    on_gpu = plan(project("backend: vllm\n"), "h100")
    assert on_gpu.feasible and [s.name for s in on_gpu.stages] == ["fetch", "repository"]


def test_per_target_override(project: Callable[..., Path]) -> None:
    recipe = project("gpus: [h100, a100, cpu]\nbackend: vllm\ntargets: {h100: {backend: llmapi}, "
                     "a100: {backend: trtllm_engine}}\n")
    assert plan(recipe, "h100").backend == "llmapi"
    assert plan(recipe, "a100").backend == "trtllm_engine"
    assert plan(recipe, "cpu").backend == "vllm"


@pytest.mark.parametrize(("backend", "gpu"), [("llmapi", "cpu"), ("reference", "h100"), ("trtllm_engine", "cpu")])
def test_backend_hardware(project: Callable[..., Path], backend: str, gpu: str) -> None:
    p = plan(project(f"backend: {backend}\n"), gpu)
    assert not p.feasible
    assert rules(p, "error")[0] == "backend.hardware"
    d = p.errors[0]
    assert d.path == "backend" and backend in d.message
    assert d.position is not None and d.position.endswith(":7:10")  # the recipe's `backend:` line


def test_backend_format_for_weights_the_backend_cannot_load(project: Callable[..., Path]) -> None:
    p = plan(project("backend: vllm\nquantization: {weights: fp8}\n"), "h100")
    assert not p.feasible
    errors = [d for d in p.errors]
    assert [d.rule for d in errors] == ["backend.format"]  # not repeated by vllm.quantization
    assert errors[0].path == "quantization.weights" and "fp8" in errors[0].message
    # the engine-build rules (quant.sm, awq.block, ...) are not about this backend
    p = plan(project("backend: llmapi\nquantization: {weights: fp8}\n"), "a100")  # SM 80: no fp8 engines either
    assert rules(p, "error") == ["backend.format"]
    # the engine backend loads them
    assert "backend.format" not in rules(plan(project("quantization: {weights: fp8}\n"), "h100"))


def test_backend_setting_warns_about_engine_only_settings(project: Callable[..., Path]) -> None:
    recipe = project("backend: llmapi\n", build=", gemm_plugin: float16, multiple_profiles: true")
    p = plan(recipe, "h100")
    assert p.feasible
    [d] = [d for d in p.diagnostics if d.rule == "backend.setting"]
    assert d.severity == "warning" and "build.gemm_plugin" in d.message and "build.multiple_profiles" in d.message
    engine = plan(project(build=", gemm_plugin: float16"), "h100")
    assert "backend.setting" not in rules(engine)


def test_backend_mapping_findings_reach_the_plan(project: Callable[..., Path]) -> None:
    p = plan(project("backend: vllm\n", runtime=", batching: static"), "cpu")
    assert "vllm.batching" in rules(p, "warning")
    d = next(d for d in p.diagnostics if d.rule == "vllm.batching")
    assert d.position is not None  # points into the recipe like every other diagnostic


def test_plan_cli_shows_the_backend(cli, project: Callable[..., Path], env: dict[str, str]) -> None:
    recipe = project("backend: vllm\n")
    r = cli("plan", str(recipe), "--gpu", "cpu", "--json", env=env)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    plans = data if isinstance(data, list) else data.get("plans", [data])
    assert plans[0]["backend"] == "vllm"
    r = cli("plan", str(recipe), "--gpu", "cpu", env=env)
    assert r.returncode == 0, r.stderr
    assert "backend     vllm: vLLM's engine API" in r.stdout
    r = cli("plan", str(project("backend: llmapi\n")), "--gpu", "cpu", env=env)
    assert r.returncode == 3
    assert "backend.hardware" in r.stdout + r.stderr


def test_schema_lists_the_backends(cli) -> None:
    r = cli("schema")
    assert r.returncode == 0, r.stderr
    schema = json.loads(r.stdout)
    assert schema["properties"]["backend"]["anyOf"][0]["enum"] == ["trtllm_engine", "reference", "vllm", "llmapi"]
    assert "backend" in schema["$defs"]["TargetOverride"]["properties"]


def test_unknown_backend_is_a_recipe_error(cli, project: Callable[..., Path], env: dict[str, str]) -> None:
    r = cli("plan", str(project("backend: tgi\n")), "--gpu", "cpu", env=env)
    assert r.returncode == 3
    assert "backend" in r.stderr and "vllm" in r.stderr
