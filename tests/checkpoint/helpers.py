"""Helpers shared by the checkpoint-stage tests (not fixtures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# HF architecture → ModelOpt decoder type, for every tiny-model family (gemma2 is refused by the stage).
DECODERS = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama", "MixtralForCausalLM": "llama",
            "Qwen2ForCausalLM": "qwen", "Qwen3ForCausalLM": "qwen", "Gemma2ForCausalLM": "gemma2"}


def needs_checkpoint_deps() -> None:
    """Skip the calling module when the checkpoint extra (torch, transformers, modelopt) is missing."""
    for module in ("torch", "transformers", "tokenizers", "safetensors", "modelopt.torch.quantization"):
        pytest.importorskip(module)


def make_inputs(model_dir: Path, **overrides: Any) -> Any:
    """CheckpointInputs for a tiny model with small, fast calibration settings."""
    from trtbuild.stages.checkpoint import CheckpointInputs

    config = model_dir / "config.json"
    arch = json.loads(config.read_text())["architectures"][0] if config.is_file() else "LlamaForCausalLM"
    values: dict[str, Any] = dict(
        model_dir=model_dir, architecture=arch, decoder_type=DECODERS.get(arch, "llama"), dtype="float16", weights="none",
        kv_cache="none", awq_block_size=128, calib_dataset="builtin", calib_samples=16, calib_max_seq_len=64,
        calib_batch_size=4, calib_seed=1234, tp=1, pp=1, trust_remote_code=False)
    values.update(overrides)
    return CheckpointInputs(**values)


def hf_weights(model_dir: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def hf_config(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "config.json").read_text())


def leftovers(parent: Path, name: str) -> list[str]:
    """Anything under ``parent`` that is ``name`` or one of its staging/old siblings."""
    return sorted(p.name for p in parent.iterdir() if p.name == name or p.name.startswith(f".{name}."))
