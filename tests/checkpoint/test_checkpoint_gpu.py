"""The checkpoint stage on CUDA (ModelOpt calibration on the GPU), same checks as on CPU.

Marked `gpu`: skipped, with the reason, where torch sees no CUDA device. Run on a GPU machine with
`pytest -m gpu tests/checkpoint/test_checkpoint_gpu.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .dequant import linear_errors
from .helpers import hf_config, hf_weights, make_inputs, needs_checkpoint_deps

pytestmark = [pytest.mark.gpu, pytest.mark.slow]

LIMITS = {"fp8": 0.05, "int8_sq": 0.03, "int4_awq": 0.20, "nvfp4": 0.15}


@pytest.fixture(scope="module")
def cuda() -> None:
    needs_checkpoint_deps()
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (torch.cuda.is_available() is False)")


@pytest.mark.parametrize("weights", sorted(LIMITS))
def test_quantize_on_cuda_matches_the_cpu_limits(cuda: None, tiny_llama: Path, tmp_path: Path, weights: str) -> None:
    from trtbuild.progress import Progress
    from trtbuild.stages.checkpoint import run_checkpoint

    out = tmp_path / "ckpt"
    manifest = run_checkpoint(make_inputs(tiny_llama, weights=weights, tp=2), out, progress=Progress.silent(),
                              device="cuda")
    assert manifest.device.startswith("cuda")
    errors = linear_errors(out, hf_weights(tiny_llama), hf_config(tiny_llama), quant_algo=manifest.quant_algo,
                           tp=2, pp=1)
    assert errors and max(errors.values()) <= LIMITS[weights], errors


def test_default_device_is_cuda_when_present(cuda: None, tiny_llama: Path, tmp_path: Path) -> None:
    from trtbuild.progress import Progress
    from trtbuild.stages.checkpoint import run_checkpoint

    manifest = run_checkpoint(make_inputs(tiny_llama, weights="fp8"), tmp_path / "ckpt", progress=Progress.silent())
    assert manifest.device.startswith("cuda")
