"""Templates, schema, planner and lint checked against the contract fixtures derived from NVIDIA's code.

For every shipped recipe × target the rendered ``tensorrt_llm`` config must carry every parameter the C++
backend reads without a default, only values the backend accepts and can parse, and exactly NVIDIA's
inputs and outputs; every (quantization, SM) the planner calls feasible must be one trtllm-build builds.
"""

from __future__ import annotations

import functools
import typing
from pathlib import Path

import pytest

from trtbuild.catalog.gpus import all_gpus
from trtbuild.contracts import load_fixture, trtllm
from trtbuild.formats import KV_FORMATS, WEIGHT_FORMATS, kv_algo, quant_algo
from trtbuild.plan.planner import BuildPlan, make_plan
from trtbuild.recipe.loader import load_recipe
from trtbuild.recipe.schema import RuntimeSettings
from trtbuild.repository.render import render_files

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
TRT = "models/tensorrt_llm/config.pbtxt"


@functools.cache
def _plan(recipe: str, gpu: str) -> BuildPlan:
    return make_plan(load_recipe(ROOT / "recipes" / recipe), gpu)


def _targets() -> list[tuple[str, str]]:
    out = []
    for path in RECIPES:
        for gpu in all_gpus():
            if _plan(path.name, gpu.key).feasible:
                out.append((path.name, gpu.key))
    return out


TARGETS = _targets()


def _config(recipe: str, gpu: str, tokenizer: Path) -> typing.Any:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    plan = _plan(recipe, gpu)
    if plan.target["reference"]:
        rendered = render_files(plan, tokenizer_dir=tokenizer, hf_model_dir=tokenizer, copy_hf_model=False)
    else:
        rendered = render_files(plan, tokenizer_dir=tokenizer, engine_dir=Path("/opt/engines") / recipe)
    return text_format.Parse(rendered.files[TRT].decode(), model_config_pb2.ModelConfig())


@pytest.fixture(scope="module")
def configs(tiny_model: Path) -> dict[tuple[str, str], typing.Any]:
    return {t: _config(*t, tiny_model) for t in TARGETS}


def test_there_are_targets_to_check():
    assert len(TARGETS) > 40 and any(g == "cpu" for _, g in TARGETS)


def test_every_parameter_the_backend_reads_without_a_default_is_emitted(configs):
    required = trtllm.required_parameters()
    assert {"gpt_model_type", "tokenizer_dir", "guided_decoding_backend", "xgrammar_tokenizer_info_path"} <= set(required)
    for (recipe, gpu), cfg in configs.items():
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        missing = [p for p in required if p not in params]
        assert not missing, f"{recipe} on {gpu}: the backend fails to load without {missing}"
        for group in trtllm.required_one_of():
            assert any(params.get(p) for p in group), f"{recipe} on {gpu}: none of {group} is set"


def test_every_emitted_value_is_one_the_backend_accepts_and_parses(configs):
    known = trtllm.backend_parameters()
    template_keys = {p["key"] for p in load_fixture("request_tensors").data["template_parameters"]}
    bools = trtllm.bool_spellings()
    for (recipe, gpu), cfg in configs.items():
        for key, value in ((k, v.string_value) for k, v in cfg.parameters.items()):
            if key.startswith("reference_") and cfg.backend == "python":
                continue  # the CPU reference's own parameters (documented beside its model.py)
            assert key in known or key in template_keys, f"{recipe} on {gpu}: {key} is read by nothing upstream"
            p = known.get(key)
            if p is None or (value == "" and not p.required and p.type == "std::string"):
                continue
            if p.accepted is not None and value != "":
                assert value in p.accepted, f"{recipe} on {gpu}: {key}={value!r} is ignored by the backend"
            assert p.parses(value, bools), f"{recipe} on {gpu}: {key}={value!r} does not parse as {p.type}"


def test_inputs_and_outputs_are_nvidias(configs):
    def norm(items: list[dict]) -> dict[str, tuple]:
        return {t["name"]: (None if t["data_type"].startswith("${") else t["data_type"], tuple(t["dims"]),
                            tuple(t["reshape"]) if "reshape" in t else None,
                            t.get("optional", False), t.get("ragged", False)) for t in items}

    want_in, want_out = norm(trtllm.model_tensors("inputs")), norm(trtllm.model_tensors("outputs"))
    from tritonclient.grpc import model_config_pb2
    for (recipe, gpu), cfg in configs.items():
        got_in = {t.name: (model_config_pb2.DataType.Name(t.data_type), tuple(t.dims),
                           tuple(t.reshape.shape) if t.HasField("reshape") else None, t.optional,
                           t.allow_ragged_batch) for t in cfg.input}
        got_out = {t.name: (model_config_pb2.DataType.Name(t.data_type), tuple(t.dims), None, False, False)
                   for t in cfg.output}
        for want, got, kind in ((want_in, got_in, "input"), (want_out, got_out, "output")):
            assert set(got) == set(want), f"{recipe} on {gpu}: {kind}s differ: {set(got) ^ set(want)}"
            for name, spec in want.items():
                dtype = spec[0] or got[name][0]  # a ${placeholder} dtype: any filled value
                assert got[name] == (dtype, *spec[1:]), f"{recipe} on {gpu}: {kind} {name}"


def test_the_recipe_schema_offers_only_values_the_backend_acts_on():
    def literal(field: str) -> set[str]:
        ann = RuntimeSettings.model_fields[field].annotation
        args = typing.get_args(ann)
        values: set[str] = set()
        for a in args:
            values |= set(typing.get_args(a)) if typing.get_origin(a) is typing.Literal else (
                {a} if isinstance(a, str) else set())
        return values or set(args)

    assert literal("scheduler_policy") <= set(trtllm.accepted_values("batch_scheduler_policy"))
    assert literal("decoding_mode") <= set(trtllm.accepted_values("decoding_mode"))


def test_every_feasible_quantization_is_one_trtllm_build_builds():
    """Every (weights, KV cache) × GPU the planner calls feasible passes builder.build()'s SM checks."""
    base = (ROOT / "recipes" / "qwen2.5-7b.yaml").read_text()
    from trtbuild.recipe.loader import parse_recipe

    refused_feasible, checked = [], 0
    for w in WEIGHT_FORMATS:
        for kv in KV_FORMATS:
            loaded = parse_recipe(_with_quant(base, w, kv), ROOT / "recipes" / "sweep.yaml")
            for gpu in all_gpus():
                if gpu.reference:
                    continue
                plan = make_plan(loaded, gpu.key)
                refusal = trtllm.builder_refusal(gpu.sm, quant_algo(w), kv_algo(kv))
                checked += 1
                if plan.feasible and refusal is not None:
                    refused_feasible.append((w, kv, gpu.key, refusal.message))
                if refusal is not None:
                    assert any(d.rule == "quant.builder_refusal" for d in plan.errors), (w, kv, gpu.key)
    assert checked > 300
    assert not refused_feasible, refused_feasible


def _with_quant(text: str, weights: str, kv: str) -> str:
    import yaml

    data = yaml.safe_load(text)
    data["quantization"] = {**(data.get("quantization") or {}), "weights": weights, "kv_cache": kv}
    data.pop("targets", None)
    return yaml.safe_dump(data, sort_keys=False)


def test_every_emitted_build_flag_exists_and_no_plugin_the_sm_refuses_is_enabled():
    from trtbuild.stages.engine_command import build_command

    flags = trtllm.build_flags()
    for recipe, gpu in TARGETS:
        plan = _plan(recipe, gpu)
        if plan.target["reference"]:
            continue
        argv = build_command(plan, Path("/ck"), Path("/out"), timing_cache=None)
        given = {a: argv[i + 1] if i + 1 < len(argv) and not argv[i + 1].startswith("--") else None
                 for i, a in enumerate(argv) if a.startswith("--")}
        for flag, value in given.items():
            spec = flags[flag]
            assert "alias_of" not in spec and "deprecated" not in spec, (recipe, gpu, flag)
            if spec.get("choices") and value is not None:
                assert value in spec["choices"], (recipe, gpu, flag, value)
        for plugin in trtllm.plugins_refused_on(plan.target["sm"]):
            assert given.get("--" + plugin) in (None, "disable"), (recipe, gpu, plugin)
