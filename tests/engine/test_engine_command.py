"""Plan → trtllm-build command: only TensorRT-LLM 1.2 flags with valid values, every plan setting present.

The contract is the ``trtllm_build_flags`` fixture (trtbuild/contracts/trtllm_1_2/, regenerated from NVIDIA's
``commands/build.py`` and ``plugin/plugin.py``, not from trtbuild's code); the fake toolchain's parser must agree
with it, and so must every command the planner can emit.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from trtbuild.stages.engine_command import build_command, timing_cache_path
from trtbuild.toolchain.executors import BuildJob, ContainerExecutor
from trtbuild.toolchain.trtllm_cli import flag_table, parse_args

from .helpers import CONTRACT, engine_plans, plan_for, plan_with

FLAGS = CONTRACT["flags"]
CKPT, OUT, CACHE = Path("/work/checkpoint"), Path("/work/engine"), Path("/cache")
PLANS = list(engine_plans())
# Every engine-stage parameter and how it shows up in the command ("gpu"/"sm" name the target only).
COVERED = {"max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens", "opt_num_tokens", "max_beam_width",
           "kv_cache", "paged_context_fmha", "fp8_context_fmha", "gemm_plugin", "multiple_profiles",
           "use_fused_mlp", "reduce_fusion", "logits_dtype", "gather_context_logits", "strip_plan",
           "weight_streaming", "timing_cache", "workers"}


def command_for(plan) -> list[str]:
    return build_command(plan, CKPT, OUT, timing_cache=timing_cache_path(CACHE, plan))


def parse_tokens(argv: list[str]) -> dict[str, str | None]:
    """flag → value (None for store_true flags), checked against the contract as it goes."""
    assert argv[0] == "trtllm-build"
    out: dict[str, str | None] = {}
    i = 1
    while i < len(argv):
        flag = argv[i]
        assert flag.startswith("--"), f"stray value {flag!r}"
        assert flag in FLAGS, f"{flag} is not a trtllm-build 1.2 flag"
        assert flag not in CONTRACT["removed"], f"{flag} was removed"
        assert "deprecated" not in FLAGS[flag], f"{flag} is deprecated: {FLAGS[flag]['deprecated']}"
        assert "alias_of" not in FLAGS[flag], f"{flag} is an alias; use {FLAGS[flag].get('alias_of')}"
        assert flag not in out, f"{flag} given twice"
        spec = FLAGS[flag]
        if spec["type"] == "flag":
            out[flag] = None
            i += 1
            continue
        value = argv[i + 1]
        assert not value.startswith("--"), f"{flag} has no value"
        if spec["type"] == "int":
            n = int(value)
            assert n >= spec.get("min", 0), f"{flag} {n} below {spec.get('min')}"
            if spec.get("power_of_two"):
                assert n & (n - 1) == 0, f"{flag} {n} is not a power of two"
        elif spec["type"] == "choice":
            assert value in spec["choices"], f"{flag} {value!r} not in {spec['choices']}"
        out[flag] = value
        i += 2
    return out


def test_contract_lists_exactly_the_flags_of_the_fake_parser():
    table = flag_table()
    assert sorted(table) == sorted(FLAGS)
    for flag, spec in FLAGS.items():
        assert table[flag]["type"] == spec["type"], flag
        if "choices" in spec:
            assert table[flag]["choices"] == sorted(set(spec["choices"])), flag
        elif "choices_from" not in spec:  # choices_from: defined outside build.py (not verified, see docs)
            assert table[flag]["choices"] is None, flag
    assert not set(CONTRACT["removed"]) & set(table)


def test_there_are_plans_to_check():
    assert len(PLANS) > 40
    assert {r for r, _, _ in PLANS} == {"llama-3.1-70b-fp8-tp4", "llama-3.1-8b-fp8", "mistral-7b-int4-awq",
                                        "qwen2.5-7b"}


@pytest.mark.parametrize(("recipe", "gpu", "plan"), PLANS, ids=[f"{r}-{g}" for r, g, _ in PLANS])
def test_every_planned_command_is_valid_1_2_and_carries_the_plan(recipe, gpu, plan):
    argv = command_for(plan)
    got = parse_tokens(argv)
    parse_args(argv[1:])  # the 1.2 parser accepts it as a whole
    assert_carries_plan(plan, got)


def assert_carries_plan(plan, got: dict[str, str | None]) -> None:
    p = plan.stage("engine").params
    assert set(p) - {"gpu", "sm"} == COVERED, "a new engine setting must reach the command"
    weights = plan.settings.quantization.weights
    assert got["--checkpoint_dir"] == str(CKPT) and got["--output_dir"] == str(OUT)
    for key in ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens", "max_beam_width", "workers"):
        assert got["--" + key] == str(p[key]), key
    assert got.get("--opt_num_tokens") == (None if p["opt_num_tokens"] is None else str(p["opt_num_tokens"]))
    assert got["--kv_cache_type"] == p["kv_cache"]["type"]
    assert got["--tokens_per_block"] == str(p["kv_cache"]["tokens_per_block"])
    onoff = {True: "enable", False: "disable"}
    for key, flag in (("paged_context_fmha", "--use_paged_context_fmha"), ("multiple_profiles", "--multiple_profiles"),
                      ("use_fused_mlp", "--use_fused_mlp"), ("reduce_fusion", "--reduce_fusion")):
        assert got[flag] == onoff[p[key]], key
    if weights in ("fp8", "w4a8_awq", "nvfp4"):
        assert got["--use_fp8_context_fmha"] == onoff[bool(p["fp8_context_fmha"])]
    else:
        assert "--use_fp8_context_fmha" not in got
    assert got["--gemm_plugin"] == p["gemm_plugin"]
    assert got["--logits_dtype"] == p["logits_dtype"]
    for key in ("gather_context_logits", "strip_plan", "weight_streaming"):
        assert (("--" + key) in got) == p[key], key
    cache = str(CACHE / "timing-cache" / f"{plan.target['key']}-sm{plan.target['sm']}.cache")
    if p["timing_cache"]:
        assert got["--input_timing_cache"] == got["--output_timing_cache"] == cache
    else:
        assert "--input_timing_cache" not in got and "--output_timing_cache" not in got


VARIANTS = {
    "all-optional-features": dict(build={"gather_context_logits": True, "weight_streaming": True,
                                         "opt_num_tokens": 1024, "logits_dtype": "float16", "timing_cache": False}),
    "multiple-profiles-no-fusion": dict(build={"multiple_profiles": True, "use_fused_mlp": False,
                                               "gemm_plugin": "disable", "fp8_context_fmha": False}),
    "beam-search": dict(build={"max_beam_width": 4, "kv_cache": {"tokens_per_block": 64}},
                        runtime={"decoding_mode": "beam_search"}),
    "no-paged-context-fmha": dict(build={"paged_context_fmha": False, "workers": 2}, parallelism={"tp": 2},
                                  runtime={"chunked_context": False, "kv_cache": {"reuse": False, "retention": {"rules": []}}}),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_non_default_settings_reach_the_command(variant):
    plan = plan_with("llama-3.1-8b-fp8.yaml", "h100", **VARIANTS[variant])
    assert plan.feasible, [d.format() for d in plan.errors]
    argv = command_for(plan)
    got = parse_tokens(argv)
    parse_args(argv[1:])
    assert_carries_plan(plan, got)


def test_the_deprecated_paged_kv_cache_flag_is_never_used():
    for _, _, plan in PLANS:
        assert "--paged_kv_cache" not in command_for(plan)


def test_cpu_reference_plan_has_no_command():
    from trtbuild.errors import EngineError

    with pytest.raises(EngineError, match="no engine stage"):
        command_for(plan_for("llama-3.1-8b-fp8.yaml", "cpu"))


# ----------------------------------------------------------------------------------------- golden
GOLDEN_DIR = Path(__file__).with_name("golden")
GOLDEN = [(r, g) for r in ("llama-3.1-8b-fp8", "llama-3.1-70b-fp8-tp4", "mistral-7b-int4-awq", "qwen2.5-7b")
          for g in ("h100-sxm", "h200", "a100-80gb", "l4", "l40s", "a10g", "b200")]


def golden_text(recipe: str, gpu: str) -> str | None:
    plan = plan_for(recipe + ".yaml", gpu)
    if not plan.feasible:
        return None
    header = f"# {recipe} for {plan.target['name']} (SM {plan.target['sm']}); regenerate: pytest --update-golden"
    return header + "\n" + format_command(command_for(plan))


def format_command(argv: list[str]) -> str:
    """One option (with its value) per line, shell-quoted, so golden diffs read well."""
    lines = []
    i = 0
    while i < len(argv):
        takes = argv[i].startswith("-") and i + 1 < len(argv) and not argv[i + 1].startswith("-")
        lines.append(shlex.join(argv[i:i + 2] if takes else argv[i:i + 1]))
        i += 2 if takes else 1
    return " \\\n  ".join(lines) + "\n"


def golden_cases() -> list[tuple[str, str]]:
    return [(r, g) for r, g in GOLDEN if golden_text(r, g) is not None]


@pytest.mark.parametrize(("recipe", "gpu"), golden_cases(), ids=[f"{r}-{g}" for r, g in golden_cases()])
def test_golden_command(recipe, gpu, update_golden):
    text = golden_text(recipe, gpu)
    path = GOLDEN_DIR / f"{recipe}__{gpu}.txt"
    if update_golden:
        path.write_text(text)
    assert path.exists(), f"missing golden file {path.name}: run pytest --update-golden"
    assert text == path.read_text(), f"{path.name} differs: review, then pytest --update-golden"


def test_no_stale_golden_files(update_golden):
    expected = {f"{r}__{g}.txt" for r, g in golden_cases()} | {"container__llama-3.1-8b-fp8__h100-sxm.txt"}
    stale = {p.name for p in GOLDEN_DIR.glob("*.txt")} - expected
    if update_golden:
        for name in stale:
            (GOLDEN_DIR / name).unlink()
        stale = set()
    assert not stale, f"golden files no test produces: {sorted(stale)}"


def test_golden_container_command(update_golden):
    plan = plan_for("llama-3.1-8b-fp8.yaml", "h100")
    image = "nvcr.io/nvidia/tritonserver:26.03-trtllm-python-py3@sha256:" + "ab" * 32
    ex = ContainerExecutor(image, "docker", uid_gid=(1000, 1000))
    tc_host = timing_cache_path(CACHE, plan)
    ck, out, tc = ex.tool_paths(CKPT, OUT, tc_host)
    argv = build_command(plan, ck, out, timing_cache=tc)
    job = BuildJob(argv=tuple(argv), checkpoint_dir=CKPT, output_dir=OUT, timing_cache=tc_host,
                   log_path=Path("/work/engine.log"), work_dir=Path("/work"), timeout_s=None, job_id="golden")
    text = "# container build (docker); regenerate: pytest --update-golden\n" + format_command(ex.command_lines(job)[0])
    path = GOLDEN_DIR / "container__llama-3.1-8b-fp8__h100-sxm.txt"
    if update_golden:
        path.write_text(text)
    assert path.exists(), f"missing golden file {path.name}: run pytest --update-golden"
    assert text == path.read_text(), f"{path.name} differs: review, then pytest --update-golden"
