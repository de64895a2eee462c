"""A real engine build: tiny model → checkpoint stage → trtllm-build on this machine's GPU.

Runs only where TensorRT-LLM 1.2.x (``trtllm-build`` on PATH) and an NVIDIA GPU from the catalog are
present; everywhere else it is skipped with the reason. ``pytest -m gpu`` selects it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.gpu


def _local_toolchain():
    if shutil.which("trtllm-build") is None:
        pytest.skip("needs TensorRT-LLM 1.2.x: `trtllm-build` is not on PATH")
    from trtbuild.errors import ToolchainError
    from trtbuild.toolchain.detect import SUPPORTED_TRTLLM, detect_local_toolchain

    try:
        info = detect_local_toolchain()
    except ToolchainError as exc:
        pytest.skip(f"toolchain probe failed: {exc}")
    if not info.trtllm_version or not SUPPORTED_TRTLLM.contains(info.trtllm_version):
        pytest.skip(f"needs TensorRT-LLM {SUPPORTED_TRTLLM.label}, found {info.trtllm_version}")
    if not info.gpus:
        pytest.skip(f"no NVIDIA GPU visible ({info.gpu_error})")
    return info


def test_tiny_engine_builds_for_real(tmp_path):
    info = _local_toolchain()
    from trtbuild.catalog.gpus import find_gpu

    gpu = find_gpu(info.gpus[0].name)
    if gpu is None or gpu.sm != info.gpus[0].sm:
        pytest.skip(f"GPU {info.gpus[0].name!r} (SM {info.gpus[0].sm}) is not in the catalog")
    pytest.importorskip("torch", reason="the checkpoint stage needs torch")
    pytest.importorskip("modelopt", reason="the checkpoint stage needs nvidia-modelopt")
    try:
        from trtbuild.demo.tiny_model import make_tiny_model
        from trtbuild.stages.checkpoint import CheckpointInputs, run_checkpoint
    except ImportError as exc:
        pytest.skip(f"checkpoint stage not available: {exc}")
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import parse_recipe
    from trtbuild.stages.engine import MANIFEST_NAME, run_engine_stage
    from trtbuild.toolchain.executors import LocalExecutor

    model = make_tiny_model(tmp_path / "tiny-llama", family="llama")
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(
        "recipe: 1\nname: tiny-llama\nmodel:\n  source: tiny-llama\ndtype: float16\n"
        "build:\n  max_batch_size: 4\n  max_input_len: 64\n  max_seq_len: 128\n  max_num_tokens: 256\n"
        "runtime:\n  kv_cache:\n    reuse: true\n")
    plan = make_plan(parse_recipe(recipe.read_text(), recipe), gpu.key)
    assert plan.feasible, [d.format() for d in plan.errors]
    s = plan.settings
    inputs = CheckpointInputs.from_recipe(
        model_dir=model, architecture=plan.model["architecture"], decoder_type=plan.model["decoder_type"],
        dtype=s.dtype, model=s.model, quantization=s.quantization, parallelism=s.parallelism)
    run_checkpoint(inputs, tmp_path / "ckpt")

    manifest = run_engine_stage(plan, tmp_path / "ckpt", tmp_path / "engine", executor=LocalExecutor(),
                                toolchain_info=info, cache_root=tmp_path / "cache")
    engine = tmp_path / "engine"
    assert manifest.fake is False and manifest.trtllm_version == info.trtllm_version
    assert manifest.gpu_sm == gpu.sm
    assert (engine / "rank0.engine").stat().st_size > 100_000
    config = json.loads((engine / "config.json").read_text())
    assert config["build_config"]["max_seq_len"] == 128
    assert json.loads((engine / MANIFEST_NAME).read_text())["command"][0] == "trtllm-build"
    assert Path(tmp_path / "cache" / "timing-cache" / f"{gpu.key}-sm{gpu.sm}.cache").is_file()
