"""The streaming converter against ModelOpt: same request, byte-identical checkpoint directories.

Every case runs the checkpoint stage twice on the same tiny model, once with ``converter="modelopt"``
(transformers + ModelOpt's export) and once with ``converter="streaming"`` (numpy only), and compares
every output file byte for byte (rank files and config.json; the manifest differs by design).
"""

from __future__ import annotations

import filecmp
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from trtbuild.errors import CheckpointError

from .helpers import leftovers, make_inputs, needs_checkpoint_deps

needs_checkpoint_deps()
pytestmark = pytest.mark.slow

BIG_VOCAB = {"vocab": 514}  # not a multiple of 4: the embedding and lm_head get zero rows at tp=4


def size(**kw: Any) -> Any:
    from trtbuild.demo.tiny_model import ModelSize

    return ModelSize(**kw)


def assert_same_checkpoint(a: Path, b: Path) -> None:
    names = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    names.remove("trtbuild-checkpoint.json")
    assert {"config.json", "rank0.safetensors"} <= set(names)
    different = [n for n in names if not filecmp.cmp(a / n, b / n, shallow=False)]
    assert different == [], f"files differ between {a} and {b}: {different}"


def both(exported: Any, model: Path, **overrides: Any) -> tuple[Path, Path]:
    ref, ref_manifest = exported(model, converter="modelopt", **overrides)
    got, manifest = exported(model, converter="streaming", **overrides)
    assert (ref_manifest.converter, manifest.converter) == ("modelopt", "streaming")
    assert manifest.calibration == (("used", False),) and manifest.device == "cpu"
    return ref, got


@pytest.mark.parametrize("family, model_options, overrides", [
    ("llama", {}, {"tp": 1}),
    ("llama", {}, {"tp": 2}),
    ("llama", {}, {"tp": 4}),  # 2 KV heads on 4 ranks: each KV head duplicated
    ("llama", {}, {"pp": 2}),
    ("llama", {}, {"tp": 2, "pp": 2, "weights": "int8_wo"}),
    ("llama", {"tied": True}, {"tp": 2}),
    ("llama", {"tied": True}, {"tp": 2, "pp": 2}),
    ("llama", {"size": BIG_VOCAB}, {"tp": 4}),
    ("llama", {}, {"dtype": "bfloat16"}),  # fp16 → bf16
    ("llama", {"dtype": "bfloat16"}, {"tp": 2, "weights": "int4_wo"}),  # bf16 → fp16
    ("llama", {"dtype": "float32", "llama3_rope": False}, {"tp": 2}),  # fp32 → fp16
    ("llama", {"dtype": "float32"}, {"dtype": "bfloat16", "pp": 2}),  # fp32 → bf16
    ("qwen2", {}, {"tp": 2}),
    ("qwen2", {"tied": True, "size": BIG_VOCAB}, {"tp": 4, "dtype": "bfloat16"}),
    ("qwen2", {}, {"pp": 2}),
    ("mistral", {}, {"tp": 2}),
    ("mistral", {}, {"tp": 4, "dtype": "bfloat16"}),
    ("qwen3", {}, {"tp": 2}),
    ("qwen3", {"tied": True}, {"tp": 4, "pp": 2, "dtype": "bfloat16"}),
    ("mixtral", {}, {"tp": 2}),
    ("mixtral", {}, {"tp": 4}),
    ("mixtral", {"dtype": "bfloat16"}, {"pp": 2, "dtype": "float16"}),
])
def test_streaming_matches_modelopt(exported: Any, tiny: Any, family: str, model_options: dict[str, Any],
                                    overrides: dict[str, Any]) -> None:
    options = {**model_options, **({"size": size(**model_options["size"])} if "size" in model_options else {})}
    assert_same_checkpoint(*both(exported, tiny(family, **options), **overrides))


def edited_copy(src: Path, dst: Path, **config: Any) -> Path:
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(config)
    for key in [k for k, v in config.items() if v is None]:
        del cfg[key]
    (dst / "config.json").write_text(json.dumps(cfg, indent=2))
    return dst


@pytest.mark.parametrize("family, config", [
    ("llama", {"rope_scaling": {"type": "linear", "factor": 2.0}}),  # transformers copies type → rope_type
    ("mistral", {"rope_scaling": {"type": "linear", "factor": 2.0}}),  # ... but not for Mistral
    ("qwen2", {"rope_theta": 10000, "max_position_embeddings": 0}),  # int theta; 0 becomes ModelOpt's 2048
])
def test_config_variants_match(exported: Any, tiny: Any, tmp_path: Path, family: str, config: dict[str, Any]) -> None:
    model = edited_copy(tiny(family), tmp_path / family, **config)
    ref, got = both(exported, model, tp=2)
    assert_same_checkpoint(ref, got)
    exported_cfg = json.loads((got / "config.json").read_text())
    if "rope_scaling" in config:
        assert exported_cfg["rotary_scaling"]["factor"] == 2.0
    else:
        assert exported_cfg["rotary_base"] == 10000 and exported_cfg["max_position_embeddings"] == 2048


def test_sharded_input_matches(exported: Any, tiny: Any, tmp_path: Path) -> None:
    """Weights split over two safetensors files (with an index) convert to the same bytes."""
    from safetensors.torch import load_file, save_file

    model = Path(shutil.copytree(tiny("qwen3"), tmp_path / "sharded"))
    weights = load_file(str(model / "model.safetensors"))
    (model / "model.safetensors").unlink()
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, part in shards.items():
        save_file({n: weights[n] for n in part}, str(model / file), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {n: f for f, part in shards.items() for n in part}}
    (model / "model.safetensors.index.json").write_text(json.dumps(index))
    ref, got = both(exported, model, tp=2)
    assert_same_checkpoint(ref, got)
    single, _ = exported(tiny("qwen3"), converter="streaming", tp=2)
    for name in ("config.json", "rank0.safetensors", "rank1.safetensors"):
        assert (single / name).read_bytes() == (got / name).read_bytes()


def test_auto_uses_streaming_only_when_it_is_exact(tiny: Any, tmp_path: Path) -> None:
    from trtbuild.stages.checkpoint import run_checkpoint

    assert run_checkpoint(make_inputs(tiny("llama")), tmp_path / "a").converter == "streaming"
    model = edited_copy(tiny("llama"), tmp_path / "no-max-pos", max_position_embeddings=None)
    manifest = run_checkpoint(make_inputs(model), tmp_path / "b")
    assert manifest.converter == "modelopt"
    assert "max_position_embeddings" in (manifest.converter_note or "")
    assert json.loads((tmp_path / "b" / "trtbuild-checkpoint.json").read_text())["converter"] == "modelopt"
    with pytest.raises(CheckpointError, match="streaming converter cannot produce this checkpoint: "
                                              "config.json lacks max_position_embeddings"):
        run_checkpoint(make_inputs(model), tmp_path / "c", converter="streaming")
    with pytest.raises(CheckpointError, match="needs calibration"):
        run_checkpoint(make_inputs(tiny("llama"), weights="fp8"), tmp_path / "d", converter="streaming")
    assert leftovers(tmp_path, "c") == [] and leftovers(tmp_path, "d") == []
