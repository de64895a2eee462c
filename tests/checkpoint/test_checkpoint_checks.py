"""Pure checks of the checkpoint stage: preflight layout rules, RoPE handling, config patching."""

from __future__ import annotations

from typing import Any

import pytest

from trtbuild.stages.checkpoint_checks import (
    config_problems,
    expected_rank_tensors,
    normalize_rope_scaling,
    patch_exported_config,
    preflight_problems,
    read_dims,
)

HF = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512,
      "max_position_embeddings": 8192, "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
DIMS = read_dims(HF)


def problems(**kw: Any) -> list[str]:
    args = {"weights": "fp8", "awq_block_size": 128, "tp": 1, "pp": 1, **kw}
    return preflight_problems(DIMS, **args)


def test_dims_from_config() -> None:
    assert (DIMS.head_dim, DIMS.num_kv_heads, DIMS.qkv_bias, DIMS.rope_base) == (64, 2, False, 500000.0)
    qwen = read_dims({**HF, "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"})
    assert qwen.qkv_bias and not qwen.o_bias


def test_feasible_layouts_have_no_problems() -> None:
    assert problems(tp=2) == [] and problems(tp=4) == []  # tp=4: the 2 KV heads are duplicated
    assert problems(weights="int4_awq", tp=2, awq_block_size=128) == []
    assert problems(weights="int4_awq", tp=4, awq_block_size=64) == []
    assert problems(weights="nvfp4", tp=4) == [] and problems(pp=2) == []


def test_tp_not_dividing_heads() -> None:
    got = problems(tp=3)
    assert got[0] == "parallelism.tp: 3 does not divide num_attention_heads 4 (config.json)"
    assert any("num_key_value_heads 2" in p for p in got)
    assert any("intermediate_size 512" in p for p in got)


def test_pp_not_dividing_layers() -> None:
    assert problems(pp=3) == ["parallelism.pp: 3 does not divide num_hidden_layers 2 (config.json)"]


def test_awq_block_not_dividing_per_rank_input() -> None:
    assert problems(weights="int4_awq", tp=4, awq_block_size=128) == [
        "quantization.awq_block_size: 128 does not divide the per-rank input dimension 64 of "
        "attention.dense (heads*head_dim/tp) at tp=4"]
    assert len(problems(weights="w4a8_awq", tp=4, awq_block_size=128)) == 1
    assert problems(weights="fp8", tp=4, awq_block_size=128) == []  # block size only matters for AWQ


def test_nvfp4_block() -> None:
    dims = read_dims({**HF, "hidden_size": 200, "num_attention_heads": 4, "head_dim": 64,
                                     "intermediate_size": 520})
    got = preflight_problems(dims, weights="nvfp4", awq_block_size=128, tp=1, pp=1)
    assert got == ["quantization.weights: nvfp4 needs per-rank input dimensions divisible by 16; "
                   "qkv/fc/gate (hidden_size) is 200 at tp=1",
                   "quantization.weights: nvfp4 needs per-rank input dimensions divisible by 16; "
                   "mlp.proj (intermediate_size/tp) is 520 at tp=1"]


def test_rope_from_transformers5_layout() -> None:
    cfg = {"rope_parameters": {"rope_theta": 500000, "rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
                               "high_freq_factor": 4, "original_max_position_embeddings": 8192}}
    dims = read_dims({**HF, "rope_theta": None, "rope_scaling": None, **cfg})
    assert dims.rope_base == 500000.0
    assert normalize_rope_scaling(dims.rope_scaling) == normalize_rope_scaling(HF["rope_scaling"])
    default = read_dims({**HF, "rope_theta": None, "rope_scaling": None,
                         "rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}})
    assert (default.rope_base, default.rope_scaling) == (1e6, None)
    bare = read_dims({**HF, "rope_theta": None, "rope_scaling": None})
    assert (bare.rope_base, bare.rope_scaling) == (10000.0, None)
    assert normalize_rope_scaling({"type": "linear", "factor": 2}) == {"rope_type": "linear", "factor": 2.0}


EXPORTED = {"architecture": "LlamaForCausalLM", "dtype": "float16", "num_hidden_layers": 2, "hidden_size": 256,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "intermediate_size": 512,
            "head_size": 64, "mapping": {"world_size": 2, "tp_size": 2, "pp_size": 1},
            "quantization": {"quant_algo": None, "kv_cache_quant_algo": None}}


def check(config: dict[str, Any], weights: str = "none", kv: str = "none") -> list[str]:
    return config_problems(config, DIMS, architecture="LlamaForCausalLM", dtype="float16", weights=weights,
                           kv_cache=kv, awq_block_size=128, tp=2, pp=1)


def test_patch_restores_dropped_rope_fields() -> None:
    # transformers 5 makes ModelOpt drop rotary_base/rotary_scaling silently: the patch must restore them.
    assert {p.split(" is ")[0] for p in check(EXPORTED)} == {"config.json: rotary_base", "config.json: rotary_scaling"}
    patched = patch_exported_config(EXPORTED, DIMS, HF, architecture="LlamaForCausalLM", weights="none",
                                    kv_cache="none", decoder_type="llama")
    assert patched["rotary_base"] == 500000.0 and patched["rotary_scaling"]["rope_type"] == "llama3"
    assert check(patched) == []
    assert "rotary_base" not in EXPORTED  # the input is not modified


def test_wrong_rope_is_not_masked_by_the_patch() -> None:
    wrong = {**EXPORTED, "rotary_base": 10000.0, "rotary_scaling": None}
    patched = patch_exported_config(wrong, DIMS, HF, architecture="LlamaForCausalLM", weights="none",
                                    kv_cache="none", decoder_type="llama")
    assert check(patched)[0] == "config.json: rotary_base is 10000.0, expected 500000.0 (HF rope_theta)"


def test_patch_weight_only_and_kv_reset() -> None:
    cfg = {**EXPORTED, "quantization": {"quant_algo": None, "kv_cache_quant_algo": "FP8"}}
    patched = patch_exported_config(cfg, DIMS, HF, architecture="LlamaForCausalLM", weights="int4_wo",
                                    kv_cache="none", decoder_type="llama")
    assert patched["quantization"] == {"quant_algo": "W4A16", "kv_cache_quant_algo": None}
    assert check(patched, weights="int4_wo") == []
    assert check(patched, weights="int8_wo") == [
        "config.json: quantization.quant_algo is 'W4A16', expected 'W8A16'"]


def test_mapping_and_quant_mismatches_are_reported() -> None:
    cfg = patch_exported_config(EXPORTED, DIMS, HF, architecture="LlamaForCausalLM", weights="none",
                                kv_cache="none", decoder_type="llama")
    cfg = {**cfg, "mapping": {"world_size": 1, "tp_size": 1, "pp_size": 1}, "dtype": "bfloat16"}
    got = check(cfg, weights="fp8", kv="fp8")
    assert "config.json: dtype is 'bfloat16', expected 'float16'" in got
    assert "config.json: mapping.world_size is 1, expected 2" in got
    assert "config.json: quantization.quant_algo is None, expected 'FP8'" in got
    assert "config.json: quantization.kv_cache_quant_algo is None, expected 'FP8'" in got


@pytest.mark.parametrize("weights, shape, dtypes", [
    ("none", (256, 256), {"F16"}), ("fp8", (256, 256), {"F8_E4M3"}), ("int8_sq", (256, 256), {"I8"}),
    ("int4_awq", (128, 256), {"I8", "U8"}), ("nvfp4", (256, 128), {"U8"}),
])
def test_expected_qkv_shape_per_rank(weights: str, shape: tuple[int, int], dtypes: set[str]) -> None:
    # qkv rows per rank at tp=2: (4 heads + 2 * 2 KV heads) / 2 * 64 = 256
    req, _ = expected_rank_tensors(DIMS, {"use_parallel_embedding": True}, rank=1, dtype="float16",
                                   weights=weights, kv_cache="none", awq_block_size=128, tp=2, pp=1)
    assert req["transformer.layers.0.attention.qkv.weight"] == (shape, frozenset(dtypes))
    assert req["transformer.vocab_embedding.weight"][0] == (256, 256)


def test_expected_kv_duplication_and_pp_split() -> None:
    req, _ = expected_rank_tensors(DIMS, {}, rank=3, dtype="float16", weights="fp8", kv_cache="fp8",
                                   awq_block_size=128, tp=4, pp=1)
    assert req["transformer.layers.0.attention.qkv.weight"][0] == (192, 256)  # 1 q head + 2 * 1 KV head
    assert "transformer.layers.1.attention.kv_cache_scaling_factor" in req
    first, _ = expected_rank_tensors(DIMS, {}, rank=0, dtype="float16", weights="none", kv_cache="none",
                                     awq_block_size=128, tp=1, pp=2)
    last, _ = expected_rank_tensors(DIMS, {}, rank=1, dtype="float16", weights="none", kv_cache="none",
                                    awq_block_size=128, tp=1, pp=2)
    assert "transformer.vocab_embedding.weight" in first and "lm_head.weight" not in first
    assert "lm_head.weight" in last and "transformer.ln_f.weight" in last
    assert not any(".layers.1." in k for k in list(first) + list(last))  # one local layer per stage


QWEN3 = {**HF, "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "head_dim": 128, "rope_scaling": None}
MIXTRAL = {**HF, "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": 4,
           "num_experts_per_tok": 2, "rope_scaling": None}


def test_support_problems() -> None:
    from trtbuild.stages.checkpoint_checks import support_problems

    assert support_problems("MistralForCausalLM", weights="int4_awq", dtype="bfloat16") == []
    assert support_problems("MixtralForCausalLM", weights="nvfp4", dtype="float16") == []
    assert support_problems("MixtralForCausalLM", weights="int8_sq", dtype="float16") == [
        "quantization.weights: int8_sq is not supported for MixtralForCausalLM by the checkpoint stage "
        "(checked: fp8, int4_wo, int8_wo, none, nvfp4)"]
    gemma = support_problems("Gemma2ForCausalLM", weights="none", dtype="float16")
    assert len(gemma) == 1 and gemma[0].startswith("architecture Gemma2ForCausalLM cannot be converted: ModelOpt")
    assert "not supported" in support_problems("GPT2LMHeadModel", weights="none", dtype="float16")[0]
    assert support_problems("LlamaForCausalLM", weights="none", dtype="float32")[0].startswith("dtype: float32")


def test_qwen3_and_mixtral_dims_and_hf_tensors() -> None:
    from trtbuild.stages.checkpoint_checks import hf_weight_shapes

    qwen3, mixtral = read_dims(QWEN3), read_dims(MIXTRAL)
    assert (qwen3.qk_norm, qwen3.qkv_bias, qwen3.head_dim, qwen3.num_experts) == (True, False, 128, 0)
    assert (mixtral.qk_norm, mixtral.num_experts) == (False, 4)
    shapes = hf_weight_shapes(qwen3)
    assert shapes["model.layers.1.self_attn.q_norm.weight"] == (128,)
    assert shapes["model.layers.1.self_attn.q_proj.weight"] == (512, 256)  # 4 heads x 128 != hidden 256
    shapes = hf_weight_shapes(mixtral)
    assert shapes["model.layers.0.block_sparse_moe.gate.weight"] == (4, 256)
    assert shapes["model.layers.0.block_sparse_moe.experts.3.w2.weight"] == (256, 512)
    assert not any("mlp." in name for name in shapes)


@pytest.mark.parametrize("weights, fc, scale", [
    ("none", ((4, 512, 256), {"F16"}), None),
    ("fp8", ((4, 512, 256), {"F8_E4M3"}), ("weights_scaling_factor", (4, 1))),
    ("nvfp4", ((4, 512, 128), {"U8"}), ("weights_scaling_factor_2", (4,))),
])
def test_expected_mixtral_tensors(weights: str, fc: tuple[Any, set[str]], scale: tuple[str, Any] | None) -> None:
    req, _ = expected_rank_tensors(read_dims(MIXTRAL), {"use_parallel_embedding": True}, rank=0,
                                   dtype="float16", weights=weights, kv_cache="none", awq_block_size=128, tp=2, pp=1)
    p = "transformer.layers.0.mlp."
    assert req[p + "fc.weight"] == (fc[0], frozenset(fc[1]))  # [experts, 2 * 512 / tp, hidden]
    assert req[p + "router.weight"] == ((4, 256), frozenset({"F32"}))
    assert p + "gate.weight" not in req
    if scale:
        assert req[p + "fc." + scale[0]][0] == scale[1]


def test_expected_qwen3_tensors_and_patch() -> None:
    dims = read_dims(QWEN3)
    req, _ = expected_rank_tensors(dims, {}, rank=1, dtype="bfloat16", weights="none", kv_cache="none",
                                   awq_block_size=128, tp=2, pp=1)
    assert req["transformer.layers.1.attention.q_layernorm.weight"] == ((128,), frozenset({"BF16"}))
    assert req["transformer.layers.1.attention.qkv.weight"][0] == (512, 256)  # (2 + 2 * 1) heads x 128
    assert "transformer.layers.1.attention.qkv.bias" not in req
    patched = patch_exported_config({**EXPORTED, "rotary_base": 500000.0}, dims, QWEN3,
                                    architecture="Qwen3ForCausalLM", weights="none", kv_cache="none",
                                    decoder_type="qwen")
    assert patched["qwen_type"] == "qwen3" and patched["attn_bias"] is False
    problems = config_problems({**patched, "attn_bias": True}, dims, architecture="Qwen3ForCausalLM",
                               dtype="float16", weights="none", kv_cache="none", awq_block_size=128, tp=2, pp=1)
    assert "config.json: attn_bias is True, expected False" in problems


def test_moe_config_is_checked() -> None:
    dims = read_dims(MIXTRAL)
    base = {**EXPORTED, "architecture": "MixtralForCausalLM", "rotary_base": 500000.0}
    got = config_problems(base, dims, architecture="MixtralForCausalLM", dtype="float16", weights="none",
                          kv_cache="none", awq_block_size=128, tp=2, pp=1)
    assert "config.json: moe.num_experts is None, expected 4" in got
    assert any(p.startswith("config.json: hidden_act is") for p in got)
    dense = config_problems({**base, "architecture": "LlamaForCausalLM", "moe": {"num_experts": 4}}, DIMS,
                            architecture="LlamaForCausalLM", dtype="float16", weights="none", kv_cache="none",
                            awq_block_size=128, tp=2, pp=1)
    assert "config.json: has a 'moe' block, but the model has no experts" in dense
