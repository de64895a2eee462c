"""The offline tiny model: deterministic bytes, loadable by transformers, varied greedy output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trtbuild.demo import tiny_model
from trtbuild.demo.corpus import calibration_texts, corpus_text
from trtbuild.errors import UsageError

from .helpers import hf_weights, needs_checkpoint_deps

needs_checkpoint_deps()


def digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_builds_identical_bytes_twice(tmp_path: Path, tiny_llama: Path) -> None:
    again = tiny_model.make_tiny_model(tmp_path / "again", family="llama", llama3_rope=True)
    assert digests(again) == digests(tiny_llama)
    assert set(digests(again)) == {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                                   "tokenizer_config.json", "special_tokens_map.json"}


def test_seed_changes_weights_but_not_tokenizer(tmp_path: Path, tiny_llama: Path) -> None:
    other = digests(tiny_model.make_tiny_model(tmp_path / "s1", seed=1))
    base = digests(tiny_llama)
    assert other["model.safetensors"] != base["model.safetensors"]
    assert other["tokenizer.json"] == base["tokenizer.json"]


def test_llama3_rope_and_dimensions(tiny_llama: Path) -> None:
    cfg = json.loads((tiny_llama / "config.json").read_text())
    assert cfg["architectures"] == ["LlamaForCausalLM"]
    assert cfg["rope_theta"] == 500000.0
    assert cfg["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    assert (cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (256, 4, 2)
    assert cfg["tie_word_embeddings"] is False
    w = hf_weights(tiny_llama)
    assert not w["lm_head.weight"].equal(w["model.embed_tokens.weight"])  # untied
    assert {str(t.dtype) for t in w.values()} == {"torch.float16"}
    assert sum(t.numel() for t in w.values()) == 2 * 512 * 256 + 256 + 2 * (590_336)  # 1.44 M


def test_plain_rope_variant(tmp_path: Path) -> None:
    cfg = json.loads((tiny_model.make_tiny_model(tmp_path / "m", llama3_rope=False) / "config.json").read_text())
    assert cfg["rope_theta"] == 10000.0 and cfg["rope_scaling"] is None


def test_qwen2_has_nonzero_qkv_bias(tiny_qwen2: Path) -> None:
    cfg = json.loads((tiny_qwen2 / "config.json").read_text())
    assert cfg["architectures"] == ["Qwen2ForCausalLM"]
    w = hf_weights(tiny_qwen2)
    for proj in ("q_proj", "k_proj", "v_proj"):
        bias = w[f"model.layers.0.self_attn.{proj}.bias"].float()
        assert bias.abs().mean() > 0.03
    assert "model.layers.0.self_attn.o_proj.bias" not in w


@pytest.mark.parametrize("model", ["tiny_llama", "tiny_qwen2"])
def test_loads_and_generates_varied_tokens(model: str, request: pytest.FixtureRequest) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = request.getfixturevalue(model)
    tok = AutoTokenizer.from_pretrained(path)
    lm, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True, dtype=torch.float32)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    for prompt in ("The river bent twice", "東京は日本の首都", "Thanks! 👍 See you"):
        ids = tok(prompt, return_tensors="pt")
        new = lm.generate(**ids, max_new_tokens=24, do_sample=False)[0, ids.input_ids.shape[1]:].tolist()
        assert len(new) == 24
        assert len(set(new)) >= 8, new


def test_tokenizer_special_tokens_and_roundtrip(tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    assert len(tok) == tiny_model.VOCAB_SIZE
    assert (tok.unk_token_id, tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 2, 3)
    assert tok.convert_tokens_to_ids("<|eot_id|>") == tiny_model.EOT_ID == 4
    text = "Zürich café 東京 🚀 naïve"
    ids = tok(text).input_ids
    assert ids[0] == tiny_model.BOS_ID
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok("the town and the river").input_ids) < len("the town and the river")  # merges learned
    gen = json.loads((tiny_llama / "generation_config.json").read_text())
    assert gen["eos_token_id"] == [2, 4] and gen["pad_token_id"] == 3


def test_corpus_is_varied_text() -> None:
    text = corpus_text()
    assert 4000 < len(text.encode()) < 20000
    assert any(ord(c) > 0x3000 for c in text)  # CJK
    assert any(ord(c) > 0x1F000 for c in text)  # emoji
    assert "é" in text and "ü" in text
    samples = calibration_texts()
    assert len(samples) >= 50 and all(s.strip() == s and s for s in samples)


def test_unknown_family_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="gpt2.*llama, qwen2, mistral, qwen3, mixtral, gemma2"):
        tiny_model.make_tiny_model(tmp_path / "m", family="gpt2")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("family, arch, extra", [
    ("mistral", "MistralForCausalLM", {"model.layers.0.mlp.gate_proj.weight": (512, 256)}),
    ("qwen3", "Qwen3ForCausalLM", {"model.layers.0.self_attn.q_norm.weight": (128,),
                                   "model.layers.0.self_attn.q_proj.weight": (512, 256)}),
    ("mixtral", "MixtralForCausalLM", {"model.layers.0.block_sparse_moe.gate.weight": (4, 256),
                                       "model.layers.1.block_sparse_moe.experts.3.w3.weight": (512, 256)}),
    ("gemma2", "Gemma2ForCausalLM", {"model.layers.0.pre_feedforward_layernorm.weight": (256,),
                                     "model.layers.0.self_attn.q_proj.weight": (512, 256)}),
])
def test_other_families_load_in_transformers(tiny: object, family: str, arch: str,
                                             extra: dict[str, tuple[int, ...]]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    path = tiny(family)  # type: ignore[operator]
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["architectures"] == [arch] and cfg["model_type"] == family
    w = hf_weights(path)
    assert {name: tuple(w[name].shape) for name in extra} == extra
    assert ("lm_head.weight" in w) == (family != "gemma2")  # gemma2 ties lm_head to the embedding
    lm, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True, dtype=torch.float32)
    assert type(lm).__name__ == arch
    assert info["missing_keys"] == [] and info["unexpected_keys"] == [] and info["mismatched_keys"] == []
    assert sum(t.numel() for t in lm.state_dict().values()) >= sum(t.numel() for t in w.values())
    again = tiny_model.make_tiny_model(path.parent / f"{family}-again", family=family)
    assert digests(again) == digests(path)


@pytest.mark.parametrize("family", ["mistral", "qwen3", "mixtral"])
def test_other_families_generate_varied_tokens(tiny: object, family: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny(family)  # type: ignore[operator]
    tok, lm = AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ids = tok("The river bent twice", return_tensors="pt")
    new = lm.generate(**ids, max_new_tokens=24, do_sample=False)[0, ids.input_ids.shape[1]:].tolist()
    assert len(set(new)) >= 8, new


def test_tied_option_drops_lm_head(tiny: object) -> None:
    path = tiny("llama", tied=True)  # type: ignore[operator]
    assert json.loads((path / "config.json").read_text())["tie_word_embeddings"] is True
    assert "lm_head.weight" not in hf_weights(path)
