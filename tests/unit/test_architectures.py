"""The architecture catalog: engine-path keys, ModelOpt decoder types, precision matrix, errors."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from trtbuild.errors import PlanError, UnsupportedArchitecture
from trtbuild.formats import KV_FORMATS, WEIGHT_FORMATS
from trtbuild.model.architectures import (
    all_architectures,
    find_architecture,
    get_architecture,
    supported_architectures,
)

SIX = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "MixtralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "Gemma2ForCausalLM",
)

# HF class → (family, ModelOpt 0.47 decoder_type as returned by model_utils.get_model_type).
EXPECTED = {
    "LlamaForCausalLM": ("llama", "llama"),
    "MistralForCausalLM": ("mistral", "llama"),
    "MixtralForCausalLM": ("mixtral", "llama"),
    "Qwen2ForCausalLM": ("qwen2", "qwen"),
    "Qwen3ForCausalLM": ("qwen3", "qwen"),
    "Gemma2ForCausalLM": ("gemma2", "gemma2"),
}


def test_supported_architectures() -> None:
    assert supported_architectures() == SIX
    assert tuple(a.hf_architecture for a in all_architectures()) == SIX


@pytest.mark.parametrize("arch", SIX)
def test_entry(arch: str) -> None:
    spec = get_architecture(arch)
    assert spec.hf_architecture == arch
    assert (spec.family, spec.modelopt_decoder_type) == EXPECTED[arch]
    # TensorRT-LLM 1.2's MODEL_MAP has each of these HF names as a key (Gemma2 via GEMMA2_ARCHITECTURE).
    assert spec.trtllm_architecture == arch
    assert "none" in spec.weight_formats and "none" in spec.kv_formats
    assert spec.weight_formats <= set(WEIGHT_FORMATS)
    assert spec.kv_formats <= set(KV_FORMATS)
    assert spec.notes
    assert find_architecture(arch) is spec


def test_formats_match_the_recipe_schema() -> None:
    schema = pytest.importorskip("trtbuild.recipe.schema")
    assert set(typing.get_args(schema.WeightQuant)) == set(WEIGHT_FORMATS)
    assert set(typing.get_args(schema.KvQuant)) == set(KV_FORMATS)


def test_legacy_precision_matrix() -> None:
    llama = get_architecture("LlamaForCausalLM").weight_formats
    mistral = get_architecture("MistralForCausalLM").weight_formats
    mixtral = get_architecture("MixtralForCausalLM").weight_formats
    qwen2 = get_architecture("Qwen2ForCausalLM").weight_formats
    qwen3 = get_architecture("Qwen3ForCausalLM").weight_formats
    gemma2 = get_architecture("Gemma2ForCausalLM").weight_formats
    assert llama == set(WEIGHT_FORMATS)
    assert mistral == llama - {"nvfp4"}
    assert mixtral == {"none", "fp8", "nvfp4", "int8_wo", "int4_wo"}
    assert not {"int8_sq", "int4_awq", "w4a8_awq"} & mixtral
    assert "nvfp4" not in qwen2 and {"fp8", "int8_sq", "int4_awq"} <= qwen2
    assert qwen3 == {"none", "fp8", "nvfp4"}
    assert "nvfp4" not in gemma2 and {"int8_sq", "int4_awq", "w4a8_awq"} <= gemma2


def test_only_mixtral_is_moe() -> None:
    assert [a.hf_architecture for a in all_architectures() if a.moe] == ["MixtralForCausalLM"]


def test_unknown_architecture_names_it_and_lists_the_supported_ones() -> None:
    with pytest.raises(UnsupportedArchitecture) as info:
        get_architecture("GPTNeoXForCausalLM")
    message = str(info.value)
    assert "'GPTNeoXForCausalLM'" in message
    for arch in SIX:
        assert arch in message
    assert isinstance(info.value, PlanError) and info.value.exit_code == 3
    assert find_architecture("GPTNeoXForCausalLM") is None


def test_wrong_case_gets_a_hint() -> None:
    with pytest.raises(UnsupportedArchitecture, match="did you mean 'LlamaForCausalLM'"):
        get_architecture("llamaforcausallm")


@pytest.mark.slow
def test_decoder_types_match_modelopt() -> None:
    """Checks the recorded decoder_type against ModelOpt's own class-name mapping (needs torch)."""
    model_utils = pytest.importorskip("modelopt.torch.export.model_utils")
    for arch in SIX:
        fake_model = type(arch, (), {})()
        assert model_utils.get_model_type(fake_model) == get_architecture(arch).modelopt_decoder_type


def test_plan_and_checkpoint_stage_agree_on_each_architecture(tmp_path: Path) -> None:
    """BUG (issue 12 item 2): the catalog gave Gemma 2 an engine path and the plan only warned, while the
    checkpoint stage refuses it up front, so `compile` failed after fetching the model. The plan for a GPU
    target now refuses what the checkpoint stage refuses, and says why; the CPU reference still plans."""
    import shutil

    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.stages.checkpoint_checks import support_problems

    models = Path(__file__).resolve().parents[2] / "recipes" / "models"
    for model in ("gemma-2-9b-it", "llama-3.1-8b-instruct", "qwen3-8b", "mixtral-8x7b-instruct-v0.1"):
        (tmp_path / model).mkdir()
        shutil.copy(models / model / "config.json", tmp_path / model / "config.json")
        recipe = tmp_path / f"{model}.yaml"
        recipe.write_text(f"recipe: 1\nname: t\nmodel:\n  source: ./{model}\nquantization: {{weights: fp8}}\n")
        plan = make_plan(load_recipe(recipe), "h100")
        stage = support_problems(plan.model["architecture"], weights="fp8", dtype="bfloat16")
        assert plan.feasible == (not stage), (model, stage)
        if stage:
            errors = [d for d in plan.diagnostics if d.severity == "error"]
            assert [d.rule for d in errors] == ["checkpoint.architecture"]
            assert "no config writer for decoder 'gemma2'" in errors[0].message
            assert "--gpu cpu" in errors[0].message
            assert make_plan(load_recipe(recipe), "cpu").feasible
