"""End-to-end checkpoint stage on the tiny models: every format, TP/PP shards, decoded number by number."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .dequant import linear_errors, load_rank, reference_rank, rel_error
from .helpers import hf_config, hf_weights, make_inputs, needs_checkpoint_deps

needs_checkpoint_deps()
pytestmark = pytest.mark.slow

MAX_ERROR = {"fp8": 0.05, "int8_sq": 0.03, "int4_awq": 0.20, "w4a8_awq": 0.20, "nvfp4": 0.15}
LINEARS_PER_LAYER = 5


@pytest.mark.parametrize("weights, tp, block", [
    ("fp8", 1, 128), ("fp8", 2, 128), ("fp8", 4, 128),
    ("int8_sq", 1, 128), ("int8_sq", 2, 128),
    ("int4_awq", 1, 128), ("int4_awq", 2, 64),
    ("w4a8_awq", 1, 128),
    ("nvfp4", 1, 128), ("nvfp4", 2, 128),
])
def test_dequantized_linears_match_hf(exported: Any, tiny_llama: Path, weights: str, tp: int, block: int) -> None:
    out, manifest = exported(tiny_llama, weights=weights, tp=tp, awq_block_size=block)
    errors = linear_errors(out, hf_weights(tiny_llama), hf_config(tiny_llama), quant_algo=manifest.quant_algo,
                           tp=tp, pp=1)
    assert len(errors) == tp * 2 * LINEARS_PER_LAYER
    worst = max(errors, key=errors.__getitem__)
    assert errors[worst] <= MAX_ERROR[weights], f"{worst}: {errors[worst]:.4f}"
    assert min(errors.values()) > 1e-3  # the weights really were quantized
    if weights in ("int4_awq", "w4a8_awq"):
        config = json.loads((out / "config.json").read_text())
        assert config["quantization"]["group_size"] == block


def test_decoder_detects_a_wrong_mapping(exported: Any, tiny_llama: Path) -> None:
    """fc is HF gate_proj and gate is up_proj: comparing against the swapped slice must fail loudly."""
    out, manifest = exported(tiny_llama, weights="fp8", tp=2)
    from .dequant import dequant_linear

    t, ref = load_rank(out, 1), reference_rank(hf_weights(tiny_llama), hf_config(tiny_llama), rank=1, tp=2, pp=1)
    fc = dequant_linear(t, "transformer.layers.0.mlp.fc.", manifest.quant_algo)
    assert rel_error(fc, ref["transformer.layers.0.mlp.fc.weight"]) < 0.05
    assert rel_error(fc, ref["transformer.layers.0.mlp.gate.weight"]) > 1.0
    assert rel_error(fc, reference_rank(hf_weights(tiny_llama), hf_config(tiny_llama), rank=0, tp=2, pp=1)[
        "transformer.layers.0.mlp.fc.weight"]) > 1.0  # rank 1 holds the second half, not the first


@pytest.mark.parametrize("tp, pp, dtype, weights", [
    (1, 1, "float16", "none"), (2, 1, "float16", "none"), (1, 2, "float16", "none"), (4, 1, "float16", "none"),
    (1, 1, "bfloat16", "none"), (2, 1, "float16", "int8_wo"), (1, 1, "float16", "int4_wo"),
])
def test_full_precision_is_bit_exact(exported: Any, tiny_llama: Path, tp: int, pp: int, dtype: str,
                                     weights: str) -> None:
    import torch

    out, manifest = exported(tiny_llama, weights=weights, tp=tp, pp=pp, dtype=dtype)
    assert manifest.quant_algo == {"none": None, "int8_wo": "W8A16", "int4_wo": "W4A16"}[weights]
    assert manifest.converter == "streaming"  # test_streaming_equivalence.py: the same bytes as ModelOpt's
    hf = {k: v.to(getattr(torch, dtype)) for k, v in hf_weights(tiny_llama).items()}
    for rank in range(tp * pp):
        got, want = load_rank(out, rank), reference_rank(hf, hf_config(tiny_llama), rank=rank, tp=tp, pp=pp)
        assert sorted(got) == sorted(want)
        for name, tensor in want.items():
            assert got[name].dtype == tensor.dtype and torch.equal(got[name], tensor), name


def test_llama3_rope_in_exported_config(exported: Any, tiny_llama: Path) -> None:
    out, _ = exported(tiny_llama, weights="fp8", tp=2)
    config = json.loads((out / "config.json").read_text())
    assert config["rotary_base"] == 500000.0
    assert config["rotary_scaling"] == {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
    assert config["mapping"] == {"world_size": 2, "tp_size": 2, "pp_size": 1}
    assert config["quantization"]["quant_algo"] == "FP8" and config["quantization"]["kv_cache_quant_algo"] is None
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "rank0.safetensors", "rank1.safetensors", "tokenizer", "trtbuild-checkpoint.json"]


@pytest.mark.parametrize("kv, algo", [("fp8", "FP8"), ("int8", "INT8")])
def test_kv_cache_scales(exported: Any, tiny_llama: Path, kv: str, algo: str) -> None:
    out, manifest = exported(tiny_llama, weights="fp8" if kv == "fp8" else "int8_wo", kv_cache=kv, tp=2)
    assert manifest.kv_cache_quant_algo == algo
    for rank in range(2):
        t = load_rank(out, rank)
        for layer in range(2):
            scale = float(t[f"transformer.layers.{layer}.attention.kv_cache_scaling_factor"])
            # FP8 KV scales are clamped to >= 1 by ModelOpt; INT8 is amax/127 of the K/V activations.
            assert scale >= 1.0 if kv == "fp8" else 0.0 < scale < 1.0


def test_qwen2_bias_and_quantized_weights(exported: Any, tiny_qwen2: Path) -> None:
    import torch

    out, manifest = exported(tiny_qwen2, weights="fp8", tp=2)
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "Qwen2ForCausalLM" and config["qwen_type"] == "qwen2"
    assert config["rotary_base"] == 1000000.0 and config["norm_epsilon"] == 1e-6
    hf, cfg = hf_weights(tiny_qwen2), hf_config(tiny_qwen2)
    errors = linear_errors(out, hf, cfg, quant_algo=manifest.quant_algo, tp=2, pp=1)
    assert max(errors.values()) <= MAX_ERROR["fp8"]
    for rank in range(2):
        got, want = load_rank(out, rank), reference_rank(hf, cfg, rank=rank, tp=2, pp=1)
        bias = "transformer.layers.1.attention.qkv.bias"
        assert torch.equal(got[bias], want[bias]) and want[bias].abs().sum() > 0


def test_manifest_records_inputs_outputs_and_versions(exported: Any, tiny_llama: Path) -> None:
    from trtbuild.fsutil import sha256_file
    from trtbuild.stages.checkpoint import CheckpointManifest

    out, manifest = exported(tiny_llama, weights="int4_awq", tp=2, awq_block_size=64)
    data = json.loads((out / "trtbuild-checkpoint.json").read_text())
    assert data["quant_algo"] == "W4A16_AWQ" and data["world_size"] == 2 and data["device"] == "cpu"
    assert data["converter"] == "modelopt" and data["converter_note"] is None
    assert data["versions"]["nvidia-modelopt"] == "0.47.0" and data["versions"]["torch"].startswith("2.")
    assert data["inputs"]["weights"] == "int4_awq" and data["inputs"]["awq_block_size"] == 64
    assert data["calibration"]["samples_used"] == 16 and data["calibration"]["passes"] == 2
    # Build facts (duration) and locations (model directory) are not in the artifact: it is reproducible.
    assert "wall_s" not in data and manifest.wall_s > 0
    assert "model_dir" not in data["inputs"] and str(tiny_llama) not in json.dumps(data)
    outputs = {f["path"]: f["sha256"] for f in data["files"]}
    assert {"config.json", "rank0.safetensors", "rank1.safetensors", "tokenizer/tokenizer.json"} <= set(outputs)
    for rel, digest in outputs.items():
        assert sha256_file(out / rel) == digest
    inputs = {f["path"]: f["sha256"] for f in data["input_files"]}
    assert inputs["model.safetensors"] == sha256_file(tiny_llama / "model.safetensors")
    assert CheckpointManifest.load(out) == manifest


def test_tokenizer_copied_and_usable(exported: Any, tiny_llama: Path) -> None:
    from transformers import AutoTokenizer

    out, _ = exported(tiny_llama, weights="none")
    copied, original = AutoTokenizer.from_pretrained(out / "tokenizer"), AutoTokenizer.from_pretrained(tiny_llama)
    text = "Zürich 東京 🚀 <|eot_id|>"
    assert copied(text).input_ids == original(text).input_ids
    assert (out / "tokenizer" / "tokenizer.json").read_bytes() == (tiny_llama / "tokenizer.json").read_bytes()


def test_same_seed_same_bytes_other_seed_other_scales(tmp_path: Path, tiny_llama: Path) -> None:
    from trtbuild.stages.checkpoint import run_checkpoint

    digests = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        m = run_checkpoint(make_inputs(tiny_llama, weights="fp8", calib_samples=8, calib_seed=seed), tmp_path / name)
        digests.append({f.path: f.sha256 for f in m.files}["rank0.safetensors"])
    assert digests[0] == digests[1]
    assert digests[2] != digests[0]  # another seed picks other samples → other activation scales


def test_progress_reports_each_calibration_pass(tmp_path: Path, tiny_llama: Path) -> None:
    from trtbuild.progress import Progress
    from trtbuild.stages.checkpoint import run_checkpoint

    events: list[tuple[str, str, int, int | None]] = []
    progress = Progress(enabled=False, sink=lambda ev, task: events.append((ev, task.name, task.done, task.total)))
    run_checkpoint(make_inputs(tiny_llama, weights="int4_awq", calib_samples=10, calib_batch_size=4),
                   tmp_path / "out", progress=progress)
    calib = [e for e in events if e[1].startswith("calibrate")]
    starts = [e for e in calib if e[0] == "start"]
    assert [s[1] for s in starts] == ["calibrate int4_awq/kv none (pass 1)", "calibrate int4_awq/kv none (pass 2)"]
    assert all(s[3] == 3 for s in starts)  # 10 samples in batches of 4
    assert [e[2] for e in calib if e[0] == "advance"] == [1, 2, 3, 1, 2, 3]
    assert any(e[1].startswith("export") for e in events) and any(e[1] == "verify checkpoint" for e in events)
