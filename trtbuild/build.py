"""``run_build``: plan → fetch → checkpoint → engine → repository, through the content-addressed store.

Each stage's key is known before it runs (``trtbuild.fingerprint``); a stage whose key is in the store
is reused, otherwise it is built into the store (staging dir + rename, per-key lock), so a killed
compile resumes where it stopped. The artifact for each GPU is then exported to ``OUT/<gpu>/``
(hard links where possible) with a ``report.json`` and a ``trtbuild-artifact.json``.

The checkpoint stage runs in a worker process (``trtbuild.stages.checkpoint_worker``): torch, transformers,
ModelOpt and the model are freed when it ends, before the engine and repository stages. Each built
stage reports the peak RSS of the process that did its work (see :class:`StageReport`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.fingerprint import StageFingerprint, explain
from trtbuild.fsutil import staged_dir, write_atomic
from trtbuild.plan.planner import BuildPlan, make_plan, require_feasible
from trtbuild.progress import Progress
from trtbuild.recipe.loader import LoadedRecipe
from trtbuild.stages.checkpoint_worker import peak_rss_bytes, reset_peak_rss
from trtbuild.targets import TargetState, resolve_target

REPORT_FORMAT = 1
STAGE_PROCESS = "stage-process"
COMPILE_PROCESS = "compile-process"


@dataclass
class StageReport:
    """One stage of one target in the build report."""

    stage: str
    key: str
    status: str
    """``cached`` (reused from the store; nothing ran) or ``built``."""
    reasons: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_bytes: int = 0
    """Peak resident memory while the stage was built; what it covers is ``peak_rss_scope``. 0 when cached."""
    peak_rss_scope: str | None = None
    """``stage-process``: the peak of the process that did the stage's work, over that stage only: the
    checkpoint worker's VmHWM (the whole stage ran there), or for the stages run in the compile process
    (fetch, engine, repository) its VmHWM reset when the stage started (programs a stage starts, such as
    trtllm-build, are not included). ``compile-process``: the VmHWM could not be reset on this system;
    the figure is the compile process's peak since it started. None when cached."""
    artifact_bytes: int = 0
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class TargetReport:
    gpu: str
    out_dir: Path
    plan: BuildPlan
    stages: list[StageReport]
    fingerprint: str
    published: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT, "recipe": self.plan.recipe, "target": self.plan.target,
            "fingerprint": self.fingerprint, "out_dir": str(self.out_dir),
            "stages": [s.to_json() for s in self.stages],
            "memory_prediction": self.plan.memory, "diagnostics": [d.model_dump() for d in self.plan.diagnostics],
            "published": self.published,
        }


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


def _link_or_copy(src: Path, dst: Path) -> None:
    def copy(s: str, d: str) -> object:
        try:
            os.link(s, d)
            return d
        except OSError:
            return shutil.copy2(s, d)

    shutil.copytree(src, dst, symlinks=True, copy_function=copy)


@dataclass
class BuildOptions:
    out_dir: Path
    executor: str | None = None          # auto|local|container|fake (None: the recipe's)
    lockfile: Path | None = None
    device: str | None = None            # checkpoint calibration device
    dry_run: bool = False


StageBuilder = Callable[[Path], "int | None"]
"""Writes a stage into the empty directory it is given; returns the peak RSS in bytes of the worker
process that did the work, or None when the work ran in this process."""


class Builder:
    """Runs the stages of one or more targets of a recipe against a ``Store``."""

    def __init__(self, loaded: LoadedRecipe, store: Any, options: BuildOptions, *, progress: Progress | None = None):
        self.loaded = loaded
        self.store = store
        self.options = options
        self.progress = progress or Progress.silent()

    # -- one stage -------------------------------------------------------------------------
    def _stage(self, state: TargetState, fp: StageFingerprint, build: StageBuilder) -> tuple[Path, StageReport]:
        cached = self.store.get(fp.stage, fp.key)
        if cached is not None:
            task = self.progress.start(f"{fp.stage} [{state.plan.target['key']}]")
            self.progress.finish(task, "cached")
            return cached, StageReport(fp.stage, fp.key, "cached", path=str(cached),
                                       artifact_bytes=tree_bytes(cached))
        reasons = explain(state.previous_inputs(fp.stage), fp.inputs)
        task = self.progress.start(f"{fp.stage} [{state.plan.target['key']}] ({'; '.join(reasons)})")
        t0 = time.monotonic()
        meta = {"inputs": fp.inputs, "recipe": self.loaded.recipe.name, "gpu": state.plan.target["key"]}
        worker_peaks: list[int] = []

        def run(out: Path) -> None:
            peak = build(out)
            if peak is not None:
                worker_peaks.append(peak)

        own_window = reset_peak_rss()
        path = self.store.put(fp.stage, fp.key, run, meta=meta)
        wall = time.monotonic() - t0
        if worker_peaks:
            peak, scope = worker_peaks[0], STAGE_PROCESS
        else:
            peak, scope = peak_rss_bytes(), STAGE_PROCESS if own_window else COMPILE_PROCESS
        self.progress.finish(task)
        return path, StageReport(fp.stage, fp.key, "built", reasons, wall_s=round(wall, 3),
                                 peak_rss_bytes=peak, peak_rss_scope=scope, artifact_bytes=tree_bytes(path),
                                 path=str(path))

    # -- one target ------------------------------------------------------------------------
    def build_target(self, gpu: str) -> TargetReport:
        plan = make_plan(self.loaded, gpu)
        require_feasible(plan)
        state = resolve_target(self.loaded, plan, self.store, executor_kind=self.options.executor,
                               lockfile=self.options.lockfile, progress=self.progress)
        reports: list[StageReport] = []
        fps = state.fingerprints
        fetch_path, rep = self._stage(state, fps["fetch"], state.write_fetch_record)
        reports.append(rep)
        checkpoint = engine = None
        if "checkpoint" in fps:
            checkpoint, rep = self._stage(state, fps["checkpoint"],
                                          lambda d: state.run_checkpoint(d, self.progress, self.options.device))
            reports.append(rep)
        if "engine" in fps:
            assert checkpoint is not None
            ck = checkpoint
            engine, rep = self._stage(state, fps["engine"], lambda d: state.run_engine(ck, d, self.progress))
            reports.append(rep)
        repo, rep = self._stage(state, fps["repository"],
                                lambda d: state.run_repository(d, checkpoint=checkpoint, engine=engine))
        reports.append(rep)
        out = self.options.out_dir / plan.target["key"]
        report = TargetReport(plan.target["key"], out, plan, reports, fps["repository"].key)
        self._export(report, repo, engine, state)
        return report

    def _export(self, report: TargetReport, repo: Path, engine: Path | None, state: TargetState) -> None:
        """OUT/<gpu>/: repository/ (+ engine/), report.json, trtbuild-artifact.json — replaced atomically."""
        with staged_dir(report.out_dir) as stage:
            _link_or_copy(repo, stage / "repository")
            if engine is not None:
                _link_or_copy(engine, stage / "engine")
            write_atomic(stage / "trtbuild-artifact.json", json.dumps(state.artifact_json(report.fingerprint),
                                                                       indent=2, sort_keys=True))
        # The report (timings) lives beside the artifact, not in it: republishing identical content
        # must upload nothing.
        write_atomic(report.out_dir.parent / f"{report.gpu}.report.json",
                     json.dumps(report.to_json(), indent=2, default=str))
