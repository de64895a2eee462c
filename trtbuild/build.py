"""``run_build``: plan → fetch → checkpoint → engine → repository, through the content-addressed store.

Each stage's key is known before it runs (``trtbuild.fingerprint``); a stage whose key is in the store
is reused, otherwise it is built into the store (staging dir + rename, per-key lock), so a killed
compile resumes where it stopped. The artifact for each GPU is then exported to ``OUT/<gpu>/`` with a
``trtbuild-artifact.json``; the build report (timings, memory, paths, commands: facts of this build) goes
beside it, to ``OUT/<gpu>.report.json``, never into it, so the same inputs give the same artifact bytes.

Nothing corrupt is served (README "Cache trust model"): a cached entry a stage is about to read is
re-hashed first, and the exported entries are copied (never linked) with every byte verified against the
store manifest as it is copied. A corrupt entry is removed, said so in the progress and the report
(``reasons``), and rebuilt; if the cache keeps changing under the build, the compile fails (exit 4).

The checkpoint stage runs in a worker process (``trtbuild.stages.checkpoint_worker``): torch, transformers,
ModelOpt and the model are freed when it ends, before the engine and repository stages. Each built
stage reports the peak RSS of the process that did its work (see :class:`StageReport`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild.errors import StageError
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
    build: dict[str, Any] = field(default_factory=dict)
    """Facts of the build that made the artifact (command line, log, duration, device): for a cached
    stage, those of the build that stored it. Never part of the artifact."""

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
    """Each publication pinned by digest (``oci://host/ns/name@sha256:...``)."""
    publications: list[dict[str, Any]] = field(default_factory=list)
    """Each publication: ``ref`` (with its tag), ``digest``, ``pinned``, ``tags``."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": REPORT_FORMAT, "recipe": self.plan.recipe, "target": self.plan.target,
            "fingerprint": self.fingerprint, "out_dir": str(self.out_dir),
            "stages": [s.to_json() for s in self.stages],
            "memory_prediction": self.plan.memory, "diagnostics": [d.model_dump() for d in self.plan.diagnostics],
            "published": self.published, "publications": self.publications,
        }

    def write(self) -> Path:
        """Write ``OUT/<gpu>.report.json``: beside the artifact, never in it (republishing identical content
        must upload nothing, and the artifact's bytes must not depend on when or where it was built)."""
        path = self.out_dir.parent / f"{self.gpu}.report.json"
        write_atomic(path, json.dumps(self.to_json(), indent=2, default=str))
        return path


def tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            p = Path(root) / f
            if not p.is_symlink():
                total += p.stat().st_size
    return total


class _Corrupt(Exception):
    """An exported entry did not match its manifest (the export is discarded)."""

    def __init__(self, problems: list[Any]):
        super().__init__(problems[0].format())
        self.problems = problems


def _describe(problems: list[Any]) -> str:
    more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
    return f"{problems[0].format()}{more}"


@dataclass
class BuildOptions:
    out_dir: Path
    executor: str | None = None          # auto|local|container|fake (None: the recipe's)
    lockfile: Path | None = None
    device: str | None = None            # checkpoint calibration device
    dry_run: bool = False


StageBuilder = Callable[[Path], "dict[str, Any] | None"]
"""Writes a stage into the empty directory it is given; returns the build's facts (stored in the entry's
meta, reported, never in the artifact), with ``peak_rss_bytes`` when a worker process did the work."""
STAGE_ORDER = ("fetch", "checkpoint", "engine", "repository")


class Builder:
    """Runs the stages of one or more targets of a recipe against a ``Store``."""

    def __init__(self, loaded: LoadedRecipe, store: Any, options: BuildOptions, *, progress: Progress | None = None):
        self.loaded = loaded
        self.store = store
        self.options = options
        self.progress = progress or Progress.silent()
        self._verified: set[tuple[str, str]] = set()
        self._corrupt: dict[tuple[str, str], str] = {}
        """Entries removed as corrupt, and why (the reason reported when they are rebuilt)."""

    # -- the cache's trust model ---------------------------------------------------------------
    def _discard(self, stage: str, key: str, problems: list[Any]) -> None:
        """Remove a corrupt entry (it is rebuilt, with this as the reason)."""
        self._verified.discard((stage, key))
        if not self.store.remove(stage, key):
            raise StageError(stage, f"cache entry {stage}/{key} is corrupt ({_describe(problems)}) and another "
                                    "trtbuild is building it right now; run the compile again when it is done")
        self._corrupt[(stage, key)] = f"the cached entry was corrupt ({_describe(problems)}): removed and rebuilt"
        self.progress.log(f"warning: cache entry {stage}/{key[:12]} is corrupt ({_describe(problems)}); "
                          "removed, rebuilding it (`trtbuild cache verify` checks the whole cache)")

    def _cached(self, fp: StageFingerprint, *, read_next: bool) -> Path | None:
        """The entry of ``fp`` if it can be used. An entry a stage is about to read is re-hashed first (once
        per process; a corrupt one is removed); exported entries are verified by the export's copy."""
        entry = self.store.entry(fp.stage, fp.key)
        if entry is None:
            return None
        path: Path = entry.path
        if not read_next or (fp.stage, fp.key) in self._verified:
            return path
        problems = self.store.verify_entry(fp.stage, fp.key)
        if problems:
            self._discard(fp.stage, fp.key, problems)
            return None
        self._verified.add((fp.stage, fp.key))
        return path

    def _build_follows(self, state: TargetState, stage: str) -> bool:
        """Whether a stage after ``stage`` must be built in this run (and so reads this stage's artifact)."""
        later = [s for s in STAGE_ORDER[STAGE_ORDER.index(stage) + 1:] if s in state.fingerprints]
        return any(self.store.entry(state.fingerprints[s].stage, state.fingerprints[s].key, touch=False) is None
                   for s in later)

    # -- one stage -------------------------------------------------------------------------
    def _stage(self, state: TargetState, fp: StageFingerprint, build: StageBuilder) -> tuple[Path, StageReport]:
        read_next = fp.stage != "fetch" and self._build_follows(state, fp.stage)
        cached = self._cached(fp, read_next=read_next)
        if cached is not None:
            task = self.progress.start(f"{fp.stage} [{state.plan.target['key']}]")
            self.progress.finish(task, "cached")
            entry = self.store.entry(fp.stage, fp.key, touch=False)
            stored = dict((entry.manifest.meta or {}).get("build") or {}) if entry else {}
            return cached, StageReport(fp.stage, fp.key, "cached", path=str(cached),
                                       artifact_bytes=tree_bytes(cached), build=stored)
        corrupt = self._corrupt.pop((fp.stage, fp.key), None)
        reasons = [corrupt] if corrupt else explain(state.previous_inputs(fp.stage), fp.inputs)
        task = self.progress.start(f"{fp.stage} [{state.plan.target['key']}] ({'; '.join(reasons)})")
        t0 = time.monotonic()
        meta = {"inputs": fp.inputs, "recipe": self.loaded.recipe.name, "gpu": state.plan.target["key"]}
        facts: dict[str, Any] = {}

        def run(out: Path) -> dict[str, Any]:
            facts.update(build(out) or {})
            return facts

        own_window = reset_peak_rss()
        path = self.store.put(fp.stage, fp.key, run, meta=meta)
        self._verified.add((fp.stage, fp.key))  # hashed as it was stored
        wall = time.monotonic() - t0
        if "peak_rss_bytes" in facts:
            peak, scope = int(facts.pop("peak_rss_bytes")), STAGE_PROCESS
        else:
            peak, scope = peak_rss_bytes(), STAGE_PROCESS if own_window else COMPILE_PROCESS
        self.progress.finish(task)
        return path, StageReport(fp.stage, fp.key, "built", reasons, wall_s=round(wall, 3),
                                 peak_rss_bytes=peak, peak_rss_scope=scope, artifact_bytes=tree_bytes(path),
                                 path=str(path), build=facts)

    # -- one target ------------------------------------------------------------------------
    def build_target(self, gpu: str) -> TargetReport:
        """Build (or reuse) every stage of ``gpu``'s target and export its artifact, verified. An exported
        entry found corrupt is removed and the target built again, once."""
        for attempt in (1, 2):
            report, fps, info = self._build_stages(gpu)
            try:
                self._export(report, fps, info)
                return report
            except _Corrupt as exc:
                stages = sorted({(p.stage, p.key) for p in exc.problems})
                if attempt == 2:
                    raise StageError("cache", f"the cache at {self.store.cache_dir} changed while it was exported "
                                              f"({_describe(exc.problems)}): is another process writing to it, or "
                                              "is the disk failing? Run `trtbuild cache verify --remove`, then "
                                              "compile again") from None
                for stage, key in stages:
                    self._discard(stage, key, [p for p in exc.problems if (p.stage, p.key) == (stage, key)])
        raise AssertionError("unreachable")

    def _build_stages(self, gpu: str) -> tuple[TargetReport, dict[str, StageFingerprint], dict[str, Any]]:
        plan = make_plan(self.loaded, gpu)
        require_feasible(plan)
        state = resolve_target(self.loaded, plan, self.store, executor_kind=self.options.executor,
                               lockfile=self.options.lockfile, progress=self.progress)
        reports: list[StageReport] = []
        fps = state.fingerprints
        built: dict[str, Path] = {}
        for stage in plan.stages:  # the backend's stages, in order (trtbuild.backends)
            path, rep = self._stage(state, fps[stage.name], self._runner(state, stage.name, built))
            built[stage.name] = path
            reports.append(rep)
        out = self.options.out_dir / plan.target["key"]
        report = TargetReport(plan.target["key"], out, plan, reports, fps["repository"].key)
        return report, fps, state.artifact_json(report.fingerprint)

    def _runner(self, state: TargetState, stage: str, built: dict[str, Path]) -> StageBuilder:
        """What builds ``stage`` of ``state``'s target, given the entries of the stages before it."""
        if stage == "fetch":
            return state.write_fetch_record
        if stage == "checkpoint":
            return lambda d: state.run_checkpoint(d, self.progress, self.options.device)
        if stage == "engine":
            return lambda d: state.run_engine(built["checkpoint"], d, self.progress)
        if stage == "repository":
            return lambda d: state.run_repository(d, checkpoint=built.get("checkpoint"), engine=built.get("engine"))
        raise AssertionError(f"no runner for stage {stage!r}")

    def _export(self, report: TargetReport, fps: dict[str, StageFingerprint], info: dict[str, Any]) -> None:
        """OUT/<gpu>/: repository/ (+ engine/) copied out of the store, verified, and trtbuild-artifact.json,
        replaced atomically; raises _Corrupt (nothing replaced) when an exported file does not match."""
        with staged_dir(report.out_dir) as stage:
            for name in ("repository", "engine"):
                if name in fps:
                    problems = self.store.export(name, fps[name].key, stage / name)
                    if problems:
                        raise _Corrupt(problems)
            write_atomic(stage / "trtbuild-artifact.json", json.dumps(info, indent=2, sort_keys=True))
        report.write()
