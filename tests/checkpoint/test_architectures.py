"""The catalog's other architectures through the checkpoint stage: Mistral, Qwen3, Mixtral (ModelOpt export
checked number by number against the HF weights), and Gemma2, which the stage refuses up front."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from trtbuild.errors import CheckpointError

from .dequant import linear_errors, load_rank, reference_rank
from .helpers import hf_config, hf_weights, leftovers, make_inputs, needs_checkpoint_deps

needs_checkpoint_deps()
pytestmark = pytest.mark.slow

MAX_ERROR = {"fp8": 0.05, "int8_sq": 0.03, "int4_awq": 0.20, "w4a8_awq": 0.20, "nvfp4": 0.15}


@pytest.mark.parametrize("family, weights, tp, block", [
    ("mistral", "fp8", 2, 128), ("mistral", "int8_sq", 1, 128), ("mistral", "int4_awq", 2, 64),
    ("mistral", "w4a8_awq", 1, 128),
    ("qwen3", "fp8", 2, 128), ("qwen3", "nvfp4", 1, 128), ("qwen3", "int8_sq", 1, 128),
    ("qwen3", "int4_awq", 1, 128),
    ("mixtral", "fp8", 2, 128), ("mixtral", "nvfp4", 1, 128),
])
def test_quantized_export_matches_hf(exported: Any, tiny: Any, family: str, weights: str, tp: int,
                                     block: int) -> None:
    model = tiny(family)
    out, manifest = exported(model, weights=weights, tp=tp, awq_block_size=block)
    assert manifest.converter == "modelopt"
    hf, cfg = hf_weights(model), hf_config(model)
    errors = linear_errors(out, hf, cfg, quant_algo=manifest.quant_algo, tp=tp, pp=1)
    linears = 4 if family == "mixtral" else 5  # Mixtral: qkv, dense, stacked fc ([w3; w1]) and proj
    assert len(errors) == tp * cfg["num_hidden_layers"] * linears
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= MAX_ERROR[weights], f"{worst}: {errors[worst]:.4f}"
    assert min(errors.values()) > 1e-3  # really quantized
    # Everything that is not a quantized linear (norms, embeddings, Qwen3 q/k norms, the Mixtral router)
    # is the HF tensor, cast to the export dtype (the router: float32).
    import torch

    for rank in range(tp):
        got, want = load_rank(out, rank), reference_rank(hf, cfg, rank=rank, tp=tp, pp=1)
        plain = [n for n in want if not any(f".{lin}." in n for lin in ("qkv", "dense", "fc", "gate", "proj"))]
        assert plain
        for name in plain:
            expected = want[name] if want[name].dtype == torch.float32 else want[name].to(torch.float16)
            assert got[name].dtype == expected.dtype and torch.equal(got[name], expected), name


def test_qwen3_keeps_its_qk_norms_and_declares_no_qkv_bias(exported: Any, tiny: Any) -> None:
    import torch

    model = tiny("qwen3")
    out, _ = exported(model, weights="fp8", tp=2)
    config = json.loads((out / "config.json").read_text())
    assert config["qwen_type"] == "qwen3" and config["attn_bias"] is False and config["head_size"] == 128
    hf = hf_weights(model)
    for rank in range(2):
        t = load_rank(out, rank)
        for layer in range(2):
            for n in ("q", "k"):
                norm = t[f"transformer.layers.{layer}.attention.{n}_layernorm.weight"]
                assert torch.equal(norm, hf[f"model.layers.{layer}.self_attn.{n}_norm.weight"])
                assert norm.shape == (128,) and (norm - 1).abs().max() > 0.05  # not a default all-ones norm
        assert not any(k.endswith("qkv.bias") for k in t)


def test_qwen2_config_keeps_attn_bias(exported: Any, tiny_qwen2: Path) -> None:
    config = json.loads((exported(tiny_qwen2, tp=2)[0] / "config.json").read_text())
    assert config["qwen_type"] == "qwen2" and config["attn_bias"] is True


def test_mixtral_layout(exported: Any, tiny: Any) -> None:
    import torch

    model = tiny("mixtral")
    out, manifest = exported(model, weights="int8_wo", tp=2)  # streaming; bit-equal to ModelOpt elsewhere
    config = json.loads((out / "config.json").read_text())
    assert config["moe"] == {"num_experts": 4, "top_k": 2, "normalization_mode": 1}
    assert config["hidden_act"] == "swiglu" and config["mapping"]["moe_tp_size"] == 2
    assert manifest.quant_algo == "W8A16" and manifest.converter == "streaming"
    hf, cfg = hf_weights(model), hf_config(model)
    t = load_rank(out, 1)
    fc = t["transformer.layers.1.mlp.fc.weight"]
    assert fc.shape == (4, 512, 256)  # per expert: w3 rows 256..511, then w1 rows 256..511
    assert torch.equal(fc[2, :256], hf["model.layers.1.block_sparse_moe.experts.2.w3.weight"][256:])
    assert torch.equal(fc[2, 256:], hf["model.layers.1.block_sparse_moe.experts.2.w1.weight"][256:])
    assert torch.equal(t["transformer.layers.1.mlp.proj.weight"][3],
                       hf["model.layers.1.block_sparse_moe.experts.3.w2.weight"][:, 256:])
    router = t["transformer.layers.1.mlp.router.weight"]
    assert router.dtype == torch.float32 and torch.equal(router, hf["model.layers.1.block_sparse_moe.gate.weight"].float())
    want = reference_rank(hf, cfg, rank=1, tp=2, pp=1)
    assert sorted(want) == sorted(t) and all(torch.equal(t[n], want[n]) for n in want)


def refused(model: Path, out_parent: Path, *words: str, **overrides: Any) -> float:
    from trtbuild.stages.checkpoint import run_checkpoint

    out_parent.mkdir(exist_ok=True)
    started = time.monotonic()
    with pytest.raises(CheckpointError) as err:
        run_checkpoint(make_inputs(model, **overrides), out_parent / "ckpt")
    for word in words:
        assert word in str(err.value), f"{word!r} not in {err.value}"
    assert leftovers(out_parent, "ckpt") == []
    return time.monotonic() - started


def test_gemma2_is_refused_before_any_work(tiny: Any, tmp_path: Path) -> None:
    model = tiny("gemma2")
    for weights in ("none", "fp8"):
        took = refused(model, tmp_path / weights, f"{model / 'config.json'}: architecture Gemma2ForCausalLM cannot "
                       "be converted", "no config writer for decoder 'gemma2'", "NotImplementedError",
                       weights=weights)
        assert took < 2.0  # no model load, no calibration


@pytest.mark.filterwarnings("ignore:Cannot export:UserWarning")
def test_gemma2_really_fails_in_modelopt(tiny: Any, tmp_path: Path) -> None:
    """The reason the stage gives is what ModelOpt 0.47 does with this model on this path."""
    import modelopt.torch.export as mte
    import torch
    from transformers import AutoModelForCausalLM

    lm = AutoModelForCausalLM.from_pretrained(tiny("gemma2"), dtype=torch.float16)
    with pytest.raises(NotImplementedError, match="Cannot export tensorrt_llm checkpoint for model gemma2"):
        mte.export_tensorrt_llm_checkpoint(lm, decoder_type="gemma2", dtype=torch.float16, export_dir=tmp_path,
                                           inference_tensor_parallel=1)


@pytest.mark.parametrize("weights", ["int8_sq", "int4_awq", "w4a8_awq"])
def test_mixtral_unchecked_formats_are_refused(tiny: Any, tmp_path: Path, weights: str) -> None:
    refused(tiny("mixtral"), tmp_path, f"quantization.weights: {weights} is not supported for MixtralForCausalLM",
            "checked: fp8, int4_wo, int8_wo, none, nvfp4", weights=weights)


def test_float32_is_refused_up_front(tiny_llama: Path, tmp_path: Path) -> None:
    refused(tiny_llama, tmp_path, "dtype: float32 cannot be exported", "float16 or bfloat16", dtype="float32")
