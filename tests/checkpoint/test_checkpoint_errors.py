"""Bad inputs to the checkpoint stage: each fails with a CheckpointError naming the file or recipe key,
and leaves neither an output directory nor a staging leftover behind."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trtbuild.errors import CheckpointError

from .helpers import leftovers, make_inputs, needs_checkpoint_deps

needs_checkpoint_deps()


@pytest.fixture
def model_copy(tmp_path: Path, tiny_llama: Path) -> Path:
    return Path(shutil.copytree(tiny_llama, tmp_path / "model"))


def fails(model_dir: Path, out_parent: Path, *names: str, **overrides: Any) -> str:
    """Run the stage, expect a CheckpointError mentioning every name; check nothing was left behind."""
    from trtbuild.stages.checkpoint import run_checkpoint

    out_parent.mkdir(exist_ok=True)
    with pytest.raises(CheckpointError) as err:
        run_checkpoint(make_inputs(model_dir, **overrides), out_parent / "ckpt")
    message = str(err.value)
    for name in names:
        assert name in message, f"{name!r} not in: {message}"
    assert err.value.exit_code == 4 and message.startswith("checkpoint: ")
    assert leftovers(out_parent, "ckpt") == []
    return message


def test_truncated_safetensors(model_copy: Path, tmp_path: Path) -> None:
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    fails(model_copy, tmp_path / "out", str(weights), "truncated")


def test_corrupt_safetensors_header(model_copy: Path, tmp_path: Path) -> None:
    (model_copy / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!" + bytes(64))
    fails(model_copy, tmp_path / "out", str(model_copy / "model.safetensors"), "not a valid safetensors file")


def test_pickle_only_without_allow_pickle(model_copy: Path, tmp_path: Path) -> None:
    (model_copy / "model.safetensors").rename(model_copy / "pytorch_model.bin")
    fails(model_copy, tmp_path / "out", str(model_copy), "pickle", "model.allow_pickle")


def test_unsupported_architecture(model_copy: Path, tmp_path: Path) -> None:
    cfg = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**cfg, "architectures": ["GPT2LMHeadModel"]}))
    fails(model_copy, tmp_path / "out", str(model_copy / "config.json"), "GPT2LMHeadModel", "not supported")


def test_architecture_differs_from_plan(tiny_llama: Path, tmp_path: Path) -> None:
    fails(tiny_llama, tmp_path / "out", "config.json", "LlamaForCausalLM", "Qwen2ForCausalLM",
          architecture="Qwen2ForCausalLM", decoder_type="qwen")


def test_missing_config(model_copy: Path, tmp_path: Path) -> None:
    (model_copy / "config.json").unlink()
    fails(model_copy, tmp_path / "out", str(model_copy / "config.json"), "not found")


def test_missing_tokenizer(model_copy: Path, tmp_path: Path) -> None:
    (model_copy / "tokenizer.json").unlink()
    fails(model_copy, tmp_path / "out", str(model_copy), "no tokenizer files")


def test_tp_not_dividing_heads_is_found_before_the_weights(model_copy: Path, tmp_path: Path) -> None:
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # damaged too: the layout error must come first
    message = fails(model_copy, tmp_path / "out", "parallelism.tp: 3 does not divide num_attention_heads 4", tp=3)
    assert "safetensors" not in message


def test_awq_block_not_dividing_per_rank_input(tiny_llama: Path, tmp_path: Path) -> None:
    fails(tiny_llama, tmp_path / "out", "quantization.awq_block_size: 128", "per-rank input dimension 64",
          "attention.dense", weights="int4_awq", tp=4, awq_block_size=128)


def test_pp_not_dividing_layers(tiny_llama: Path, tmp_path: Path) -> None:
    fails(tiny_llama, tmp_path / "out", "parallelism.pp: 3 does not divide num_hidden_layers 2", pp=3)


@pytest.mark.parametrize("name, content, words", [
    ("empty.txt", b"", ("has no calibration samples",)),
    ("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", ("not a text file",)),
])
def test_bad_calibration_file(tiny_llama: Path, tmp_path: Path, name: str, content: bytes,
                              words: tuple[str, ...]) -> None:
    cal = tmp_path / name
    cal.write_bytes(content)
    fails(tiny_llama, tmp_path / "out", "quantization.calibration.dataset", str(cal), *words,
          weights="fp8", calib_dataset=str(cal))


def test_calibration_file_ignored_when_not_needed(tiny_llama: Path, tmp_path: Path) -> None:
    from trtbuild.stages.checkpoint import run_checkpoint

    manifest = run_checkpoint(make_inputs(tiny_llama, weights="int8_wo", calib_dataset=str(tmp_path / "none.txt")),
                              tmp_path / "ckpt")
    assert manifest.quant_algo == "W8A16" and dict(manifest.calibration) == {"used": False}


def test_weights_not_matching_config(model_copy: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    weights = load_file(str(model_copy / "model.safetensors"))
    weights["model.layers.0.self_attn.q_proj.weight"] = torch.zeros(128, 256, dtype=torch.float16)
    del weights["model.layers.1.mlp.up_proj.weight"]
    save_file(weights, str(model_copy / "model.safetensors"), metadata={"format": "pt"})
    fails(model_copy, tmp_path / "out", "weights do not match config.json",
          f"{model_copy / 'model.safetensors'}: tensor model.layers.0.self_attn.q_proj.weight has shape [128, 256], "
          "config.json implies [256, 256]",
          "tensor model.layers.1.mlp.up_proj.weight is missing")


def test_failure_inside_staging_leaves_nothing(model_copy: Path, tmp_path: Path) -> None:
    """A failure after the staging directory exists (loading the tokenizer) still leaves nothing behind."""
    (model_copy / "tokenizer.json").write_text("{broken")
    fails(model_copy, tmp_path / "out", f"could not load the tokenizer from {model_copy}", weights="fp8")


def test_failed_run_keeps_the_previous_checkpoint(tiny_llama: Path, model_copy: Path, tmp_path: Path) -> None:
    from trtbuild.stages.checkpoint import run_checkpoint

    out = tmp_path / "ckpt"
    first = run_checkpoint(make_inputs(tiny_llama, weights="none"), out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1])
    with pytest.raises(CheckpointError):
        run_checkpoint(make_inputs(model_copy, weights="none"), out)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert leftovers(tmp_path, "ckpt") == ["ckpt"] and first.out_dir == out


@pytest.mark.parametrize("key, overrides", [
    ("quantization.weights", {"weights": "int3"}), ("quantization.kv_cache", {"kv_cache": "fp4"}),
    ("dtype", {"dtype": "auto"}), ("parallelism.tp", {"tp": 0}),
    ("quantization.calibration.samples", {"calib_samples": 0}),
])
def test_invalid_input_values(tiny_llama: Path, key: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(CheckpointError, match=f"{key}: unsupported value"):
        make_inputs(tiny_llama, **overrides)


def test_planning_imports_stay_light() -> None:
    code = ("import sys\n"
            "import trtbuild.stages.checkpoint, trtbuild.stages.fetch, trtbuild.stages.calibration\n"
            "import trtbuild.stages.checkpoint_checks, trtbuild.demo.tiny_model, trtbuild.stages.checkpoint_layout\n"
            "import trtbuild.stages.streaming_checkpoint, trtbuild.stages.safetensors_stream\n"
            "heavy = {'torch', 'transformers', 'modelopt', 'huggingface_hub', 'tokenizers', 'safetensors', 'numpy'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "[]"
