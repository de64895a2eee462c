"""An independent reader of exported TensorRT-LLM checkpoints, for tests (torch + safetensors only).

It does not use ModelOpt: it unpacks and dequantizes each exported linear layer from the layouts
documented in facts/modelopt-0.47-on-cpu.md, and slices the original HF weights the way TensorRT-LLM
expects each rank to hold them, so the two can be compared number by number.

* FP8: ``weight`` (E4M3) × ``weights_scaling_factor`` (per tensor).
* INT8-SQ: ``weight`` (I8) × per-output-channel ``weights_scaling_factor``; effective weight
  × ``prequant_scaling_factor[None, :]`` (the smoothing scale multiplies the input).
* INT4-AWQ / W4A8-AWQ: two signed int4 per byte along the OUTPUT dim (low nibble = even row);
  × ``weights_scaling_factor`` [out, in/group]; × ``prequant_scaling_factor[None, :]``.
* NVFP4: two E2M1 codes per byte along the INPUT dim (low nibble = even column), × FP8 block scale
  (16 inputs) × ``weights_scaling_factor_2``.
* Stacked experts (Mixtral ``mlp.fc`` [E, 2*ffn, in] = per expert [w3; w1], ``mlp.proj`` [E, out, ffn]):
  every per-expert scale has the expert on dim 0; each expert is decoded like a linear.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0,
                     -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])
NVFP4_BLOCK = 16
LINEARS = ("attention.qkv", "attention.dense", "mlp.fc", "mlp.gate", "mlp.proj")


def load_rank(export_dir: Path, rank: int) -> dict[str, torch.Tensor]:
    return load_file(str(Path(export_dir) / f"rank{rank}.safetensors"))


def _nibbles(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b = packed.view(torch.uint8).to(torch.int16)
    return b & 0xF, b >> 4


def unpack_int4_rows(packed: torch.Tensor) -> torch.Tensor:
    """[out/2, in] bytes → [out, in] signed int4 values in [-8, 7]."""
    lo, hi = _nibbles(packed)
    lo, hi = torch.where(lo > 7, lo - 16, lo), torch.where(hi > 7, hi - 16, hi)
    return torch.stack([lo, hi], dim=1).reshape(-1, packed.shape[1]).float()


def unpack_e2m1_cols(packed: torch.Tensor) -> torch.Tensor:
    """[out, in/2] bytes → [out, in] E2M1 values."""
    lo, hi = _nibbles(packed)
    codes = torch.stack([lo, hi], dim=-1).reshape(packed.shape[0], -1).long()
    return E2M1[codes]


def dequant_linear(t: dict[str, torch.Tensor], prefix: str, quant_algo: str | None) -> torch.Tensor:
    """The effective float32 [out, in] weight of the linear ``prefix`` (e.g. 'transformer.layers.0.mlp.fc.')."""
    w = t[prefix + "weight"]
    if quant_algo in (None, "W8A16", "W4A16"):  # weight-only formats are quantized later by trtllm-build
        return w.float()
    if w.dim() == 3:  # stacked experts
        n = w.shape[0]
        mine = {k: v for k, v in t.items() if k.startswith(prefix)}
        return torch.stack([dequant_linear(
            {k: v[e] if v.dim() >= 1 and v.shape[0] == n and not k.endswith("activation_scaling_factor") else v
             for k, v in mine.items()}, prefix, quant_algo) for e in range(n)])
    scale = t[prefix + "weights_scaling_factor"].float()
    if quant_algo == "FP8":
        return w.float() * scale.reshape(())
    if quant_algo == "W8A8_SQ_PER_CHANNEL":
        return w.float() * scale[:, None] * t[prefix + "prequant_scaling_factor"].float()[None, :]
    if quant_algo in ("W4A16_AWQ", "W4A8_AWQ"):
        q = unpack_int4_rows(w)
        group = q.shape[1] // scale.shape[1]
        return q * scale.repeat_interleave(group, dim=1) * t[prefix + "prequant_scaling_factor"].float()[None, :]
    if quant_algo == "NVFP4":
        values = unpack_e2m1_cols(w)
        block = scale.float().repeat_interleave(NVFP4_BLOCK, dim=1)
        return values * block * t[prefix + "weights_scaling_factor_2"].float().reshape(())
    raise ValueError(f"no decoder for quant_algo {quant_algo!r}")


def rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative Frobenius error of ``a`` against the reference ``b``."""
    return float((a.float() - b.float()).norm() / b.float().norm())


# ----------------------------------------------------------------------------- HF reference slicing
def reference_rank(hf: dict[str, torch.Tensor], cfg: dict[str, Any], *, rank: int, tp: int, pp: int
                   ) -> dict[str, torch.Tensor]:
    """The HF tensors a TensorRT-LLM rank must hold, under TensorRT-LLM names (unpadded, original dtype)."""
    tp_rank, pp_rank = rank % tp, rank // tp
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    layers = cfg["num_hidden_layers"] // pp

    def heads(w: torch.Tensor, n: int, first: int, count: int) -> torch.Tensor:
        return w.reshape(n, hd, *w.shape[1:])[first:first + count].reshape(count * hd, *w.shape[1:])

    def col(w: torch.Tensor) -> torch.Tensor:
        return torch.chunk(w, tp, dim=0)[tp_rank]

    def row(w: torch.Tensor) -> torch.Tensor:
        return torch.chunk(w, tp, dim=1)[tp_rank]

    kv_first, kv_count = (tp_rank * nkv // tp, nkv // tp) if nkv >= tp else (tp_rank * nkv // tp, 1)
    out: dict[str, torch.Tensor] = {}
    if pp_rank == 0:
        out["transformer.vocab_embedding.weight"] = col(hf["model.embed_tokens.weight"])
    if pp_rank == pp - 1:
        out["transformer.ln_f.weight"] = hf["model.norm.weight"]
        out["lm_head.weight"] = col(hf.get("lm_head.weight", hf["model.embed_tokens.weight"]))  # tied: embedding
    for n in range(layers):
        src, dst = f"model.layers.{pp_rank * layers + n}.", f"transformer.layers.{n}."
        out[dst + "input_layernorm.weight"] = hf[src + "input_layernorm.weight"]
        out[dst + "post_layernorm.weight"] = hf[src + "post_attention_layernorm.weight"]
        for kind in ("weight", "bias"):
            q = hf.get(src + f"self_attn.q_proj.{kind}")
            if q is None:
                continue
            k, v = hf[src + f"self_attn.k_proj.{kind}"], hf[src + f"self_attn.v_proj.{kind}"]
            out[dst + f"attention.qkv.{kind}"] = torch.cat([
                heads(q, nh, tp_rank * nh // tp, nh // tp),
                heads(k, nkv, kv_first, kv_count), heads(v, nkv, kv_first, kv_count)])
        out[dst + "attention.dense.weight"] = row(hf[src + "self_attn.o_proj.weight"])
        for qk in ("q", "k"):  # Qwen3 per-head norms, replicated
            if src + f"self_attn.{qk}_norm.weight" in hf:
                out[dst + f"attention.{qk}_layernorm.weight"] = hf[src + f"self_attn.{qk}_norm.weight"]
        moe = src + "block_sparse_moe."
        if moe + "gate.weight" in hf:  # Mixtral: fp32 router; fc = [w3; w1] per expert, proj = w2
            experts = range(cfg["num_local_experts"])
            out[dst + "mlp.router.weight"] = hf[moe + "gate.weight"].float()
            out[dst + "mlp.fc.weight"] = torch.stack([torch.cat([col(hf[moe + f"experts.{e}.w3.weight"]),
                                                                 col(hf[moe + f"experts.{e}.w1.weight"])])
                                                      for e in experts])
            out[dst + "mlp.proj.weight"] = torch.stack([row(hf[moe + f"experts.{e}.w2.weight"]) for e in experts])
            continue
        out[dst + "mlp.fc.weight"] = col(hf[src + "mlp.gate_proj.weight"])   # fc = gate_proj (SiLU branch)
        out[dst + "mlp.gate.weight"] = col(hf[src + "mlp.up_proj.weight"])   # gate = up_proj
        out[dst + "mlp.proj.weight"] = row(hf[src + "mlp.down_proj.weight"])
    return out


def linear_errors(export_dir: Path, hf: dict[str, torch.Tensor], cfg: dict[str, Any], *, quant_algo: str | None,
                  tp: int, pp: int) -> dict[str, float]:
    """Relative error of every dequantized linear of every rank against its HF slice: 'rankR:prefix' → error."""
    errors = {}
    for rank in range(tp * pp):
        t, ref = load_rank(export_dir, rank), reference_rank(hf, cfg, rank=rank, tp=tp, pp=pp)
        for name, want in ref.items():
            if name.endswith(".weight") and any(f".{lin}." in name for lin in LINEARS):
                prefix = name[: -len("weight")]
                errors[f"rank{rank}:{prefix}"] = rel_error(dequant_linear(t, prefix, quant_algo), want)
    return errors
