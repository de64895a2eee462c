"""The numpy-only pieces of the streaming converter: dtype casts, safetensors reading and writing,
and what the streaming path costs (imports, memory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trtbuild.errors import CheckpointError
from trtbuild.stages.safetensors_stream import (
    OutputTensor,
    SafetensorsWriter,
    index_tensors,
    read_rows,
    to_dtype,
)

from .helpers import needs_checkpoint_deps

needs_checkpoint_deps()
ROOT = Path(__file__).resolve().parents[2]
TORCH_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32"}
RAW = {"F16": np.float16, "BF16": np.uint16, "F32": np.float32}


def torch_bits(values: np.ndarray, src: str, dst: str) -> np.ndarray:
    """What torch's Tensor.to gives, as raw bits."""
    import torch

    t = torch.from_numpy(values.copy())
    if src == "BF16":
        t = t.view(torch.int16).view(torch.bfloat16)
    out = t.to(getattr(torch, TORCH_NAMES[dst]))
    if dst == "BF16":
        return out.view(torch.int16).numpy().view(np.uint16)
    return out.numpy()


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype.itemsize == b.dtype.itemsize and bool(np.array_equal(a.view(f"u{a.dtype.itemsize}"),
                                                                        b.view(f"u{b.dtype.itemsize}")))


def all_16bit(dtype: str) -> np.ndarray:
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    as_float = bits.view(np.float16).astype(np.float32) if dtype == "F16" else (
        (bits.astype(np.uint32) << 16).view(np.float32))
    return bits[~np.isnan(as_float)].view(RAW[dtype])


def f32_cases() -> np.ndarray:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 1 << 32, size=1 << 20, dtype=np.uint64).astype(np.uint32)
    halfway = (rng.integers(0, 1 << 16, size=4096, dtype=np.uint32) << 16) | 0x8000  # ties for bf16
    edges = np.array([0.0, -0.0, np.inf, -np.inf, 65504.0, 65520.0, 65519.99, 70000.0, 6e-8, 3e-8, 1e-5,
                      -6.1e-5, 3.4028235e38, 1.1754944e-38, 1e-45], dtype=np.float32)
    values = np.concatenate([bits.view(np.float32), halfway.view(np.float32), edges])
    return values[~np.isnan(values)]


@pytest.mark.parametrize("src, dst", [("F16", "BF16"), ("BF16", "F16"), ("F16", "F32"), ("BF16", "F32")])
def test_every_16bit_value_casts_like_torch(src: str, dst: str) -> None:
    values = all_16bit(src)
    assert same_bits(to_dtype(values, src, dst), torch_bits(values, src, dst))


@pytest.mark.parametrize("dst", ["F16", "BF16"])
def test_float32_casts_like_torch(dst: str) -> None:
    values = f32_cases()
    got = to_dtype(values, "F32", dst)
    assert same_bits(got, torch_bits(values, "F32", dst))
    assert np.isinf(got.view(np.float16) if dst == "F16" else (got.astype(np.uint32) << 16).view(np.float32)).any()


def test_nan_becomes_a_quiet_nan() -> None:
    values = np.array([np.nan, -np.nan, 1.0], dtype=np.float32)
    bf16 = to_dtype(values, "F32", "BF16")
    assert bf16[0] == bf16[1] == 0x7FC0 and bf16[2] == 0x3F80
    assert np.isnan(to_dtype(values, "F32", "F16")[:2]).all()


def tensors_for_layout() -> dict[str, tuple[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return {
        "b.weight": ("F16", rng.standard_normal((3, 5)).astype(np.float16)),
        "a.router": ("F32", rng.standard_normal((2, 4)).astype(np.float32)),
        "c.norm": ("BF16", rng.integers(0, 1 << 16, size=7, dtype=np.uint32).astype(np.uint16)),
        "a.weight": ("F16", rng.standard_normal((4, 2)).astype(np.float16)),
        "z.scale": ("F32", np.array([2.5], dtype=np.float32)),
    }


def test_writer_layout_is_the_safetensors_librarys(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    tensors = tensors_for_layout()
    ref = {n: torch.from_numpy(a.copy()).view(torch.bfloat16) if d == "BF16" else torch.from_numpy(a.copy())
           for n, (d, a) in tensors.items()}
    save_file(ref, str(tmp_path / "ref.safetensors"))
    writer = SafetensorsWriter(tmp_path / "got.safetensors",
                               [OutputTensor(n, d, a.shape) for n, (d, a) in tensors.items()])
    for name, (_, array) in reversed(tensors.items()):  # pieces in any order: last row first
        row = array.reshape(array.shape[0], -1)
        for i in reversed(range(row.shape[0])):
            writer.write(name, i * row[i].nbytes, row[i].tobytes())
    writer.close()
    assert (tmp_path / "got.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()
    index = index_tensors([tmp_path / "got.safetensors"])
    assert [n for n in index] == ["a.router", "z.scale", "c.norm", "a.weight", "b.weight"]  # F32, BF16, F16
    assert np.array_equal(read_rows(index["b.weight"], 1, 3), tensors["b.weight"][1][1:3])
    assert np.array_equal(read_rows(index["c.norm"], 2, 5).ravel(), tensors["c.norm"][1][2:5])


def test_writer_refuses_gaps_and_overflows(tmp_path: Path) -> None:
    writer = SafetensorsWriter(tmp_path / "x.safetensors",
                               [OutputTensor("a", "F16", (2, 2)), OutputTensor("b", "F32", (1,))])
    writer.write("a", 0, bytes(4))
    with pytest.raises(CheckpointError, match="overflows a"):
        writer.write("a", 4, bytes(8))
    writer.write_zeros("b", 0, 4)
    with pytest.raises(CheckpointError, match=r"incompletely written tensors: a \(4 of 8 bytes\)"):
        writer.close()


def test_a_tensor_in_two_shards_is_an_error(tmp_path: Path) -> None:
    for name in ("one", "two"):
        w = SafetensorsWriter(tmp_path / f"{name}.safetensors", [OutputTensor("dup", "F16", (1,))])
        w.write("dup", 0, bytes(2))
        w.close()
    with pytest.raises(CheckpointError, match="tensor dup is in both .*one.safetensors and .*two.safetensors"):
        index_tensors([tmp_path / "one.safetensors", tmp_path / "two.safetensors"])


CHILD = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
def hwm():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) * 1024
from trtbuild.stages import checkpoint, streaming_checkpoint as s
from trtbuild.stages.checkpoint import CheckpointInputs, preflight
inputs = CheckpointInputs(model_dir=Path({model!r}), architecture="LlamaForCausalLM", decoder_type="llama",
    dtype="bfloat16", weights="none", kv_cache="none", awq_block_size=128, calib_dataset="builtin",
    calib_samples=1, calib_max_seq_len=8, calib_batch_size=1, calib_seed=0, tp=2, pp=1, trust_remote_code=False)
hf_cfg, dims, sources = preflight(inputs)
import numpy
before = hwm()
plans = s.plan_ranks(dims, sources, dtype="bfloat16", tp=2, pp=1, tied=False)
out = Path({out!r}); out.mkdir()
s.write_ranks(plans, sources, out, chunk_bytes=1 << 20)
grown = hwm() - before
manifest = checkpoint.run_checkpoint(inputs, Path({out!r} + "-stage"))
heavy = {{"torch", "transformers", "modelopt", "safetensors", "tokenizers", "accelerate"}}
print(json.dumps({{"grown": grown, "converter": manifest.converter,
                  "heavy": sorted(heavy & {{m.split(".")[0] for m in sys.modules}})}}))
"""


def test_streaming_imports_no_torch_and_memory_does_not_grow_with_the_model(tiny: object, tmp_path: Path) -> None:
    from trtbuild.demo.tiny_model import ModelSize

    model = tiny("llama", size=ModelSize(vocab=8192, hidden=512, intermediate=1536, layers=4, heads=8,  # type: ignore[operator]
                                         kv_heads=4))
    model_bytes = (model / "model.safetensors").stat().st_size
    code = CHILD.format(root=str(ROOT), model=str(model), out=str(tmp_path / "ranks"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == [] and report["converter"] == "streaming"
    assert model_bytes > 40 << 20
    # 1 MiB row blocks (fp16 in, bf16 out, a float32 intermediate): a few MiB, whatever the model's size.
    assert report["grown"] < 12 << 20, report
