"""The engine validator on hand-written engine directories (independent of the fake toolchain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trtbuild.errors import EngineError
from trtbuild.stages.engine_checks import (
    check_checkpoint,
    checkpoint_problems,
    engine_problems,
    expected_build_config,
    kv_cache_type_name,
    plan_conflicts,
)

from .helpers import checkpoint_config, plan_for, plan_with, write_checkpoint

PLAN = plan_for("llama-3.1-70b-fp8-tp4.yaml", "h100")  # tp 4, fp8 + fp8 KV, reduce_fusion on


def real_looking_engine(directory: Path, **build_over) -> Path:
    """An engine dir as TensorRT-LLM 1.2 writes it, including fields trtbuild never sets."""
    pre = checkpoint_config(PLAN)
    pre["mapping"] = {**pre["mapping"], "moe_tp_size": 4, "moe_ep_size": 1, "attn_tp_size": 4, "attn_cp_size": 1}
    pre["quantization"] = {**pre["quantization"], "smoothquant_val": 0.5, "clamp_val": None,
                           "exclude_modules": ["lm_head"], "has_zero_point": False}
    build = {"max_input_len": 16384, "max_seq_len": 32768, "opt_batch_size": 8, "max_batch_size": 256,
             "max_beam_width": 1, "max_num_tokens": 16384, "opt_num_tokens": 256,
             "max_prompt_embedding_table_size": 0, "kv_cache_type": "PAGED", "gather_context_logits": False,
             "gather_generation_logits": False, "strongly_typed": True, "weight_streaming": False,
             "use_strip_plan": False, "speculative_decoding_mode": 1,
             "plugin_config": {"dtype": "bfloat16", "gpt_attention_plugin": "auto", "gemm_plugin": "bfloat16",
                               "tokens_per_block": 32, "use_paged_context_fmha": True, "use_fp8_context_fmha": True,
                               "multiple_profiles": False, "reduce_fusion": True, "use_fused_mlp": True,
                               "paged_kv_cache": True}}
    for key, value in build_over.items():
        if key in build["plugin_config"] and key not in build:
            build["plugin_config"][key] = value
        else:
            build[key] = value
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps({"version": "1.2.1", "pretrained_config": pre,
                                                       "build_config": build}))
    for r in range(4):
        (directory / f"rank{r}.engine").write_bytes(b"\0" * 64)
    return directory


def problems(engine: Path, version: str | None = "1.2.1") -> list[str]:
    return engine_problems(engine, PLAN, checkpoint_config(PLAN), trtllm_version=version)


def test_a_correct_engine_has_no_problems(tmp_path):
    assert problems(real_looking_engine(tmp_path / "e")) == []


@pytest.mark.parametrize("spelling", ["PAGED", "paged", "KVCacheType.PAGED", 1])
def test_kv_cache_type_spellings(tmp_path, spelling):
    assert kv_cache_type_name(spelling) == "PAGED"
    assert problems(real_looking_engine(tmp_path / "e", kv_cache_type=spelling)) == []


@pytest.mark.parametrize(("over", "message"), [
    (dict(max_batch_size=128), "build_config.max_batch_size is 128, expected 256"),
    (dict(max_seq_len=8192), "build_config.max_seq_len is 8192, expected 32768"),
    (dict(kv_cache_type="CONTINUOUS"), "build_config.kv_cache_type is 'CONTINUOUS', expected 'PAGED'"),
    (dict(tokens_per_block=64), "plugin_config.tokens_per_block is 64, expected 32"),
    (dict(use_paged_context_fmha=False), "plugin_config.use_paged_context_fmha is False, expected True"),
    (dict(reduce_fusion=False), "plugin_config.reduce_fusion is False, expected True"),
    (dict(gather_context_logits=1), "build_config.gather_context_logits is 1, expected False"),
])
def test_build_config_mismatches(tmp_path, over, message):
    found = problems(real_looking_engine(tmp_path / "e", **over))
    assert any(message in p for p in found), found


def test_version_rank_files_and_parse_errors(tmp_path):
    engine = real_looking_engine(tmp_path / "e")
    assert problems(engine, version="1.2.0") == ["version is '1.2.1', the toolchain is TensorRT-LLM 1.2.0"]
    (engine / "rank3.engine").unlink()
    (engine / "rank2.engine").write_bytes(b"")
    found = problems(engine)
    assert any("expected rank0..rank3.engine (tp 4 x pp 1)" in p for p in found)
    assert any("empty engine files: rank2.engine" in p for p in found)
    (engine / "config.json").write_text("{not json")
    assert "cannot parse engine config" in problems(engine)[0]


def test_checkpoint_checks(tmp_path):
    assert checkpoint_problems(checkpoint_config(PLAN), PLAN) == []
    bad = checkpoint_config(PLAN, architecture="MistralForCausalLM",
                            mapping={"tp_size": 4, "pp_size": 2}, quantization={"quant_algo": "FP8"})
    found = checkpoint_problems(bad, PLAN)
    assert len(found) == 3
    assert "world_size 8" in found[1] and "kv_cache_quant_algo is None" in found[2]
    write_checkpoint(tmp_path / "ck", PLAN, ranks=2)
    with pytest.raises(EngineError, match="checkpoint rank files missing: rank2.safetensors, rank3.safetensors"):
        check_checkpoint(tmp_path / "ck", PLAN)
    with pytest.raises(EngineError, match="missing"):
        check_checkpoint(tmp_path / "nothing", PLAN)


def test_plan_conflicts_only_when_runtime_needs_paged_context_fmha():
    # int8 KV with reuse + chunked context (the planner reports it too: kv_quant.paged_context_fmha)
    a100 = plan_with("llama-3.1-8b-fp8.yaml", "a100", targets={"a100": {"quantization": {"kv_cache": "int8"}}})
    assert "kv_quant.paged_context_fmha" in {d.rule for d in a100.errors}
    _, changes = expected_build_config(a100, checkpoint_config(a100))
    assert "runtime.kv_cache.reuse and runtime.chunked_context" in plan_conflicts(a100, changes)[0]
    _, changes = expected_build_config(PLAN, checkpoint_config(PLAN))
    assert plan_conflicts(PLAN, changes) == []


@pytest.mark.parametrize(("requested", "recorded"), [("float16", "nvfp4"), ("bfloat16", "nvfp4"),
                                                      ("nvfp4", "nvfp4"), ("disable", None)])
def test_nvfp4_engines_record_the_gemm_plugin_the_builder_picks(requested, recorded):
    """builder.py build(): NVFP4 weights switch gemm_plugin to nvfp4 unless it is explicitly disabled."""
    plan = plan_with("llama-3.1-8b-fp8.yaml", "b200", quantization={"weights": "nvfp4"},
                     build={"gemm_plugin": requested})
    assert plan.feasible, [d.format() for d in plan.errors]
    want, changes = expected_build_config(plan, checkpoint_config(plan))
    assert want["plugin_config"]["gemm_plugin"] == recorded
    rewritten = [c for c in changes if c.field == "plugin_config.gemm_plugin"]
    assert bool(rewritten) == (requested not in ("nvfp4", "disable"))
    infos = [d for d in plan.diagnostics if d.rule == "gemm_plugin.nvfp4"]
    assert bool(infos) == bool(rewritten) and all(d.severity == "info" for d in infos)


def test_fake_build_of_an_nvfp4_plan_with_an_explicit_gemm_plugin_passes_the_engine_check(tmp_path):
    from trtbuild.stages.engine_command import build_command
    from trtbuild.toolchain.fake import fake_trtllm_build

    plan = plan_with("llama-3.1-8b-fp8.yaml", "b200", quantization={"weights": "nvfp4"}, build={"gemm_plugin": "float16"})
    ck = write_checkpoint(tmp_path / "ck", plan)
    out = tmp_path / "engine"
    argv = build_command(plan, ck, out, timing_cache=None)
    assert argv[argv.index("--gemm_plugin") + 1] == "float16"
    assert fake_trtllm_build(argv[1:], sm=100, cwd=tmp_path, out=lambda _: None) == 0
    assert json.loads((out / "config.json").read_text())["build_config"]["plugin_config"]["gemm_plugin"] == "nvfp4"
    assert engine_problems(out, plan, checkpoint_config(plan), trtllm_version=None) == []
