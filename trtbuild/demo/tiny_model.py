"""Build a tiny Hugging Face model offline and deterministically (same bytes on every run).

Used by `trtbuild demo-model DIR`, by the tests and by the demo recipe: a 2-layer decoder with a
byte-level BPE tokenizer trained on :mod:`trtbuild.demo.corpus`. Families: ``llama``, ``qwen2`` (q/k/v
bias), ``mistral``, ``qwen3`` (per-head q/k RMSNorm, head_dim 128 != hidden/heads), ``mixtral`` (4
experts, top-2) and ``gemma2`` (four norms per layer, tied embeddings, soft-capping, head_dim 128).
Nothing is downloaded and nothing is trained except the tokenizer; weights are drawn from a seeded
torch generator with scales chosen so that greedy decoding produces varied tokens instead of repeating one.

Files written: ``config.json``, ``generation_config.json``, ``model.safetensors``,
``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``.
torch and tokenizers are imported inside the functions so importing this module stays cheap.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.demo.corpus import corpus_text
from trtbuild.errors import UsageError
from trtbuild.fsutil import staged_dir

FAMILIES = ("llama", "qwen2", "mistral", "qwen3", "mixtral", "gemma2")
DTYPES = ("float16", "bfloat16", "float32")

VOCAB_SIZE = 512
HIDDEN_SIZE = 256
INTERMEDIATE_SIZE = 512
NUM_LAYERS = 2
NUM_HEADS = 4
NUM_KV_HEADS = 2
HEAD_DIM = HIDDEN_SIZE // NUM_HEADS

# Special tokens get the first ids, in this order.
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<|eot_id|>")
UNK_ID, BOS_ID, EOS_ID, PAD_ID, EOT_ID = range(len(SPECIAL_TOKENS))
END_IDS = (EOS_ID, EOT_ID)

LLAMA3_ROPE_THETA = 500000.0
LLAMA3_ROPE_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


@dataclass(frozen=True)
class ModelSize:
    """Dimensions of a generated model (the tiny defaults; benchmarks use larger ones)."""

    vocab: int = VOCAB_SIZE
    hidden: int = HIDDEN_SIZE
    intermediate: int = INTERMEDIATE_SIZE
    layers: int = NUM_LAYERS
    heads: int = NUM_HEADS
    kv_heads: int = NUM_KV_HEADS
    head_dim: int = 0
    """0: the family's default (hidden/heads; 128 for qwen3 and gemma2, whose configs set it explicitly)."""
    experts: int = 4
    """Routed experts per layer (mixtral only)."""
    experts_per_token: int = 2


def make_tiny_model(out_dir: Path, *, family: str = "llama", llama3_rope: bool = True, seed: int = 0,
                    dtype: str = "float16", size: ModelSize = ModelSize(), tied: bool | None = None) -> Path:
    """Write a tiny HF checkpoint into ``out_dir`` (replaced atomically) and return it.

    ``family``: one of :data:`FAMILIES` (``llama`` is LlamaForCausalLM, ``qwen2`` Qwen2ForCausalLM, ...).
    ``llama3_rope`` (llama only): rope_theta 500000 and Llama-3 rope_scaling; otherwise theta 10000.
    ``size``: other dimensions (e.g. a ~150M-parameter model for benchmarks); the tokenizer keeps
    its 512 tokens, so a larger vocab simply has rows no text maps to.
    ``tied``: tie lm_head to the embedding (then no ``lm_head.weight`` is written); None: the
    family's default (gemma2 tied, the others not).
    """
    if family not in FAMILIES:
        raise UsageError(f"unknown tiny model family {family!r}; expected one of {', '.join(FAMILIES)}")
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r} for the tiny model; expected one of {', '.join(DTYPES)}")
    if size.vocab < VOCAB_SIZE or size.hidden % size.heads or size.heads % size.kv_heads:
        raise UsageError(f"inconsistent model size {size}: vocab >= {VOCAB_SIZE}, heads | hidden, kv_heads | heads")
    config = _model_config(family, llama3_rope=llama3_rope and family == "llama", dtype=dtype, size=size)
    if tied is not None:
        config["tie_word_embeddings"] = tied
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as stage:
        _write_tokenizer(stage)
        _write_json(stage / "config.json", config)
        _write_json(stage / "generation_config.json", {
            "bos_token_id": BOS_ID,
            "eos_token_id": list(END_IDS),
            "pad_token_id": PAD_ID,
            "do_sample": False,
        })
        _write_weights(stage / "model.safetensors", config, seed=seed, dtype=dtype)
    return out_dir


# ------------------------------------------------------------------------------------------ config
def _model_config(family: str, *, llama3_rope: bool, dtype: str, size: ModelSize) -> dict[str, Any]:
    common: dict[str, Any] = {
        "vocab_size": size.vocab,
        "hidden_size": size.hidden,
        "intermediate_size": size.intermediate,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.kv_heads,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
        "pad_token_id": PAD_ID,
        "tie_word_embeddings": False,
        "use_cache": True,
        "torch_dtype": dtype,
    }
    head_dim = size.head_dim or (128 if family in ("qwen3", "gemma2") else size.hidden // size.heads)
    if family == "llama":
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            **common,
            "head_dim": head_dim,
            "max_position_embeddings": 16384 if llama3_rope else 4096,
            "rms_norm_eps": 1e-5,
            "attention_bias": False,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "rope_theta": LLAMA3_ROPE_THETA if llama3_rope else 10000.0,
            "rope_scaling": dict(LLAMA3_ROPE_SCALING) if llama3_rope else None,
        }
    if family == "qwen2":
        return {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": "qwen2",
            **common,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "rope_scaling": None,
            "use_sliding_window": False,
            "sliding_window": None,
            "max_window_layers": size.layers,
        }
    extra: dict[str, dict[str, Any]] = {
        "mistral": {"architectures": ["MistralForCausalLM"], "model_type": "mistral", "rms_norm_eps": 1e-5,
                    "rope_theta": 1000000.0, "sliding_window": None, "max_position_embeddings": 32768},
        "qwen3": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "rms_norm_eps": 1e-6,
                  "rope_theta": 1000000.0, "rope_scaling": None, "attention_bias": False,
                  "max_position_embeddings": 40960, "use_sliding_window": False, "sliding_window": None,
                  "max_window_layers": size.layers},
        "mixtral": {"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "rms_norm_eps": 1e-5,
                    "rope_theta": 1000000.0, "sliding_window": None, "max_position_embeddings": 32768,
                    "num_local_experts": size.experts, "num_experts_per_tok": size.experts_per_token,
                    "output_router_logits": False, "router_aux_loss_coef": 0.02, "router_jitter_noise": 0.0},
        "gemma2": {"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "rms_norm_eps": 1e-6,
                   "rope_theta": 10000.0, "hidden_act": "gelu_pytorch_tanh",
                   "hidden_activation": "gelu_pytorch_tanh", "max_position_embeddings": 8192,
                   "tie_word_embeddings": True, "attention_bias": False, "query_pre_attn_scalar": head_dim,
                   "sliding_window": 4096, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
                   "cache_implementation": "hybrid"},
    }
    return {**common, "head_dim": head_dim, **extra[family]}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------------------- tokenizer
def train_tokenizer() -> Any:
    """A byte-level BPE (``tokenizers.Tokenizer``) trained on the built-in corpus; adds BOS."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus_text().splitlines(keepends=True), trainer=trainer)
    for i, token in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(token) != i:
            raise AssertionError(f"special token {token} got id {tok.token_to_id(token)}, expected {i}")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", BOS_ID)])
    return tok


def _write_tokenizer(stage: Path) -> None:
    tok = train_tokenizer()
    tok.save(str(stage / "tokenizer.json"), pretty=True)
    added = {
        str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, t in enumerate(SPECIAL_TOKENS)
    }
    _write_json(stage / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "additional_special_tokens": ["<|eot_id|>"],
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 4096,
        "padding_side": "left",
    })
    _write_json(stage / "special_tokens_map.json", {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "additional_special_tokens": ["<|eot_id|>"],
    })


# ----------------------------------------------------------------------------------------- weights
def _weight_shapes(config: dict[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
    """HF tensor name → (shape, init kind) for the family of ``config``."""
    h, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    family = config["model_type"]
    hd = config.get("head_dim") or h // config["num_attention_heads"]
    q_out, kv_out = config["num_attention_heads"] * hd, config["num_key_value_heads"] * hd
    bias = family == "qwen2"
    shapes: dict[str, tuple[tuple[int, ...], str]] = {
        "model.embed_tokens.weight": ((v, h), "embedding"),
        "model.norm.weight": ((h,), "norm"),
    }
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = ((v, h), "linear")
    for n in range(config["num_hidden_layers"]):
        p = f"model.layers.{n}."
        shapes[p + "input_layernorm.weight"] = ((h,), "norm")
        shapes[p + "post_attention_layernorm.weight"] = ((h,), "norm")
        shapes[p + "self_attn.q_proj.weight"] = ((q_out, h), "linear")
        shapes[p + "self_attn.k_proj.weight"] = ((kv_out, h), "linear")
        shapes[p + "self_attn.v_proj.weight"] = ((kv_out, h), "linear")
        shapes[p + "self_attn.o_proj.weight"] = ((h, q_out), "linear")
        if family == "mixtral":
            moe = p + "block_sparse_moe."
            shapes[moe + "gate.weight"] = ((config["num_local_experts"], h), "linear")
            for e in range(config["num_local_experts"]):
                shapes[moe + f"experts.{e}.w1.weight"] = ((i, h), "linear")
                shapes[moe + f"experts.{e}.w2.weight"] = ((h, i), "linear")
                shapes[moe + f"experts.{e}.w3.weight"] = ((i, h), "linear")
        else:
            shapes[p + "mlp.gate_proj.weight"] = ((i, h), "linear")
            shapes[p + "mlp.up_proj.weight"] = ((i, h), "linear")
            shapes[p + "mlp.down_proj.weight"] = ((h, i), "linear")
        if bias:
            for proj, out in (("q_proj", q_out), ("k_proj", kv_out), ("v_proj", kv_out)):
                shapes[p + f"self_attn.{proj}.bias"] = ((out,), "bias")
        if family == "qwen3":
            shapes[p + "self_attn.q_norm.weight"] = ((hd,), "norm")
            shapes[p + "self_attn.k_norm.weight"] = ((hd,), "norm")
        if family == "gemma2":
            # Gemma RMSNorm scales by (1 + weight): draw the offsets around zero.
            for norm in ("input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                         "post_feedforward_layernorm"):
                shapes[p + f"{norm}.weight"] = ((h,), "norm_offset")
    if family == "gemma2":
        shapes["model.norm.weight"] = ((h,), "norm_offset")
        # Gemma scales the (tied) embedding by sqrt(hidden) on input: small rows keep the token's own
        # embedding from dominating the residual stream, which would make greedy decoding repeat it.
        shapes["model.embed_tokens.weight"] = ((v, h), "small_embedding")
    return shapes


def _write_weights(path: Path, config: dict[str, Any], *, seed: int, dtype: str) -> None:
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator(device="cpu").manual_seed(seed)
    tensors = {}
    for name, (shape, kind) in sorted(_weight_shapes(config).items()):
        if kind == "norm":
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif kind in ("bias", "norm_offset"):
            t = 0.1 * torch.randn(shape, generator=gen)
        elif kind == "embedding":
            t = torch.randn(shape, generator=gen)
        elif kind == "small_embedding":
            t = 0.25 * torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        else:
            # Kaiming-like scale: activations keep unit size through the layers, so attention and MLP
            # change the residual stream as much as the token embedding does (varied greedy output).
            t = torch.randn(shape, generator=gen) / math.sqrt(shape[1])
        tensors[name] = t.to(getattr(torch, dtype)).contiguous()
    save_file(tensors, str(path), metadata={"format": "pt"})
