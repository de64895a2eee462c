"""Engine stage: a TensorRT-LLM checkpoint → a validated engine directory with a build manifest.

Order of work, cheapest checks first: the checkpoint's config.json against the plan, the toolchain
(version range, GPU SM = target SM), the builder rewrites that would break the plan's runtime settings; then
``trtllm-build`` runs through an executor into a staging directory, the engine is validated against the
plan (:mod:`trtbuild.stages.engine_checks`), ``trtbuild-engine.json`` is written, and only then is the
directory renamed into place. Any failure leaves no directory that looks complete; the build log stays
beside it (``<out>.trtllm-build.log``, or ``log_path``).

Reproducible: ``trtbuild-engine.json`` records what the engine is built from and with, never where or when
(no host paths, no timestamps, no durations, no machine names): the same inputs give the same bytes
wherever the cache lives. Those build facts are :meth:`EngineManifest.build_facts`, which the caller puts
in the build report beside the artifact.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from trtbuild.canon import Frozen, canonical_digest
from trtbuild.errors import EngineError
from trtbuild.fsutil import read_regular_file, sha256_file, staged_dir, write_atomic
from trtbuild.plan.planner import require_feasible
from trtbuild.progress import Progress
from trtbuild.stages.engine_checks import (
    check_checkpoint,
    engine_problems,
    expected_build_config,
    plan_conflicts,
)
from trtbuild.stages.engine_command import build_command, engine_params, timing_cache_path
from trtbuild.toolchain.detect import ToolchainInfo, check_toolchain
from trtbuild.toolchain.executors import BuildJob, Executor

if TYPE_CHECKING:
    from trtbuild.plan.planner import BuildPlan

MANIFEST_NAME = "trtbuild-engine.json"
MANIFEST_FORMAT = "trtbuild-engine/2"
CHECKPOINT_PLACEHOLDER = "<checkpoint_dir>"
OUTPUT_PLACEHOLDER = "<output_dir>"
_SHOWN = re.compile(r"\[E\]|\berror\b|Traceback|Build TensorRT engine|Total time", re.IGNORECASE)


class EngineFile(Frozen):
    name: str
    size: int
    sha256: str


class EngineManifest(Frozen):
    """What the engine stage built, with what, from which plan; written as ``trtbuild-engine.json``."""

    format: str = MANIFEST_FORMAT
    fake: bool
    """True when the fake toolchain wrote it: not an engine, never to be served or published."""
    recipe: str
    target: str
    """GPU catalog key of the plan's target."""
    target_sm: int
    stage_key: str | None
    """The engine stage's key (its fingerprint, as the cache and report show it); None when built outside
    a compile (``trtbuild engine``), from a plan whose keys were never resolved."""
    plan_digest: str
    """sha256 of the whole plan (canonical JSON) but the paths it was read from."""
    executor: str
    trtllm_version: str
    tensorrt_version: str | None
    gpu_sm: int
    image: str | None
    image_digest: str | None
    command: tuple[str, ...]
    """The trtllm-build argv, the checkpoint and output directories written ``<checkpoint_dir>`` and
    ``<output_dir>`` (the executed command line, with its host paths, is in the build report)."""
    tp: int
    pp: int
    world_size: int
    adjustments: tuple[str, ...]
    """Values trtllm-build records differently from the plan, and why (expected, harmless ones)."""
    files: tuple[EngineFile, ...]
    # Build facts: true of this build, not of the engine. Never written into the artifact (exclude=True).
    gpu_name: str = Field(default="", exclude=True)
    command_line: tuple[str, ...] = Field(default=(), exclude=True)
    wall_s: float = Field(default=0.0, exclude=True)
    built_at: str = Field(default="", exclude=True)
    log_path: str = Field(default="", exclude=True)

    def to_json(self) -> dict[str, Any]:
        """The content of ``trtbuild-engine.json`` (no build facts)."""
        return self.model_dump(mode="json")

    def build_facts(self) -> dict[str, Any]:
        """What varies from build to build (for the report beside the artifact)."""
        return {"gpu_name": self.gpu_name, "command_line": list(self.command_line), "wall_s": self.wall_s,
                "built_at": self.built_at, "log": self.log_path}

    @classmethod
    def load(cls, engine_dir: Path) -> EngineManifest:
        path = Path(engine_dir) / MANIFEST_NAME
        try:
            return cls.model_validate_json(read_regular_file(path, 64 * 1024 * 1024))
        except (OSError, ValueError) as exc:
            raise EngineError(f"{path}: unreadable engine manifest ({type(exc).__name__}: {exc})") from None


def plan_digest(plan: BuildPlan) -> str:
    """sha256 of the plan, without where its files were found (the recipe's and the model config's paths
    as given on the command line): the same plan has the same digest from any directory."""
    doc = plan.to_json()
    doc["recipe"] = {k: v for k, v in dict(doc.get("recipe") or {}).items() if k != "path"}
    doc["model"] = {k: v for k, v in dict(doc.get("model") or {}).items() if k != "config"}
    doc["stages"] = [{k: v for k, v in st.items() if k != "key"} for st in doc.get("stages") or []]  # plan only
    return canonical_digest(doc)


def default_log_path(out_dir: Path) -> Path:
    out_dir = Path(out_dir)
    return out_dir.parent / f"{out_dir.name}.trtllm-build.log"


def _line_reporter(progress: Progress) -> Callable[[str], None]:
    def report(line: str) -> None:
        if _SHOWN.search(line):
            progress.log("    " + line)
    return report


def run_engine_stage(plan: BuildPlan, checkpoint_dir: Path, out_dir: Path, *, executor: Executor,
                     toolchain_info: ToolchainInfo, progress: Progress | None = None,
                     cache_root: Path | None = None, timeout_s: float | None = None,
                     log_path: Path | None = None) -> EngineManifest:
    """Build ``plan``'s engine from ``checkpoint_dir`` into ``out_dir`` and return its manifest.

    ``cache_root``: the trtbuild cache; per-target TensorRT timing caches live under it (None: none). ``timeout_s``:
    default ``toolchain.build_timeout`` of the recipe. Raises ToolchainError / EngineError (exit 4).
    """
    progress = progress or Progress.silent()
    params = engine_params(plan)
    require_feasible(plan)
    checkpoint_dir, out_dir = Path(checkpoint_dir), Path(out_dir)
    pretrained = check_checkpoint(checkpoint_dir, plan)
    check_toolchain(toolchain_info, plan, workers=params["workers"])
    _, changes = expected_build_config(plan, pretrained)
    conflicts = plan_conflicts(plan, changes)
    if conflicts:
        raise EngineError(f"the plan for {plan.target['name']} cannot be built as planned:\n  - "
                          + "\n  - ".join(conflicts))
    timing_cache = timing_cache_path(cache_root, plan) if cache_root is not None else None
    if timing_cache is not None:
        _drop_foreign_timing_cache(timing_cache, toolchain_info)
    if timeout_s is None:
        timeout_s = plan.settings.toolchain.build_timeout / 1000.0
    log_path = Path(log_path) if log_path else default_log_path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    fake = toolchain_info.fake
    task = progress.start(f"trtllm-build for {plan.target['name']}" + (" (FAKE toolchain)" if fake else ""))
    with staged_dir(out_dir) as stage:
        ck, st, tc = executor.tool_paths(checkpoint_dir, stage, timing_cache)
        argv = build_command(plan, ck, st, timing_cache=tc)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.work-", dir=out_dir.parent))
        try:
            job = BuildJob(argv=tuple(argv), checkpoint_dir=checkpoint_dir, output_dir=stage,
                           timing_cache=timing_cache, log_path=log_path, work_dir=work,
                           timeout_s=timeout_s, job_id=uuid.uuid4().hex[:12])
            command_line = executor.command_lines(job)[0]
            result = executor.run(job, _line_reporter(progress))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        problems = engine_problems(stage, plan, pretrained, trtllm_version=toolchain_info.trtllm_version)
        if problems:
            raise EngineError(f"the engine trtllm-build wrote does not match the plan for {plan.target['name']} "
                              f"(discarded; {out_dir} is unchanged):\n  - " + "\n  - ".join(problems),
                              command=command_line, log_tail=result.tail)
        files = tuple(EngineFile(name=f.name, size=f.stat().st_size, sha256=sha256_file(f))
                      for f in sorted(stage.iterdir()) if f.is_file())
        gpu = toolchain_info.gpus[0]
        tp, pp = plan.settings.parallelism.tp, plan.settings.parallelism.pp
        places = {str(ck): CHECKPOINT_PLACEHOLDER, str(st): OUTPUT_PLACEHOLDER}
        manifest = EngineManifest(
            fake=fake, recipe=plan.settings.name, target=str(plan.target["key"]), target_sm=int(plan.target["sm"]),
            stage_key=plan.stage("engine").key, plan_digest=plan_digest(plan),  # type: ignore[union-attr]
            executor=toolchain_info.executor, trtllm_version=str(toolchain_info.trtllm_version),
            tensorrt_version=toolchain_info.tensorrt_version, gpu_sm=gpu.sm,
            image=toolchain_info.image, image_digest=toolchain_info.image_digest,
            command=tuple(places.get(a, a) for a in argv), tp=tp, pp=pp, world_size=tp * pp,
            adjustments=tuple(c.format() for c in changes), files=files, gpu_name=gpu.name,
            command_line=tuple(command_line), wall_s=round(result.wall_s, 3),
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), log_path=str(log_path))
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    if timing_cache is not None and timing_cache.is_file():
        write_atomic(_sidecar(timing_cache), json.dumps(_toolchain_id(toolchain_info), sort_keys=True) + "\n")
    progress.finish(task, "FAKE engine" if fake else f"{len(files)} files")
    return manifest


def _toolchain_id(info: ToolchainInfo) -> dict[str, Any]:
    return {"trtllm_version": info.trtllm_version, "tensorrt_version": info.tensorrt_version,
            "image_digest": info.image_digest, "fake": info.fake}


def _sidecar(cache: Path) -> Path:
    return cache.with_name(cache.name + ".json")


def _drop_foreign_timing_cache(cache: Path, info: ToolchainInfo) -> None:
    """Remove a timing cache written by another toolchain (or of unknown origin): timings do not transfer."""
    if not cache.exists():
        return
    try:
        recorded = json.loads(_sidecar(cache).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    if recorded != _toolchain_id(info):
        cache.unlink(missing_ok=True)
        _sidecar(cache).unlink(missing_ok=True)
