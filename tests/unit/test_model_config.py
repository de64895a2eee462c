"""Reading config.json, exact parameter counts of real models, KV bytes per token, and every error.

The configs under recipes/models/ are the published HF config.json files. The expected totals are the
published parameter counts (the safetensors "total" shown on each Hugging Face model page). Each one
is reproduced exactly by ``count_parameters`` from config.json alone; what makes each one come out right:

* Llama-3.1-8B / 70B, Mistral-7B-v0.3: untied lm_head, no biases, 2 RMSNorms per layer + final norm.
* Qwen2.5-7B: q/k/v carry biases (q 3584 + k 512 + v 512 per layer), o_proj does not.
* Mixtral-8x7B: 8 experts × (gate, up, down) per layer plus the router (hidden × 8) — the router is
  what makes it 46,702,792,704 rather than 46,701,744,128.
* Qwen3-8B: explicit head_dim 128 and a per-head q_norm and k_norm (2 × 128 per layer).
* Gemma-2-9B: head_dim 256 (16 heads × 256 = 4096 ≠ hidden 3584), 4 RMSNorms per layer, and tied
  embeddings counted once — config.json has no tie_word_embeddings key; Gemma2Config defaults it to True.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trtbuild.errors import PlanError
from trtbuild.model.config import (
    MAX_CONFIG_BYTES,
    ModelDims,
    count_parameters,
    dims_from_config,
    kv_bytes_per_token,
    load_model_config,
)

MODELS = Path(__file__).resolve().parents[2] / "recipes" / "models"

PUBLISHED = {
    "llama-3.1-8b-instruct": 8_030_261_248,
    "llama-3.1-70b-instruct": 70_553_706_496,
    "mistral-7b-instruct-v0.3": 7_248_023_552,
    "qwen2.5-7b-instruct": 7_615_616_512,
    "mixtral-8x7b-instruct-v0.1": 46_702_792_704,
    "qwen3-8b": 8_190_735_360,
    "gemma-2-9b-it": 9_241_705_984,
}


def model(name: str) -> ModelDims:
    return load_model_config(MODELS / name)


def minimal(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 1000,
        "hidden_size": 256,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "intermediate_size": 512,
        "max_position_embeddings": 2048,
    }
    cfg.update(overrides)
    return {k: v for k, v in cfg.items() if v is not ...}


def write(tmp_path: Path, content: str | bytes, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# --------------------------------------------------------------------------------------- real models
@pytest.mark.parametrize(("name", "total"), sorted(PUBLISHED.items()))
def test_published_parameter_counts(name: str, total: int) -> None:
    counts = count_parameters(model(name))
    assert counts.total == total
    d = model(name)
    per_layer = counts.linear_per_layer + counts.other_per_layer
    assert counts.total == counts.embedding + counts.lm_head + d.num_layers * per_layer + counts.final_norm


def test_llama_8b_dims_and_breakdown() -> None:
    d = model("llama-3.1-8b-instruct")
    assert (d.architecture, d.model_type, d.torch_dtype) == ("LlamaForCausalLM", "llama", "bfloat16")
    assert (d.hidden_size, d.num_layers, d.num_heads, d.num_kv_heads, d.head_dim) == (4096, 32, 32, 8, 128)
    assert d.max_position_embeddings == 131072 and d.rope_theta == 500000.0
    assert d.rope_scaling == {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192, "rope_type": "llama3"}
    assert d.rope_scaling_json == json.dumps(d.rope_scaling, sort_keys=True)
    assert d.source == str(MODELS / "llama-3.1-8b-instruct" / "config.json")
    c = count_parameters(d)
    assert (c.embedding, c.lm_head, c.final_norm) == (525_336_576, 525_336_576, 4096)
    assert c.linear_per_layer == 4 * 4096 * 4096 - 2 * 4096 * 3072 + 3 * 4096 * 14336
    assert c.other_per_layer == 2 * 4096


def test_qwen25_bias_and_disabled_sliding_window() -> None:
    d = model("qwen2.5-7b-instruct")
    assert d.qkv_bias and not d.o_bias and not d.mlp_bias
    assert d.sliding_window is None  # sliding_window: 131072 but use_sliding_window: false
    assert count_parameters(d).other_per_layer == 2 * 3584 + (3584 + 512 + 512)


def test_mixtral_moe() -> None:
    d = model("mixtral-8x7b-instruct-v0.1")
    assert d.is_moe and (d.num_experts, d.experts_per_token, d.moe_intermediate_size) == (8, 2, 14336)
    c = count_parameters(d)
    assert c.other_per_layer == 2 * 4096 + 4096 * 8  # norms + router
    assert c.linear_per_layer == 4 * 4096 * 4096 - 2 * 4096 * 3072 + 8 * 3 * 4096 * 14336


def test_qwen3_qk_norm() -> None:
    d = model("qwen3-8b")
    assert d.qk_norm and d.head_dim == 128 and not d.qkv_bias
    assert d.rope_theta == 1_000_000.0 and isinstance(d.rope_theta, float)
    assert d.rope_scaling is None and d.sliding_window is None
    assert count_parameters(d).other_per_layer == 2 * 4096 + 2 * 128


def test_gemma2_tied_four_norms_window() -> None:
    d = model("gemma-2-9b-it")
    assert d.tie_word_embeddings and d.norms_per_layer == 4
    assert d.head_dim == 256 and d.num_heads * d.head_dim != d.hidden_size
    assert d.sliding_window == 4096
    assert count_parameters(d).lm_head == 0


def test_dims_are_hashable() -> None:
    assert len({model("llama-3.1-8b-instruct"), model("llama-3.1-8b-instruct")}) == 1


def test_config_file_path_works_as_well_as_the_directory() -> None:
    directory = MODELS / "mistral-7b-instruct-v0.3"
    assert load_model_config(directory / "config.json") == load_model_config(directory)


# ------------------------------------------------------------------------------------------- KV bytes
def test_kv_bytes_llama_8b() -> None:
    d = model("llama-3.1-8b-instruct")
    assert kv_bytes_per_token(d, 2) == 131_072
    assert kv_bytes_per_token(d, 1) == 65_536  # fp8 / int8
    assert kv_bytes_per_token(d, 2, tp=2) == 65_536
    assert kv_bytes_per_token(d, 2, tp=8) == 16_384
    # 8 KV heads on 16 ranks: each rank still holds one whole (duplicated) head.
    assert kv_bytes_per_token(d, 2, tp=16) == 16_384
    assert kv_bytes_per_token(d, 2, pp=3) == 2 * 8 * 128 * 11 * 2  # ceil(32 / 3) layers


def test_kv_bytes_other_models() -> None:
    assert kv_bytes_per_token(model("llama-3.1-70b-instruct"), 2) == 2 * 8 * 128 * 80 * 2
    assert kv_bytes_per_token(model("qwen2.5-7b-instruct"), 2, tp=8) == 2 * 1 * 128 * 28 * 2
    assert kv_bytes_per_token(model("gemma-2-9b-it"), 2) == 2 * 8 * 256 * 42 * 2


def test_kv_bytes_rejects_bad_arguments() -> None:
    d = model("qwen3-8b")
    with pytest.raises(ValueError):
        kv_bytes_per_token(d, 2, tp=0)
    with pytest.raises(ValueError):
        kv_bytes_per_token(d, 2, pp=0)
    with pytest.raises(ValueError):
        kv_bytes_per_token(d, 0)


# ------------------------------------------------------------------------------------ parsing details
def test_defaults_when_keys_are_absent() -> None:
    d = dims_from_config(minimal(), "x/config.json")
    assert d.torch_dtype == "float16"
    assert d.head_dim == 64 and d.num_kv_heads == 2
    assert not d.tie_word_embeddings and not d.qkv_bias and d.num_experts == 0
    assert d.rope_theta is None and d.sliding_window is None
    assert dims_from_config(minimal(num_key_value_heads=...), "s").num_kv_heads == 4


def test_dtype_key_from_newer_transformers() -> None:
    assert dims_from_config(minimal(dtype="bfloat16"), "s").torch_dtype == "bfloat16"


def test_rope_parameters_from_transformers_5() -> None:
    cfg = minimal(rope_parameters={"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0})
    d = dims_from_config(cfg, "s")
    assert d.rope_theta == 500000.0
    assert d.rope_scaling == {"rope_type": "llama3", "factor": 8.0}
    plain = dims_from_config(minimal(rope_parameters={"rope_theta": 1e6, "rope_type": "default"}), "s")
    assert (plain.rope_theta, plain.rope_scaling) == (1e6, None)


def test_sliding_window_without_use_flag_is_kept() -> None:
    assert dims_from_config(minimal(sliding_window=4096), "s").sliding_window == 4096


def test_only_config_json_in_a_directory(tmp_path: Path) -> None:
    shutil.copy(MODELS / "qwen3-8b" / "config.json", tmp_path / "config.json")
    assert count_parameters(load_model_config(tmp_path)).total == PUBLISHED["qwen3-8b"]


_OPENED: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def test_opens_no_file_but_config_json(tmp_path: Path) -> None:
    global _OPENED
    shutil.copy(MODELS / "llama-3.1-8b-instruct" / "config.json", tmp_path / "config.json")
    for name in ("model.safetensors", "model.safetensors.index.json", "tokenizer.json"):
        write(tmp_path, os.urandom(4096), name).chmod(0)
    _OPENED = []
    try:
        d = load_model_config(tmp_path)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    assert count_parameters(d).total == PUBLISHED["llama-3.1-8b-instruct"]
    assert opened == [str(tmp_path / "config.json")]


def test_planning_modules_import_no_heavy_libraries() -> None:
    code = ("import sys, trtbuild.catalog.gpus, trtbuild.model.architectures, "
            "trtbuild.model.config; "
            "print(sorted(m for m in ('torch', 'transformers', 'modelopt', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------- errors
def test_missing_config_in_directory(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match=r"config\.json") as info:
        load_model_config(tmp_path)
    assert str(tmp_path) in str(info.value) and info.value.exit_code == 3


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="not found") as info:
        load_model_config(tmp_path / "nope" / "config.json")
    assert str(tmp_path / "nope" / "config.json") in str(info.value)


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "hidden_size": 4096,\n  "vocab_size": ,\n}\n')
    with pytest.raises(PlanError) as info:
        load_model_config(path)
    assert str(info.value).startswith(f"{path}:3:17: invalid JSON")


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="JSON object"):
        load_model_config(write(tmp_path, "[1, 2]"))


def test_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="UTF-8"):
        load_model_config(write(tmp_path, b'{"a": "\xff\xfe"}'))


def test_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    body = json.dumps(minimal())
    path = write(tmp_path, body + " " * (MAX_CONFIG_BYTES + 1 - len(body)))
    with pytest.raises(PlanError, match="too large") as info:
        load_model_config(path)
    assert str(path) in str(info.value)
    exactly = write(tmp_path, body + " " * (MAX_CONFIG_BYTES - len(body)), "ok.json")
    assert load_model_config(exactly).hidden_size == 256


def test_directory_named_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    with pytest.raises(PlanError, match="directory"):
        load_model_config(tmp_path / "config.json")


def test_missing_required_keys_are_all_listed(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(minimal(hidden_size=..., vocab_size=...)))
    with pytest.raises(PlanError) as info:
        load_model_config(path)
    assert str(info.value) == f"{path}: missing required keys vocab_size, hidden_size"


@pytest.mark.parametrize(
    ("key", "value"),
    [("hidden_size", 0), ("num_hidden_layers", -1), ("vocab_size", 4096.5), ("hidden_size", 256.0),
     ("num_attention_heads", "4"), ("intermediate_size", True), ("head_dim", 0),
     ("num_key_value_heads", 0), ("max_position_embeddings", None)],
)
def test_bad_dimensions(tmp_path: Path, key: str, value: Any) -> None:
    path = write(tmp_path, json.dumps(minimal(**{key: value})))
    with pytest.raises(PlanError) as info:
        load_model_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert key in str(info.value)


def test_hidden_not_divisible_by_heads_without_head_dim(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps(minimal(hidden_size=250, num_attention_heads=4, num_key_value_heads=4)))
    with pytest.raises(PlanError, match="not divisible"):
        load_model_config(path)
    ok = dims_from_config(minimal(hidden_size=250, num_key_value_heads=4, head_dim=64), "s")
    assert ok.head_dim == 64


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [({"num_key_value_heads": 3}, "multiple"), ({"torch_dtype": "int8"}, "torch_dtype"),
     ({"architectures": []}, "architectures"), ({"tie_word_embeddings": "yes"}, "tie_word_embeddings"),
     ({"rope_scaling": [1]}, "rope_scaling"), ({"rope_theta": -1}, "rope_theta"),
     ({"num_local_experts": 2, "num_experts_per_tok": 3}, "num_experts_per_tok")],
)
def test_other_invalid_values(overrides: dict[str, Any], needle: str) -> None:
    with pytest.raises(PlanError, match=needle) as info:
        dims_from_config(minimal(**overrides), "m/config.json")
    assert str(info.value).startswith("m/config.json: ")


# ----------------------------------------------------------------------------------------- properties
@given(
    kv=st.integers(1, 16), group=st.integers(1, 8), head_dim=st.sampled_from([64, 80, 128, 256]),
    layers=st.integers(1, 96), tp=st.integers(1, 64), pp=st.integers(1, 8),
)
def test_kv_sharding_never_loses_heads(kv: int, group: int, head_dim: int, layers: int, tp: int,
                                       pp: int) -> None:
    heads = kv * group
    d = dims_from_config(minimal(num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
                                 num_hidden_layers=layers), "s")
    full = kv_bytes_per_token(d, 2)
    sharded = kv_bytes_per_token(d, 2, tp=tp, pp=pp)
    assert full == 2 * kv * head_dim * layers * 2
    assert sharded * tp * pp >= full
    if kv % tp == 0 and layers % pp == 0:
        assert sharded * tp * pp == full
