"""Planning: resolved settings, feasibility rules with ids, memory plan numbers, stage list."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from trtbuild.errors import PlanError, UnsupportedArchitecture, UsageError
from trtbuild.plan.planner import BuildPlan, make_plan
from trtbuild.recipe.loader import load_recipe

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "recipes" / "models"
GIB = 2**30


def _recipe(tmp_path: Path, model: str, body: str = "", name: str = "t") -> Path:
    """A recipe in tmp_path whose model dir holds ONLY the shipped config.json."""
    mdir = tmp_path / "model"
    mdir.mkdir(exist_ok=True)
    shutil.copy(MODELS / model / "config.json", mdir / "config.json")
    p = tmp_path / "recipe.yaml"
    p.write_text(f"recipe: 1\nname: {name}\nmodel:\n  source: ./model\n" + textwrap.dedent(body))
    return p


def _plan(tmp_path: Path, model: str, gpu: str, body: str = "") -> BuildPlan:
    return make_plan(load_recipe(_recipe(tmp_path, model, body)), gpu)


def _rules(plan: BuildPlan, severity: str = "error") -> set[str]:
    return {d.rule for d in plan.diagnostics if d.severity == severity}


LLAMA8B_FP8 = """\
dtype: bfloat16
quantization: {weights: fp8, kv_cache: fp8}
build: {max_seq_len: 8192, max_input_len: 4096}
"""


def test_llama8b_fp8_h100_memory_plan_is_exact_where_it_can_be(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", LLAMA8B_FP8)
    assert plan.feasible and plan.model["parameters"] == 8_030_261_248
    m = plan.memory
    assert m["kv_bytes_per_token"] == 65_536                     # fp8 KV: half of 131,072
    # Weights, computed independently: every linear in fp8 (+2 fp32 scales), embedding, lm_head and
    # norms in bf16.
    linear = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336)
    scales = 32 * 5 * 8          # qkv is one fused linear: qkv, dense, fc, gate, proj
    high = 2 * 128256 * 4096 * 2 + (32 * 2 * 4096 + 4096) * 2
    assert m["weights_bytes_per_rank"] == linear + scales + high
    assert m["gpu_memory_bytes"] == 80 * GIB
    free = 80 * GIB - m["weights_bytes_per_rank"] - m["activation_bytes_per_rank"] - m["overhead_bytes_per_rank"]
    assert m["kv_pool_bytes"] == int(free * 0.9)
    assert m["kv_capacity_tokens"] == (m["kv_pool_bytes"] // (65_536 * 32)) * 32
    assert m["max_concurrent_sequences"] == min(64, m["kv_capacity_tokens"] // 8192)
    assert m["fits"] is True
    assert [s.name for s in plan.stages] == ["fetch", "checkpoint", "engine", "repository"]


def test_kv_bytes_per_token_fp16_and_tp(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", "dtype: float16\nbuild: {max_seq_len: 4096}\n")
    assert plan.memory["kv_bytes_per_token"] == 131_072
    plan2 = _plan(tmp_path, "llama-3.1-8b-instruct", "h100",
                  "dtype: float16\nparallelism: {tp: 2}\nbuild: {max_seq_len: 4096}\n")
    assert plan2.memory["kv_bytes_per_token"] == 65_536
    assert plan2.memory["weights_bytes_per_rank"] < plan.memory["weights_bytes_per_rank"] * 0.55


def test_resolved_defaults(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", "quantization: {weights: fp8, kv_cache: fp8}\n")
    s = plan.settings
    assert s.dtype == "bfloat16"                              # from config torch_dtype
    assert s.build.max_seq_len == 131072                      # max_position_embeddings
    assert s.build.fp8_context_fmha is True and s.build.gemm_plugin == "bfloat16"
    assert s.runtime.max_batch_size == s.build.max_batch_size
    assert s.runtime.decoding_mode == "top_k_top_p"
    nvfp4 = _plan(tmp_path, "llama-3.1-8b-instruct", "b200", "quantization: {weights: nvfp4}\n")
    assert nvfp4.settings.build.gemm_plugin == "nvfp4"
    awq = _plan(tmp_path, "llama-3.1-8b-instruct", "a100", "quantization: {weights: int4_awq}\n")
    assert awq.settings.build.fp8_context_fmha is False
    # With paged context FMHA, trtllm-build keeps FP8 context FMHA only with an FP8 KV cache.
    fp8_w = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", "quantization: {weights: fp8}\n")
    assert fp8_w.settings.build.fp8_context_fmha is False


def test_70b_on_one_h100_is_infeasible_with_numbers_and_suggestions(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "llama-3.1-70b-instruct", "h100", "build: {max_seq_len: 8192, max_input_len: 4096}\n")
    assert not plan.feasible
    fit = [d for d in plan.diagnostics if d.rule == "memory.fit"]
    assert len(fit) == 1
    msg = fit[0].message
    assert msg.startswith("needs ") and "per GPU, H100 SXM has 80 GiB" in msg
    assert "per GPU, H100 SXM has 80 GiB; try parallelism.tp: 2 or quantization.weights: fp8 (weights 131" in msg
    needed = float(msg.split()[1])
    assert needed * GIB == pytest.approx(plan.memory["needed_bytes_per_rank"], rel=0.01)
    assert needed > 130


def test_kv_capacity_too_small_for_one_sequence(tmp_path: Path) -> None:
    # 8B bf16 fits, but one 131072-token sequence of bf16 KV needs 16 GiB: too much for a 24 GiB L4.
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "l4", "dtype: bfloat16\n")
    assert "memory.kv_capacity" in _rules(plan) or "memory.fit" in _rules(plan)
    assert not plan.feasible


@pytest.mark.parametrize("gpu, body, rule", [
    ("a100", "quantization: {weights: fp8}\n", "quant.sm"),
    ("h100", "quantization: {weights: nvfp4}\n", "quant.sm"),
    ("a10g", "quantization: {weights: w4a8_awq}\n", "quant.sm"),
    ("a100", "quantization: {kv_cache: fp8}\n", "quant.sm"),
    ("h100", "parallelism: {tp: 3}\n", "tp.heads"),
    ("h100", "parallelism: {tp: 64}\n", "tp.heads"),
    ("h100", "build: {kv_cache: {tokens_per_block: 48}}\n", "kv.tokens_per_block"),
    ("h100", "build: {paged_context_fmha: false}\n", "kv.reuse.paged_context_fmha"),
    ("h100", "build: {paged_context_fmha: false}\nruntime: {chunked_context: true, kv_cache: {reuse: false}}\n",
     "chunked_context.paged_context_fmha"),
    ("h100", "build: {kv_cache: {type: continuous}}\n", "batching.paged_kv"),
    ("h100", "build: {max_input_len: 16384, max_num_tokens: 8192}\n", "len.num_tokens_vs_input"),
    ("h100", "build: {max_input_len: 200000}\n", "len.input_vs_seq"),
    ("h100", "build: {max_batch_size: 8}\nruntime: {max_batch_size: 16}\n", "runtime.max_batch_size"),
    ("h100", "build: {max_seq_len: 4096}\nruntime: {kv_cache: {max_tokens: 1000}}\n", "runtime.kv_max_tokens"),
    ("a100", "quantization: {weights: int4_awq}\nbuild: {fp8_context_fmha: true}\n", "fp8_context_fmha.quant"),
    ("h100", "build: {opt_num_tokens: 512, multiple_profiles: true}\n", "opt_num_tokens.multiple_profiles"),
    ("h100", "build: {gemm_plugin: fp8}\n", "gemm_plugin.quant"),
    ("h100", "runtime: {gpu_weights_percent: 0.5}\n", "weight_streaming"),
    ("h100", "runtime: {decoding_mode: beam_search}\n", "decoding.beam"),
    ("h100", "runtime: {kv_cache: {reuse: false, retention: {rules: [{tokens: prompt, priority: 90}]}}}\n",
     "kv.retention.reuse"),
    ("h100", "runtime: {batching: static, chunked_context: true}\n", "batching.static"),
    ("a100", "quantization: {kv_cache: int8}\n", "kv_quant.paged_context_fmha"),
    ("l4", "quantization: {weights: int4_awq, kv_cache: fp8}\n", "kv_quant.paged_context_fmha"),
    ("h100", "dtype: float32\n", "dtype.float32"),
])
def test_rules_fire_with_their_ids(tmp_path: Path, gpu: str, body: str, rule: str) -> None:
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", gpu, "build: {max_seq_len: 8192}\n" + body
                 if "build:" not in body else body)
    assert rule in _rules(plan), plan.diagnostics
    assert not plan.feasible
    for d in plan.diagnostics:
        assert d.message and d.rule and d.severity in ("error", "warning", "info")


def test_clean_recipe_has_no_errors(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", "build: {max_seq_len: 8192}\n")
    assert plan.feasible and not plan.errors


def test_awq_block_must_divide_per_rank_dims(tmp_path: Path) -> None:
    # Qwen2.5-7B: intermediate 18944 / tp 8 = 2368 = 18.5 x 128 but 37 x 64.
    body = "quantization: {weights: int4_awq, awq_block_size: %d}\nparallelism: {tp: 8}\nbuild: {max_seq_len: 4096}\n"
    plan = _plan(tmp_path, "qwen2.5-7b-instruct", "a100", body % 128)
    msgs = [d.message for d in plan.diagnostics if d.rule == "awq.block"]
    assert any("18944/8" in m and "2368" in m for m in msgs) and any("3584/8" in m for m in msgs)
    assert "awq.block" not in _rules(_plan(tmp_path, "qwen2.5-7b-instruct", "a100", body % 64))


def test_kv_heads_vs_tp(tmp_path: Path) -> None:
    # Qwen2.5-7B: 28 heads, 4 KV heads. tp 7 divides the heads but not the KV heads (nor they it).
    bad = _plan(tmp_path, "qwen2.5-7b-instruct", "h100", "parallelism: {tp: 7}\nbuild: {max_seq_len: 4096}\n")
    assert "tp.kv_heads" in _rules(bad) and "tp.heads" not in _rules(bad)
    # Llama-3.1-70B: 8 KV heads over tp 16 → duplicated, an info note and 1 KV head per rank.
    dup = _plan(tmp_path, "llama-3.1-70b-instruct", "h100",
                "parallelism: {tp: 16}\nbuild: {max_seq_len: 4096}\ndtype: float16\n")
    assert "tp.kv_heads" in _rules(dup, "info")
    assert dup.memory["kv_bytes_per_token"] == 2 * 80 * 1 * 128 * 2


def test_arch_specific_quantization(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "mixtral-8x7b-instruct-v0.1", "h100",
                 "quantization: {weights: int4_awq}\nparallelism: {tp: 2}\nbuild: {max_seq_len: 4096}\n")
    assert "quant.arch" in _rules(plan)
    assert plan.model["parameters"] == 46_702_792_704


def test_diagnostic_positions_point_at_the_key_or_the_override(tmp_path: Path) -> None:
    p = _recipe(tmp_path, "llama-3.1-8b-instruct", """\
        quantization:
          weights: fp8
        build:
          max_seq_len: 8192
        targets:
          a10g:
            build:
              kv_cache: {tokens_per_block: 48}
    """)
    loaded = load_recipe(p)
    a10g = make_plan(loaded, "a10g")
    by_rule = {d.rule: d for d in a10g.diagnostics}
    assert by_rule["quant.sm"].position == f"{p}:6:12"           # base recipe key
    assert by_rule["kv.tokens_per_block"].position == f"{p}:12:36"  # inside targets.a10g
    assert "try quantization.weights: int4_awq" in by_rule["quant.sm"].message


def test_reference_target_plans_without_engine(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "llama-3.1-8b-instruct", "cpu", "quantization: {weights: fp8}\nbuild: {max_seq_len: 4096}\n")
    assert [s.name for s in plan.stages] == ["fetch", "repository"]
    assert plan.stage("repository").params["backend"] == "python-reference"
    assert plan.target["reference"] is True and plan.feasible
    assert plan.memory["kv_capacity_tokens"] is None and plan.memory["fits"] is None
    assert "reference.quantization" in _rules(plan, "warning")


def test_stage_keys_change_only_with_their_inputs(tmp_path: Path) -> None:
    base = _plan(tmp_path, "llama-3.1-8b-instruct", "h100", "quantization: {weights: fp8}\nbuild: {max_seq_len: 8192}\n")
    more = _plan(tmp_path, "llama-3.1-8b-instruct", "h100",
                 "quantization: {weights: fp8, calibration: {samples: 1024}}\nbuild: {max_seq_len: 8192}\n")
    rt = _plan(tmp_path, "llama-3.1-8b-instruct", "h100",
               "quantization: {weights: fp8}\nbuild: {max_seq_len: 8192}\nruntime: {scheduler_policy: max_utilization}\n")
    from trtbuild.fingerprint import FingerprintInputs, fingerprint_stages

    fin = FingerprintInputs(model_files={"config.json": "0" * 64}, calibration_digest="1" * 64,
                            toolchain={"tensorrt_llm": "1.2.0"}, templates="2" * 64)

    def keys(plan: BuildPlan) -> dict[str, str]:
        assert {s.key for s in plan.stages} == {None}  # one key per stage: the fingerprint
        return {name: fp.key for name, fp in fingerprint_stages(plan, fin).items()}

    k = keys(base)
    assert keys(more)["fetch"] == k["fetch"]
    assert keys(more)["checkpoint"] != k["checkpoint"]
    rk = keys(rt)
    assert rk["checkpoint"] == k["checkpoint"] and rk["engine"] == k["engine"] and rk["repository"] != k["repository"]


def test_unsupported_architecture_is_a_plan_error(tmp_path: Path) -> None:
    p = _recipe(tmp_path, "llama-3.1-8b-instruct")
    cfg = json.loads((tmp_path / "model" / "config.json").read_text())
    cfg["architectures"] = ["FalconForCausalLM"]
    (tmp_path / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedArchitecture) as info:
        make_plan(load_recipe(p), "h100")
    assert "FalconForCausalLM" in str(info.value) and "LlamaForCausalLM" in str(info.value)


def test_model_source_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("recipe: 1\nname: t\nmodel: {source: ./missing}\n")
    with pytest.raises(PlanError, match="missing: no such directory"):
        make_plan(load_recipe(p), "h100")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    p.write_text("recipe: 1\nname: t\nmodel: {source: 'hf://org/name@main'}\n")
    with pytest.raises(PlanError, match="not in the local Hugging Face cache"):
        make_plan(load_recipe(p), "h100")
    # The HF cache layout: refs/main → snapshot sha → config.json.
    sha = "a" * 40
    snap = tmp_path / "hub" / "models--org--name" / "snapshots" / sha
    snap.mkdir(parents=True)
    shutil.copy(MODELS / "qwen2.5-7b-instruct" / "config.json", snap / "config.json")
    (tmp_path / "hub" / "models--org--name" / "refs").mkdir()
    (tmp_path / "hub" / "models--org--name" / "refs" / "main").write_text(sha)
    plan = make_plan(load_recipe(p), "h100")
    assert plan.model["architecture"] == "Qwen2ForCausalLM"
    assert plan.model["parameters"] == 7_615_616_512


def test_unpinned_hf_revision_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _recipe(tmp_path, "llama-3.1-8b-instruct")
    text = p.read_text().replace("./model", "'hf://org/name@main'") + "  config: model/config.json\n"
    p.write_text(text)
    plan = make_plan(load_recipe(p), "h100")
    assert "model.unpinned" in _rules(plan, "warning")
    p.write_text(text.replace("@main", "@" + "a" * 40))
    assert "model.unpinned" not in _rules(make_plan(load_recipe(p), "h100"), "warning")


def test_unknown_gpu_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="did you mean"):
        _plan(tmp_path, "llama-3.1-8b-instruct", "h10")


def test_plan_json_has_the_stable_fields(tmp_path: Path) -> None:
    j = _plan(tmp_path, "qwen2.5-7b-instruct", "h100", "build: {max_seq_len: 8192}\n").to_json()
    assert j["model"]["parameters"] == 7_615_616_512
    for key in ("weights_bytes_per_rank", "kv_bytes_per_token", "kv_capacity_tokens", "max_concurrent_sequences"):
        assert isinstance(j["memory"][key], int)
    assert isinstance(j["feasible"], bool)
    for d in j["diagnostics"]:
        assert {"rule", "severity", "message"} <= set(d)
    json.dumps(j)


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")))
def test_example_recipes_plan_feasibly_for_their_targets(recipe: str) -> None:
    loaded = load_recipe(ROOT / "recipes" / recipe)
    gpus = list(loaded.gpus)  # the GPUs the recipe says it is built for (targets: only overrides)
    assert gpus and set(loaded.targets) <= set(gpus)
    for gpu in gpus:
        plan = make_plan(loaded, gpu)
        assert plan.feasible, (gpu, [d.format() for d in plan.errors])
