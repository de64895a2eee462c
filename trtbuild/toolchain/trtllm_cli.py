"""The ``trtllm-build`` command line of TensorRT-LLM 1.2, as an argparse parser.

Transcribed from ``tensorrt_llm/commands/build.py`` (``parse_arguments``) and ``tensorrt_llm/plugin/plugin.py``
(``PluginConfig`` + ``add_plugin_argument``) of the 1.2 line (facts/trtllm-1.2.md §1): same flag names, types,
choices, defaults and aliases, and the same argparse machinery, so a command this parser rejects is one
``trtllm-build`` would reject with the same message. The fake toolchain parses with it; the contract tests
check it against the ``trtllm_build_flags`` contract fixture (trtbuild/contracts/trtllm_1_2/).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

PROG = "trtllm-build"

KV_CACHE_TYPES = ("continuous", "paged", "disabled")
LOG_LEVELS = ("internal_error", "error", "warning", "info", "verbose", "debug", "trace")
PROFILING_VERBOSITY = ("layer_names_only", "detailed", "none")
SPECULATIVE_MODES = ("draft_tokens_external", "lookahead_decoding", "medusa", "explicit_draft_tokens", "eagle")
# LoraManager.LORA_MODULE_IDS of the 1.x line (ids 0-18).
LORA_MODULES = (
    "attn_qkv", "attn_q", "attn_k", "attn_v", "attn_dense", "mlp_h_to_4h", "mlp_4h_to_h", "mlp_gate",
    "cross_attn_qkv", "cross_attn_q", "cross_attn_k", "cross_attn_v", "cross_attn_dense",
    "moe_h_to_4h", "moe_4h_to_h", "moe_gate", "moe_router", "mlp_router", "mlp_gate_up",
)

# Plugin flags: PluginConfig field → (choices without "disable", default as argparse sees it).
_DTYPES = ("auto", "float16", "float32", "bfloat16", "int32")
PLUGIN_FLAGS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "bert_attention_plugin": (_DTYPES, "auto"),
    "gpt_attention_plugin": (_DTYPES, "auto"),
    "gemm_plugin": (_DTYPES + ("fp8", "nvfp4"), None),
    "gemm_swiglu_plugin": (("fp8",), "disable"),
    "fp8_rowwise_gemm_plugin": (_DTYPES, "disable"),
    "nccl_plugin": (_DTYPES, "auto"),
    "lora_plugin": (_DTYPES, "disable"),
    "moe_plugin": (_DTYPES, "auto"),
    "mamba_conv1d_plugin": (_DTYPES, "auto"),
    "low_latency_gemm_plugin": (("fp8",), "disable"),
    "low_latency_gemm_swiglu_plugin": (("fp8",), "disable"),
    "gemm_allreduce_plugin": (("float16", "bfloat16"), "disable"),
}
# Feature flags: PluginConfig bool field → default (enable/disable).
FEATURE_FLAGS: dict[str, bool] = {
    "dora_plugin": False,
    "context_fmha": True,
    "bert_context_fmha_fp32_acc": False,
    "remove_input_padding": True,
    "norm_quant_fusion": False,
    "reduce_fusion": False,
    "user_buffer": False,
    "use_paged_context_fmha": True,
    "use_fp8_context_fmha": True,
    "fuse_fp4_quant": False,
    "multiple_profiles": False,
    "paged_state": True,
    "streamingllm": False,
    "use_fused_mlp": True,
    "pp_reduce_scatter": False,
}


class TrtllmUsageError(Exception):
    """What ``trtllm-build`` prints (usage + ``error:`` line) before it exits with status 2."""

    exit_code = 2

    def __init__(self, message: str, usage: str):
        self.message = message
        self.usage = usage
        super().__init__(f"{usage}{PROG}: error: {message}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise TrtllmUsageError(message, self.format_usage())


def parse_kv_cache_type(value: str) -> str:
    """``KVCacheType.from_string``: the enum name, any case. argparse reports a ValueError as invalid value."""
    if isinstance(value, str) and value.lower() in KV_CACHE_TYPES:
        return value.upper()
    raise ValueError(value)


parse_kv_cache_type.__name__ = "parse_enum"  # argparse names the type function in its message


def make_parser() -> argparse.ArgumentParser:
    """A parser with exactly the flags of ``trtllm-build`` 1.2 (raises TrtllmUsageError instead of exiting)."""
    p = _Parser(prog=PROG, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add: Any = p.add_argument
    add("--checkpoint_dir", type=str, default=None)
    add("--model_config", type=str, default=None)
    add("--build_config", type=str, default=None)
    add("--model_cls_file", type=str, default=None)
    add("--model_cls_name", type=str, default=None)
    add("--output_dir", type=str, default="engine_outputs")
    add("--max_batch_size", type=int, default=2048)
    add("--max_input_len", type=int, default=1024)
    add("--max_seq_len", "--max_decoder_seq_len", dest="max_seq_len", type=int, default=None)
    add("--max_beam_width", type=int, default=1)
    add("--max_num_tokens", type=int, default=8192)
    add("--opt_num_tokens", type=int, default=None)
    add("--max_encoder_input_len", type=int, default=1024)
    add("--max_prompt_embedding_table_size", "--max_multimodal_len", type=int, default=0)
    add("--kv_cache_type", default=argparse.SUPPRESS, type=parse_kv_cache_type)
    add("--paged_kv_cache", type=str, default=argparse.SUPPRESS)
    add("--input_timing_cache", type=str, default=None)
    add("--output_timing_cache", type=str, default="model.cache")
    add("--profiling_verbosity", type=str, default="layer_names_only", choices=list(PROFILING_VERBOSITY))
    add("--strip_plan", default=False, action="store_true")
    add("--weight_sparsity", default=False, action="store_true")
    add("--weight_streaming", default=False, action="store_true")
    add("--fast_build", default=False, action="store_true")
    add("--workers", type=int, default=1)
    add("--log_level", type=str, default="info", choices=list(LOG_LEVELS))
    add("--enable_debug_output", default=False, action="store_true")
    add("--visualize_network", type=str, default=None)
    add("--dry_run", default=False, action="store_true")
    add("--monitor_memory", default=False, action="store_true")

    logits = p.add_argument_group("Logits arguments")
    logits.add_argument("--logits_dtype", type=str, default=None, choices=["float16", "float32"])
    logits.add_argument("--gather_context_logits", action="store_true", default=False)
    logits.add_argument("--gather_generation_logits", action="store_true", default=False)
    logits.add_argument("--gather_all_token_logits", action="store_true", default=False)

    lora = p.add_argument_group("LoRA arguments")
    lora.add_argument("--lora_dir", type=str, default=None, nargs="+")
    lora.add_argument("--lora_ckpt_source", type=str, default="hf", choices=["hf", "nemo"])
    lora.add_argument("--lora_target_modules", nargs="+", default=None, choices=list(LORA_MODULES))
    lora.add_argument("--max_lora_rank", type=int, default=64)

    spec = p.add_argument_group("Speculative decoding arguments")
    spec.add_argument("--speculative_decoding_mode", default=None, choices=list(SPECULATIVE_MODES))
    spec.add_argument("--max_draft_len", type=int, default=0)

    plugins = p.add_argument_group("Plugin config arguments")
    for name, (choices, default) in PLUGIN_FLAGS.items():
        plugins.add_argument("--" + name, type=str, default=default, choices=[*choices, "disable"])
    plugins.add_argument("--tokens_per_block", type=int, default=32)
    for name, on in FEATURE_FLAGS.items():
        plugins.add_argument("--" + name, type=str, default="enable" if on else "disable",
                             choices=["enable", "disable"])
    return p


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``trtllm-build`` arguments (without the program name); TrtllmUsageError when it would refuse."""
    return make_parser().parse_args(list(argv))


def flag_table() -> dict[str, dict[str, Any]]:
    """Every option string the parser accepts → {type, choices, dest}: what the contract tests compare."""
    table: dict[str, dict[str, Any]] = {}
    for action in make_parser()._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._StoreTrueAction):
            kind = "flag"
        elif action.type is int:
            kind = "int"
        elif action.nargs == "+":
            kind = "list"
        elif action.choices is not None or action.type is parse_kv_cache_type:
            kind = "choice"
        else:
            kind = "str"
        choices = sorted(set(action.choices)) if action.choices is not None else None
        if action.type is parse_kv_cache_type:
            choices = sorted(KV_CACHE_TYPES)
        for opt in action.option_strings:
            table[opt] = {"type": kind, "choices": choices, "dest": action.dest}
    return table
