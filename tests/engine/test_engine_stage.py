"""The engine stage end to end with the fake toolchain: validation, manifest, and every failure path."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import pytest

from trtbuild.errors import EngineError, PlanError, ToolchainError
from trtbuild.fsutil import sha256_file
from trtbuild.progress import Progress
from trtbuild.stages.engine import MANIFEST_NAME, EngineManifest, plan_digest, run_engine_stage
from trtbuild.toolchain.executors import BuildJob, LocalExecutor
from trtbuild.toolchain.fake import FAKE_TRTLLM_VERSION, FakeExecutor

from .helpers import plan_for, plan_with, write_checkpoint

LLAMA_H100 = plan_for("llama-3.1-8b-fp8.yaml", "h100")
LLAMA_70B = plan_for("llama-3.1-70b-fp8-tp4.yaml", "h100")


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".staging-" in p.name or ".work-" in p.name)


def build(plan, tmp_path: Path, executor=None, **kw) -> EngineManifest:
    ex = executor or FakeExecutor(gpu_name=plan.target["name"], sm=plan.target["sm"],
                                  gpu_count=plan.settings.parallelism.tp)
    return run_engine_stage(plan, tmp_path / "ckpt", tmp_path / "engine", executor=ex, toolchain_info=ex.probe(),
                            progress=Progress.silent(), **kw)


def test_builds_validates_and_writes_the_manifest(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100)
    keyed = LLAMA_H100.with_keys({"engine": "e" * 64})  # as compile resolves it (the stage's fingerprint)
    manifest = build(keyed, tmp_path, cache_root=tmp_path / "cache")
    engine = tmp_path / "engine"
    assert sorted(p.name for p in engine.iterdir()) == ["config.json", "rank0.engine", MANIFEST_NAME]
    on_disk = EngineManifest.load(engine)
    assert on_disk.to_json() == manifest.to_json()
    # What varies from build to build is a build fact (for the report), never in the artifact.
    facts = manifest.build_facts()
    assert facts["wall_s"] >= 0 and facts["built_at"] and facts["command_line"] and facts["gpu_name"]
    text = (engine / MANIFEST_NAME).read_text()
    for varying in ("built_at", "wall_s", "command_line", "gpu_name", str(tmp_path)):
        assert varying not in text
    assert "<checkpoint_dir>" in manifest.command and "<output_dir>" in manifest.command
    assert manifest.fake is True and manifest.executor == "fake"
    assert manifest.trtllm_version == FAKE_TRTLLM_VERSION and manifest.tensorrt_version
    assert (manifest.gpu_sm, manifest.target, manifest.target_sm) == (90, "h100-sxm", 90)
    assert manifest.stage_key == "e" * 64 and manifest.plan_digest == plan_digest(LLAMA_H100)
    assert manifest.command[0] == "trtllm-build" and "--kv_cache_type" in manifest.command
    assert {f.name: f.sha256 for f in manifest.files} == {
        name: sha256_file(engine / name) for name in ("config.json", "rank0.engine")}
    # kv fp8 + fp8 weights + paged context FMHA: nothing is rewritten
    assert manifest.adjustments == ()
    assert leftovers(tmp_path) == []
    assert (tmp_path / "engine.trtllm-build.log").read_text().startswith("$ trtllm-build ")
    cache = tmp_path / "cache" / "timing-cache" / "h100-sxm-sm90.cache"
    assert cache.is_file()
    assert json.loads(cache.with_name(cache.name + ".json").read_text())["trtllm_version"] == FAKE_TRTLLM_VERSION


def test_tensor_parallel_engine_has_one_file_per_rank(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_70B)
    manifest = build(LLAMA_70B, tmp_path)
    assert (manifest.tp, manifest.pp, manifest.world_size) == (4, 1, 4)
    assert sorted(p.name for p in (tmp_path / "engine").glob("rank*.engine")) == [f"rank{r}.engine" for r in range(4)]
    assert manifest.command[manifest.command.index("--workers") + 1] == "4"


def test_harmless_rewrites_are_recorded(tmp_path):
    plan = plan_with("llama-3.1-8b-fp8.yaml", "h100", build={"reduce_fusion": True})
    write_checkpoint(tmp_path / "ckpt", plan)
    manifest = build(plan, tmp_path)
    assert any(a.startswith("plugin_config.reduce_fusion: requested True, trtllm-build records False")
               for a in manifest.adjustments)


def test_mismatched_mapping_fails_before_the_build_and_leaves_nothing(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100,
                     mapping={"world_size": 2, "tp_size": 2, "pp_size": 1})
    ex = RecordingFake(sm=90)
    with pytest.raises(EngineError) as err:
        build(LLAMA_H100, tmp_path, executor=ex)
    text = str(err.value)
    assert str(tmp_path / "ckpt" / "config.json") in text
    assert "mapping is tp 2 x pp 1 (world_size 2), the plan needs tp 1 x pp 1" in text
    assert err.value.exit_code == 4
    assert ex.runs == 0 and not (tmp_path / "engine").exists() and leftovers(tmp_path) == []


def test_mismatched_quantization_is_named(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100, quantization={"quant_algo": "W4A16_AWQ", "kv_cache_quant_algo": None})
    with pytest.raises(EngineError, match="quant_algo is 'W4A16_AWQ', the plan's weights 'fp8' need 'FP8'"):
        build(LLAMA_H100, tmp_path)


def test_sm_mismatch_is_refused(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100)
    ex = RecordingFake(sm=80, gpu_name="A100")
    with pytest.raises(ToolchainError, match=r"\(SM 80\) but the plan targets H100 SXM \(SM 90\)"):
        build(LLAMA_H100, tmp_path, executor=ex)
    assert ex.runs == 0 and not (tmp_path / "engine").exists()


def test_toolchain_out_of_range_is_refused(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100)
    with pytest.raises(ToolchainError, match="1.3.0 in the fake toolchain is outside the supported range"):
        build(LLAMA_H100, tmp_path, executor=FakeExecutor(sm=90, version="1.3.0"))


def test_failed_build_reports_and_keeps_the_old_engine(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100)
    build(LLAMA_H100, tmp_path)
    before = (tmp_path / "engine" / MANIFEST_NAME).read_bytes()
    with pytest.raises(EngineError) as err:
        build(LLAMA_H100, tmp_path, executor=ArgvEditingFake(sm=90, extra=["--use_paged_context_fmha", "maybe"]))
    assert "exit status 2" in str(err.value)
    assert "invalid choice: 'maybe'" in err.value.failure.log_tail
    assert (tmp_path / "engine" / MANIFEST_NAME).read_bytes() == before
    assert leftovers(tmp_path) == []


def test_engine_that_does_not_match_the_plan_is_rejected(tmp_path):
    """A tool that ignores --max_num_tokens records its default (8192) instead of the plan's 16384."""
    write_checkpoint(tmp_path / "ckpt", LLAMA_70B)
    ex = ArgvEditingFake(sm=90, drop="--max_num_tokens", gpu_count=4)
    with pytest.raises(EngineError) as err:
        build(LLAMA_70B, tmp_path, executor=ex)
    assert "build_config.max_num_tokens is 8192, expected 16384" in str(err.value)
    assert not (tmp_path / "engine").exists() and leftovers(tmp_path) == []


def test_wrong_engine_version_is_rejected(tmp_path):
    """The toolchain says 1.2.0 but the engine was written by 1.2.1."""
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100)
    ex = FakeExecutor(sm=90)
    info = dataclasses.replace(ex.probe(), trtllm_version="1.2.0")
    with pytest.raises(EngineError, match="version is '1.2.1', the toolchain is TensorRT-LLM 1.2.0"):
        run_engine_stage(LLAMA_H100, tmp_path / "ckpt", tmp_path / "engine", executor=ex, toolchain_info=info)


def test_plan_the_builder_would_break_is_refused_before_building(tmp_path):
    """INT8 KV cache: trtllm-build drops paged context FMHA, which KV reuse and chunked context need."""
    plan = plan_with("llama-3.1-8b-fp8.yaml", "a100", targets={"a100": {"quantization": {"kv_cache": "int8"}}})
    write_checkpoint(tmp_path / "ckpt", plan)
    ex = RecordingFake(sm=80)
    # The planner already reports it (kv_quant.paged_context_fmha), so the stage refuses the plan itself;
    # engine_checks.plan_conflicts is the second line of defence (tests/engine/test_engine_checks.py).
    assert "kv_quant.paged_context_fmha" in {d.rule for d in plan.errors}
    with pytest.raises(PlanError, match="infeasible"):
        build(plan, tmp_path, executor=ex)
    assert ex.runs == 0


def test_timing_cache_of_another_toolchain_is_dropped(tmp_path):
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100)
    cache = tmp_path / "cache" / "timing-cache" / "h100-sxm-sm90.cache"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"timings of some other TensorRT")
    ex = RecordingFake(sm=90)
    build(LLAMA_H100, tmp_path, executor=ex, cache_root=tmp_path / "cache")
    assert ex.cache_seen_before_build is False  # removed before trtllm-build could read it
    assert cache.read_bytes().startswith(b"TRTBUILD-FAKE-TIMING-CACHE")
    ex2 = RecordingFake(sm=90)
    build(LLAMA_H100, tmp_path, executor=ex2, cache_root=tmp_path / "cache")
    assert ex2.cache_seen_before_build is True  # same toolchain: reused


def test_cpu_reference_and_infeasible_plans(tmp_path):
    with pytest.raises(EngineError, match="no engine stage"):
        build(plan_for("llama-3.1-8b-fp8.yaml", "cpu"), tmp_path)
    infeasible = plan_for("llama-3.1-70b-fp8-tp4.yaml", "a10g")
    assert not infeasible.feasible
    with pytest.raises(PlanError):
        build(infeasible, tmp_path, executor=FakeExecutor(sm=86))


def test_real_child_process_with_the_fake_program(tmp_path):
    """LocalExecutor runs `python -m trtbuild.toolchain.fake` as trtllm-build: the whole local path."""
    write_checkpoint(tmp_path / "ckpt", LLAMA_H100)
    ex = LocalExecutor(program=[sys.executable, "-m", "trtbuild.toolchain.fake"],
                       env={**os.environ, "TRTBUILD_FAKE_SM": "90"})
    info = FakeExecutor(sm=90).probe()
    manifest = run_engine_stage(LLAMA_H100, tmp_path / "ckpt", tmp_path / "engine", executor=ex,
                                toolchain_info=info, cache_root=tmp_path / "cache")
    assert manifest.command_line[:3] == (sys.executable, "-m", "trtbuild.toolchain.fake")
    assert (tmp_path / "engine" / "rank0.engine").is_file()
    assert "Total time of building all engines" in (tmp_path / "engine.trtllm-build.log").read_text()


# ------------------------------------------------------------------------------------- doubles
class RecordingFake(FakeExecutor):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.runs = 0
        self.cache_seen_before_build: bool | None = None

    def run(self, job: BuildJob, on_line=None):
        self.runs += 1
        self.cache_seen_before_build = bool(job.timing_cache and job.timing_cache.exists())
        return super().run(job, on_line)


class ArgvEditingFake(FakeExecutor):
    """Runs the fake tool with arguments added or removed: a tool that disagrees with trtbuild."""

    def __init__(self, *, extra: list[str] = (), drop: str | None = None, **kw):
        super().__init__(**kw)
        self.extra, self.drop = list(extra), drop

    def run(self, job: BuildJob, on_line=None):
        argv = list(job.argv)
        if self.drop:
            i = argv.index(self.drop)
            del argv[i:i + 2]
        edited = BuildJob(**{**job.__dict__, "argv": tuple(argv + self.extra)})
        return super().run(edited, on_line)
