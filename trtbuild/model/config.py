"""Read a model's HF ``config.json`` into the dimensions planning needs, and count its parameters.

Planning reads this one file and nothing else: never weights, never the tokenizer, never a
``*.safetensors`` index. Everything here is the standard library only.

``count_parameters`` is exact for the supported families (gated MLP, RMSNorm, optional q/k/v bias,
optional MoE experts, optional per-head q/k norm): it reproduces the published totals of
Llama-3.1-8B/70B, Mistral-7B-v0.3, Qwen2.5-7B, Mixtral-8x7B, Qwen3-8B and Gemma-2-9B from their
config.json alone (tests/unit/test_model_config.py).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import PlanError
from trtbuild.fsutil import read_regular_file

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja",
    "chat_template.json", "generation_config.json", "config.json",
)
"""The files of an HF model directory that make up its tokenizer, chat template and generation defaults:
what the checkpoint stage copies beside a checkpoint and the repository stage copies into a repository."""

MAX_CONFIG_BYTES = 1 << 20
"""A config.json larger than this (1 MiB) is refused: it is not a model config."""

_DTYPES = ("float16", "bfloat16", "float32")
_TIED_BY_DEFAULT = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text"})
"""model_types whose HF config class defaults ``tie_word_embeddings`` to True when the key is absent."""
_QKV_BIAS_ALWAYS = frozenset({"qwen2", "qwen2_moe"})
"""model_types whose q/k/v projections always carry a bias (and o_proj never does)."""
_QK_NORM = frozenset({"qwen3", "qwen3_moe"})
_FOUR_NORMS = frozenset({"gemma2", "gemma3", "gemma3_text"})


@dataclass(frozen=True)
class ModelDims:
    """The shape of a decoder-only transformer, as read from its HF config.json."""

    architecture: str
    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool
    torch_dtype: str
    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    num_experts: int
    """0 for a dense model."""
    experts_per_token: int
    moe_intermediate_size: int
    qk_norm: bool
    norms_per_layer: int
    rope_theta: float | None
    rope_scaling_json: str | None
    """Canonical JSON (sorted keys) of ``rope_scaling``; a string so the dataclass stays hashable."""
    sliding_window: int | None
    """The attention window when the model uses one (``use_sliding_window: false`` → None)."""
    source: str
    """The config.json this came from."""

    @property
    def rope_scaling(self) -> dict[str, Any] | None:
        if self.rope_scaling_json is None:
            return None
        value: dict[str, Any] = json.loads(self.rope_scaling_json)
        return value

    @property
    def rope_base(self) -> float:
        """rope_theta, or 10000 (the transformers default) when the config has none."""
        return 10000.0 if self.rope_theta is None else self.rope_theta

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0


@dataclass(frozen=True)
class ParameterCount:
    """Parameters by role. ``total`` counts a tied lm_head once (``lm_head`` is then 0)."""

    total: int
    embedding: int
    lm_head: int
    linear_per_layer: int
    """Quantizable linear weights of one layer: q/k/v/o and the (expert) MLP, without the router."""
    other_per_layer: int
    """Norms, biases, the MoE router and q/k norms of one layer: kept in high precision."""
    final_norm: int


# --------------------------------------------------------------------------------------------- loading
def _resolve(path: Path) -> Path:
    path = Path(path)
    if path.is_dir():
        return path / "config.json"
    return path


def load_model_config(path: Path) -> ModelDims:
    """Read ``path`` (a model directory holding config.json, or the config.json itself).

    Opens exactly one file. Every failure is a PlanError whose message starts with the file's path.
    """
    cfg_path = _resolve(path)
    where = str(cfg_path)
    try:
        size = os.stat(cfg_path).st_size
    except FileNotFoundError:
        if Path(path).is_dir():
            raise PlanError(f"{where}: no config.json in model directory {str(path)!r}") from None
        raise PlanError(f"{where}: model config not found") from None
    except OSError as exc:
        raise PlanError(f"{where}: cannot read model config: {exc.strerror or exc}") from None
    if size > MAX_CONFIG_BYTES:
        raise PlanError(f"{where}: {size} bytes is too large for a model config.json "
                        f"(limit {MAX_CONFIG_BYTES} bytes); is this the right file?")
    if os.path.isdir(cfg_path):
        raise PlanError(f"{where}: is a directory, expected a config.json file")
    try:  # a regular file only (a FIFO would block open()), read bounded (it may grow after the stat)
        raw = read_regular_file(cfg_path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise PlanError(f"{where}: cannot read model config: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PlanError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlanError(f"{where}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(cfg, dict):
        raise PlanError(f"{where}: expected a JSON object at the top level, got {type(cfg).__name__}")
    return dims_from_config(cfg, where)


def dims_from_config(cfg: dict[str, Any], source: str) -> ModelDims:
    """Validate an HF config dict and extract ModelDims. Errors name ``source``."""

    def fail(message: str) -> PlanError:
        return PlanError(f"{source}: {message}")

    def positive_int(key: str, value: Any = None) -> int:
        value = cfg[key] if value is None else value
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise fail(f"{key} must be a positive integer, got {value!r}")
        return value

    def optional_int(key: str, default: int) -> int:
        value = cfg.get(key)
        return default if value is None else positive_int(key, value)

    def flag(key: str, default: bool) -> bool:
        value = cfg.get(key, default)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise fail(f"{key} must be true or false, got {value!r}")
        return value

    required = ("architectures", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings")
    missing = [key for key in required if cfg.get(key) is None]
    if missing:
        raise fail("missing required key" + ("s " if len(missing) > 1 else " ") + ", ".join(missing))

    archs = cfg["architectures"]
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) and a for a in archs):
        raise fail(f"architectures must be a non-empty list of class names, got {archs!r}")
    model_type = cfg.get("model_type") or ""
    if not isinstance(model_type, str):
        raise fail(f"model_type must be a string, got {model_type!r}")

    vocab = positive_int("vocab_size")
    hidden = positive_int("hidden_size")
    layers = positive_int("num_hidden_layers")
    heads = positive_int("num_attention_heads")
    kv_heads = optional_int("num_key_value_heads", heads)
    intermediate = positive_int("intermediate_size")
    max_pos = positive_int("max_position_embeddings")
    if heads % kv_heads:
        raise fail(f"num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})")
    if cfg.get("head_dim") is not None:
        head_dim = positive_int("head_dim")
    elif hidden % heads:
        raise fail(f"hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) "
                   "and there is no head_dim")
    else:
        head_dim = hidden // heads

    dtype = cfg.get("torch_dtype") or cfg.get("dtype") or "float16"
    if dtype not in _DTYPES:
        raise fail(f"torch_dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")

    if model_type in _QKV_BIAS_ALWAYS:
        qkv_bias, o_bias = True, False
    else:
        qkv_bias = o_bias = flag("attention_bias", False)

    num_experts = 0
    for key in ("num_local_experts", "num_experts"):
        if cfg.get(key) is not None:
            num_experts = positive_int(key)
            break
    if num_experts:
        experts_per_token = optional_int("num_experts_per_tok", 1)
        if experts_per_token > num_experts:
            raise fail(f"num_experts_per_tok ({experts_per_token}) exceeds the number of experts "
                       f"({num_experts})")
        moe_intermediate = optional_int("moe_intermediate_size", intermediate)
    else:
        experts_per_token = moe_intermediate = 0

    rope_theta, rope_scaling = _rope(cfg, fail)
    window = cfg.get("sliding_window")
    if window is not None:
        window = positive_int("sliding_window", window)
        if cfg.get("use_sliding_window") is False:
            window = None

    return ModelDims(
        architecture=archs[0],
        model_type=model_type,
        vocab_size=vocab,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        max_position_embeddings=max_pos,
        tie_word_embeddings=flag("tie_word_embeddings", model_type in _TIED_BY_DEFAULT),
        torch_dtype=dtype,
        qkv_bias=qkv_bias,
        o_bias=o_bias,
        mlp_bias=flag("mlp_bias", False),
        num_experts=num_experts,
        experts_per_token=experts_per_token,
        moe_intermediate_size=moe_intermediate,
        qk_norm=model_type in _QK_NORM,
        norms_per_layer=4 if model_type in _FOUR_NORMS else 2,
        rope_theta=rope_theta,
        rope_scaling_json=None if rope_scaling is None else json.dumps(rope_scaling, sort_keys=True),
        sliding_window=window,
        source=source,
    )


def _rope(cfg: dict[str, Any], fail: Callable[[str], PlanError]) -> tuple[float | None, dict[str, Any] | None]:
    """rope_theta and rope_scaling; also understands transformers 5's ``rope_parameters``."""
    params = cfg.get("rope_parameters")
    if params is not None and not isinstance(params, dict):
        raise fail(f"rope_parameters must be an object, got {params!r}")
    theta = cfg.get("rope_theta")
    if theta is None and params:
        theta = params.get("rope_theta")
    if theta is not None:
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not theta > 0:
            raise fail(f"rope_theta must be a positive number, got {theta!r}")
        theta = float(theta)
    scaling = cfg.get("rope_scaling")
    if scaling is None and params:
        rest = {k: v for k, v in params.items() if k != "rope_theta"}
        if rest.get("rope_type", "default") != "default":
            scaling = rest
    if scaling is not None and not isinstance(scaling, dict):
        raise fail(f"rope_scaling must be an object or null, got {scaling!r}")
    return theta, scaling


# --------------------------------------------------------------------------------------------- sizing
def count_parameters(d: ModelDims) -> ParameterCount:
    """Exact parameter count of a gated-MLP decoder described by ``d``."""
    q_out = d.num_heads * d.head_dim
    kv_out = d.num_kv_heads * d.head_dim
    attn = d.hidden_size * (q_out + 2 * kv_out) + q_out * d.hidden_size
    if d.num_experts:
        mlp = d.num_experts * 3 * d.hidden_size * d.moe_intermediate_size
        mlp_bias = 0  # no supported MoE family has expert biases
        router = d.hidden_size * d.num_experts
    else:
        mlp = 3 * d.hidden_size * d.intermediate_size
        mlp_bias = (2 * d.intermediate_size + d.hidden_size) if d.mlp_bias else 0
        router = 0
    other = (
        d.norms_per_layer * d.hidden_size
        + ((q_out + 2 * kv_out) if d.qkv_bias else 0)
        + (d.hidden_size if d.o_bias else 0)
        + mlp_bias
        + router
        + (2 * d.head_dim if d.qk_norm else 0)
    )
    embedding = d.vocab_size * d.hidden_size
    lm_head = 0 if d.tie_word_embeddings else d.vocab_size * d.hidden_size
    final_norm = d.hidden_size
    total = embedding + lm_head + d.num_layers * (attn + mlp + other) + final_norm
    return ParameterCount(total=total, embedding=embedding, lm_head=lm_head,
                          linear_per_layer=attn + mlp, other_per_layer=other, final_norm=final_norm)


def kv_bytes_per_token(d: ModelDims, kv_bytes: float, *, tp: int = 1, pp: int = 1) -> int:
    """KV-cache bytes one token occupies on one rank (K and V, every layer the rank holds).

    KV heads per rank are ``ceil(num_kv_heads / tp)``: TensorRT-LLM duplicates KV heads when there are
    fewer than ``tp``. Layers per rank are ``ceil(num_layers / pp)`` (the largest pipeline stage).
    """
    if tp < 1 or pp < 1:
        raise ValueError(f"tp and pp must be >= 1, got tp={tp}, pp={pp}")
    if not kv_bytes > 0:
        raise ValueError(f"kv_bytes must be positive, got {kv_bytes}")
    heads = -(-d.num_kv_heads // tp)
    layers = -(-d.num_layers // pp)
    return math.ceil(2 * heads * d.head_dim * layers * kv_bytes)
