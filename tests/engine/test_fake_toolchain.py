"""The fake trtllm-build: refuses what trtllm-build 1.2 refuses, writes a structurally valid engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtbuild.stages.engine_command import build_command
from trtbuild.toolchain.fake import ENGINE_MAGIC, FAKE_TRTLLM_VERSION, fake_trtllm_build
from trtbuild.toolchain.semantics import adjust, deduce_max_seq_len

from .helpers import CONTRACT, plan_for, plan_with, write_checkpoint


def run(argv: list[str], *, cwd: Path, sm: int = 90) -> tuple[int, str]:
    """The fake tool in ``cwd`` (it writes model.cache there by default, as trtllm-build does)."""
    lines: list[str] = []
    rc = fake_trtllm_build(argv, sm=sm, cwd=cwd, out=lines.append)
    return rc, "\n".join(lines)


@pytest.mark.parametrize(("argv", "message"), [
    (["--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["--gemm_plugin", "fp16"], "argument --gemm_plugin: invalid choice: 'fp16'"),
    (["--max_batch_size", "lots"], "argument --max_batch_size: invalid int value: 'lots'"),
    (["--kv_cache_type", "ragged"], "argument --kv_cache_type: invalid parse_enum value: 'ragged'"),
    (["--use_paged_context_fmha", "true"], "argument --use_paged_context_fmha: invalid choice: 'true'"),
    (["--strip_plan", "yes"], "unrecognized arguments: yes"),
    (["--tokens_per_block"], "argument --tokens_per_block: expected one argument"),
    (["--logits_dtype", "bfloat16"], "argument --logits_dtype: invalid choice: 'bfloat16'"),
])
def test_invalid_arguments_exit_2_with_argparse_message(tmp_path, argv, message):
    rc, out = run(argv, cwd=tmp_path)
    assert rc == 2
    assert out.startswith("usage: trtllm-build")
    assert f"trtllm-build: error: {message}" in out


@pytest.mark.parametrize("flag", CONTRACT["removed"])
def test_flags_removed_before_1_2_are_refused(tmp_path, flag):
    rc, out = run(["--checkpoint_dir", "/nowhere", flag, "1"], cwd=tmp_path)
    assert rc == 2 and "unrecognized arguments" in out


def test_kv_cache_type_accepts_any_case(tmp_path):
    plan = plan_for("qwen2.5-7b.yaml", "h100")
    ck = write_checkpoint(tmp_path / "ck", plan)
    rc, _ = run(["--checkpoint_dir", str(ck), "--output_dir", str(tmp_path / "e"), "--kv_cache_type", "PAGED"], cwd=tmp_path)
    assert rc == 0
    assert json.loads((tmp_path / "e" / "config.json").read_text())["build_config"]["kv_cache_type"] == "PAGED"


def test_writes_a_structurally_valid_engine(tmp_path):
    plan = plan_for("llama-3.1-70b-fp8-tp4.yaml", "h100")
    ck = write_checkpoint(tmp_path / "ck", plan)
    out = tmp_path / "engine"
    argv = build_command(plan, ck, out, timing_cache=tmp_path / "tc" / "x.cache")
    rc, log = run(argv[1:], cwd=tmp_path)
    assert rc == 0, log
    config = json.loads((out / "config.json").read_text())
    assert config["version"] == FAKE_TRTLLM_VERSION
    pre, build = config["pretrained_config"], config["build_config"]
    assert pre["mapping"] == {"world_size": 4, "tp_size": 4, "pp_size": 1, "cp_size": 1, "gpus_per_node": 8}
    assert pre["quantization"]["quant_algo"] == "FP8" and pre["quantization"]["kv_cache_quant_algo"] == "FP8"
    assert (build["max_batch_size"], build["max_input_len"], build["max_seq_len"], build["max_num_tokens"]) == \
        (256, 16384, 32768, 16384)
    assert build["opt_num_tokens"] == 256  # min(max_batch_size x beam, max_num_tokens)
    assert build["kv_cache_type"] == "PAGED"
    plug = build["plugin_config"]
    assert plug["tokens_per_block"] == 32 and plug["paged_kv_cache"] is True
    assert plug["use_paged_context_fmha"] is True and plug["use_fp8_context_fmha"] is True
    assert plug["reduce_fusion"] is True and plug["gemm_plugin"] == "bfloat16" and plug["dtype"] == "bfloat16"
    assert sorted(p.name for p in out.iterdir()) == ["config.json"] + [f"rank{r}.engine" for r in range(4)]
    assert all((out / f"rank{r}.engine").read_bytes().startswith(ENGINE_MAGIC) for r in range(4))
    assert (tmp_path / "tc" / "x.cache").is_file()


def test_builder_rewrites_are_recorded(tmp_path):
    """tp 1 turns reduce_fusion off; an INT8 KV cache turns paged context FMHA off; FP8 FMHA needs FP8 weights."""
    plan = plan_with("mistral-7b-int4-awq.yaml", "a100", quantization={"kv_cache": "int8"})
    ck = write_checkpoint(tmp_path / "ck", plan)
    rc, log = run(["--checkpoint_dir", str(ck), "--output_dir", str(tmp_path / "e"), "--reduce_fusion", "enable",
                   "--use_fp8_context_fmha", "enable", "--use_paged_context_fmha", "enable"], sm=80, cwd=tmp_path)
    assert rc == 0, log
    plug = json.loads((tmp_path / "e" / "config.json").read_text())["build_config"]["plugin_config"]
    assert plug["reduce_fusion"] is False
    assert plug["use_paged_context_fmha"] is False
    assert plug["use_fp8_context_fmha"] is False
    assert "Overriding plugin_config.use_paged_context_fmha to False" in log


@pytest.mark.parametrize(("extra", "message"), [
    (["--multiple_profiles", "enable", "--opt_num_tokens", "64"], "multiple_profiles is enabled, while opt_num_tokens"),
    (["--gather_context_logits", "--max_draft_len", "3"], "Gather context logits is not support with draft len"),
    (["--streamingllm", "enable"], "StreamingLLM is no longer supported"),
    (["--pp_reduce_scatter", "enable"], "PP reduce scatter is only supported in the mixtral model"),
])
def test_conflicts_trtllm_build_rejects_exit_1(tmp_path, extra, message):
    ck = write_checkpoint(tmp_path / "ck", plan_for("qwen2.5-7b.yaml", "h100"))
    rc, out = run(["--checkpoint_dir", str(ck), "--output_dir", str(tmp_path / "e"), *extra], cwd=tmp_path)
    assert rc == 1 and message in out
    assert not (tmp_path / "e" / "config.json").exists()


def test_missing_rank_file_fails(tmp_path):
    plan = plan_for("llama-3.1-70b-fp8-tp4.yaml", "h100")
    ck = write_checkpoint(tmp_path / "ck", plan, ranks=3)
    rc, out = run(["--checkpoint_dir", str(ck), "--output_dir", str(tmp_path / "e")], cwd=tmp_path)
    assert rc == 1 and "rank3.safetensors" in out


def test_unknown_architecture_fails(tmp_path):
    ck = write_checkpoint(tmp_path / "ck", plan_for("qwen2.5-7b.yaml", "h100"), architecture="MysteryForCausalLM")
    rc, out = run(["--checkpoint_dir", str(ck)], cwd=tmp_path)
    assert rc == 1 and "Unsupported model architecture: MysteryForCausalLM" in out


def test_relative_paths_resolve_against_cwd_and_deprecated_flag_warns(tmp_path):
    write_checkpoint(tmp_path / "ck", plan_for("qwen2.5-7b.yaml", "h100"))
    rc, out = run(["--checkpoint_dir", "ck", "--paged_kv_cache", "enable"], cwd=tmp_path)
    assert rc == 0, out
    assert "--paged_kv_cache is deprecated" in out
    assert (tmp_path / "engine_outputs" / "rank0.engine").is_file()  # the tool's default output_dir
    assert (tmp_path / "model.cache").is_file()  # and its default timing cache, in the cwd


# ------------------------------------------------------------------------------ builder semantics
def build(**kw):
    base = {"max_batch_size": 8, "max_input_len": 512, "max_seq_len": 1024, "max_num_tokens": 4096,
            "opt_num_tokens": None, "max_beam_width": 1, "kv_cache_type": "paged",
            "plugin_config": {"tokens_per_block": 32, "context_fmha": True, "remove_input_padding": True,
                              "use_paged_context_fmha": True, "use_fp8_context_fmha": True,
                              "reduce_fusion": False, "multiple_profiles": False}}
    plug = kw.pop("plugin", {})
    base.update(kw)
    base["plugin_config"] = {**base["plugin_config"], **plug}
    return base


PRE = {"architecture": "LlamaForCausalLM", "dtype": "float16", "max_position_embeddings": 4096,
       "mapping": {"tp_size": 1, "pp_size": 1}, "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}


def test_max_num_tokens_is_clipped_and_opt_defaults():
    out, changes = adjust(build(max_num_tokens=100_000), PRE, sm=90)
    assert out["max_num_tokens"] == 8 * 1024 and out["opt_num_tokens"] == 8
    assert [c.field for c in changes] == ["max_num_tokens"]
    out, _ = adjust(build(max_num_tokens=4), PRE, sm=90)
    assert out["max_num_tokens"] == 32  # raised to tokens_per_block with context FMHA


def test_max_seq_len_deduction():
    assert deduce_max_seq_len({"max_position_embeddings": 8192}) == 8192
    assert deduce_max_seq_len({"max_position_embeddings": 8192,
                               "rotary_scaling": {"rope_type": "llama3", "factor": 8.0}}) == 8192
    assert deduce_max_seq_len({"max_position_embeddings": 4096, "rotary_scaling": {"type": "linear", "factor": 2}}) == 8192
    assert deduce_max_seq_len({}) == 2048
    out, _ = adjust(build(max_seq_len=None, max_input_len=9000), PRE, sm=90)
    assert out["max_seq_len"] == 4096 and out["max_input_len"] == 4096


@pytest.mark.parametrize(("weights", "kv", "sm", "paged", "fp8"), [
    ("FP8", "FP8", 90, True, True),
    ("FP8", None, 90, True, False),      # paged context FMHA keeps FP8 FMHA only with an FP8 KV cache
    ("FP8", "FP8", 86, False, False),    # no FP8 FMHA below SM 89, and with it goes FP8 paged context FMHA
    ("W4A16_AWQ", "FP8", 89, False, False),
    ("W4A16_AWQ", "INT8", 80, False, False),
    ("W4A16_AWQ", None, 80, True, False),
    ("NVFP4", "FP8", 100, True, True),
])
def test_context_fmha_rules(weights, kv, sm, paged, fp8):
    pre = {**PRE, "quantization": {"quant_algo": weights, "kv_cache_quant_algo": kv}}
    out, _ = adjust(build(), pre, sm=sm)
    assert out["plugin_config"]["use_paged_context_fmha"] is paged
    assert out["plugin_config"]["use_fp8_context_fmha"] is fp8


def test_fp8_kv_cache_turns_fp8_context_fmha_on():
    out, changes = adjust(build(plugin={"use_fp8_context_fmha": False}), PRE, sm=90)
    assert out["plugin_config"]["use_fp8_context_fmha"] is True
    assert changes[0].field == "plugin_config.use_fp8_context_fmha"


def test_reduce_fusion_scope():
    on = build(plugin={"reduce_fusion": True})
    tp2 = {**PRE, "mapping": {"tp_size": 2, "pp_size": 1}}
    assert adjust(on, tp2, sm=90)[0]["plugin_config"]["reduce_fusion"] is True
    assert adjust(on, PRE, sm=90)[0]["plugin_config"]["reduce_fusion"] is False
    assert adjust(on, {**tp2, "architecture": "Qwen2ForCausalLM"}, sm=90)[0]["plugin_config"]["reduce_fusion"] is False
