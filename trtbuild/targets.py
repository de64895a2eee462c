"""Everything a target (recipe × GPU) needs to fingerprint and run its stages.

``resolve_target`` gathers the inputs of the fingerprints cheaply — model file digests through the
stat cache, the toolchain's identity, the calibration data digest, the template digest — so that
``compile`` and ``status`` agree on every key without building anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtbuild import __version__
from trtbuild.errors import StageError
from trtbuild.fingerprint import (
    FingerprintInputs,
    StageFingerprint,
    fingerprint_stages,
    package_versions,
    template_digest,
)
from trtbuild.fsutil import write_atomic
from trtbuild.lockfile import Lock, check_files, default_lock_path, pinned_source, read_lock
from trtbuild.plan.planner import BuildPlan
from trtbuild.plan.sources import cached_hf_file, parse_hf_source, resolve_local
from trtbuild.progress import Progress
from trtbuild.recipe.loader import LoadedRecipe

CHECKPOINT_PACKAGES = ("nvidia-modelopt", "torch", "transformers", "safetensors")


def model_source(loaded: LoadedRecipe, plan: BuildPlan) -> str:
    src = plan.settings.model.source
    return src if src.startswith("hf://") else str(resolve_local(loaded.base_dir, src).resolve())


def calibration_source(loaded: LoadedRecipe, plan: BuildPlan) -> str:
    ds = plan.settings.quantization.calibration.dataset
    if ds == "builtin" or ds.startswith("hf://"):
        return ds
    return str(resolve_local(loaded.base_dir, ds).resolve())


def _calibration_digest(source: str, stat_cache: Any) -> str:
    if source == "builtin":
        from trtbuild.demo.corpus import corpus_text

        return hashlib.sha256(corpus_text().encode()).hexdigest()
    if source.startswith("hf://"):
        return source
    p = Path(source)
    if not p.is_file():
        raise StageError("checkpoint", f"quantization.calibration.dataset: {p}: no such file")
    return str(stat_cache.digest(p))


def checkpoint_inputs_for(loaded: LoadedRecipe, plan: BuildPlan, model_dir: Path, files: tuple[Any, ...]) -> Any:
    """``CheckpointInputs`` of ``plan`` for a fetched model (``files``: its FileDigests)."""
    from trtbuild.stages.checkpoint import CheckpointInputs

    s = plan.settings
    return CheckpointInputs.from_recipe(
        model_dir=model_dir, architecture=plan.model["architecture"], decoder_type=plan.model["decoder_type"],
        dtype=s.dtype, model=s.model, quantization=s.quantization, parallelism=s.parallelism,
        calib_dataset=calibration_source(loaded, plan), input_files=files)


@dataclass
class TargetState:
    loaded: LoadedRecipe
    plan: BuildPlan
    store: Any
    model_path: Path | None
    files: tuple[Any, ...]                 # FileDigest(path, sha256, size) of every model file used
    revision: str | None
    fingerprints: dict[str, StageFingerprint]
    toolchain: dict[str, str] = field(default_factory=dict)
    executor: Any = None
    toolchain_info: Any = None

    # -- history -----------------------------------------------------------------------------
    def previous_inputs(self, stage: str) -> dict[str, Any] | None:
        """Inputs of the newest stored entry of this stage for this recipe and GPU (for 'why')."""
        best = None
        for e in self.store.entries():
            meta = e.manifest.meta or {}
            if e.stage != stage or meta.get("recipe") != self.loaded.recipe.name:
                continue
            if stage in ("engine", "repository") and meta.get("gpu") != self.plan.target["key"]:
                continue
            if best is None or e.manifest.created > best.manifest.created:
                best = e
        return (best.manifest.meta or {}).get("inputs") if best else None

    # -- stage bodies (each writes into the empty directory it is given) ---------------------
    def write_fetch_record(self, out: Path) -> dict[str, Any]:
        """fetch.json: what the model is (source, revision, file digests), not where it is (a build fact)."""
        record = {"source": self.plan.settings.model.source, "revision": self.revision,
                  "files": [f._asdict() for f in self.files]}
        write_atomic(out / "fetch.json", json.dumps(record, indent=2))
        return {"model_path": str(self.model_path)}

    def checkpoint_inputs(self) -> Any:
        """The checkpoint stage's ``CheckpointInputs`` for this target."""
        assert self.model_path is not None, "the model must be fetched before the checkpoint stage"
        return checkpoint_inputs_for(self.loaded, self.plan, self.model_path, tuple(self.files))

    def run_checkpoint(self, out: Path, progress: Progress, device: str | None) -> dict[str, Any]:
        """Run the checkpoint stage in a worker process (torch and the model never enter this one).

        Returns the build facts, with the worker's peak RSS in bytes; raises the worker's error
        (CheckpointError: exit 4)."""
        from trtbuild.stages.checkpoint_worker import run_checkpoint_in_child

        result = run_checkpoint_in_child(self.checkpoint_inputs(), out, progress=progress, device=device)
        return {**result.facts, "peak_rss_bytes": result.peak_rss_bytes}

    def run_engine(self, checkpoint: Path, out: Path, progress: Progress) -> dict[str, Any]:
        """Build the engine into ``out``; the build facts (command line, log, duration, GPU name)."""
        from trtbuild.stages.engine import run_engine_stage

        if self.toolchain_info is None:
            self.toolchain_info = self.executor.probe()
        key = self.fingerprints["engine"].key
        log = self.store.cache_dir / "logs" / f"engine-{key}.trtllm-build.log"  # outside the entry
        manifest = run_engine_stage(self.plan, checkpoint, out, executor=self.executor,
                                    toolchain_info=self.toolchain_info, progress=progress,
                                    cache_root=self.store.cache_dir, log_path=log)
        return manifest.build_facts()

    def run_repository(self, out: Path, *, checkpoint: Path | None, engine: Path | None) -> None:
        """The target's backend renders, lints and writes its repository (trtbuild.backends)."""
        from trtbuild.backends import get_backend

        get_backend(self.plan.backend).render(self.plan, out_dir=out, model_dir=self.model_path,
                                              checkpoint=checkpoint, engine=engine)

    def artifact_json(self, fingerprint: str) -> dict[str, Any]:
        return {
            "name": self.plan.recipe["name"], "fingerprint": fingerprint, "gpu": self.plan.target["key"],
            "gpu_name": self.plan.target["name"], "sm": self.plan.target["sm"],
            "reference": self.plan.target["reference"], "backend": self.plan.backend, "recipe_digest": self.loaded.text_sha256,
            "model": {"source": self.plan.settings.model.source, "revision": self.revision},
            "versions": {"trtbuild": __version__, **self.toolchain},
            "stages": {name: fp.key for name, fp in self.fingerprints.items()},
        }


class NotResolvable(StageError):
    """A key cannot be computed without downloading or probing (status reports it as unknown)."""

    def __init__(self, message: str):
        super().__init__("fetch", message)


def _digest_dir(path: Path, m: Any, stat_cache: Any) -> tuple[Any, ...]:
    from trtbuild.stages.fetch import FileDigest, model_files

    files = model_files(path, allow_pickle=m.allow_pickle, trust_remote_code=m.trust_remote_code)
    return tuple(FileDigest(str(p.relative_to(path)), stat_cache.digest(p), p.stat().st_size) for p in files)


def model_digests(loaded: LoadedRecipe, plan: BuildPlan, stat_cache: Any, *, lock: Lock | None = None,
                  download: bool = True) -> tuple[Path | None, tuple[Any, ...], str | None]:
    """(model dir, file digests, revision). Local files are hashed through the stat cache; an hf://
    source is fetched (``download``), or else taken from the lock or the local HF cache."""
    from trtbuild.stages.fetch import FileDigest, fetch_model

    m = plan.settings.model
    source = pinned_source(model_source(loaded, plan), lock)
    if source.startswith("hf://"):
        if not download:
            if lock is not None and lock.model.files and lock.model.revision:
                files = tuple(FileDigest(k, v, 0) for k, v in sorted(lock.model.files.items()))
                return None, files, lock.model.revision
            repo, rev = parse_hf_source(source)
            cfg = cached_hf_file(repo, rev, "config.json")
            if cfg is None:
                raise NotResolvable(f"{source} is neither locked nor in the local HF cache (run `trtbuild lock`)")
            snap = cfg.parent
            return snap, _digest_dir(snap, m, stat_cache), snap.name
        fetched = fetch_model(source, allow_pickle=m.allow_pickle, trust_remote_code=m.trust_remote_code)
        files = tuple(fetched.files)
        check_files(lock, {f.path: f.sha256 for f in files}, source)
        return Path(fetched.path), files, fetched.revision
    path = Path(source)
    if not path.is_dir():
        raise StageError("fetch", f"model.source: {path} is not a directory")
    files = _digest_dir(path, m, stat_cache)
    check_files(lock, {f.path: f.sha256 for f in files}, str(path))
    return path, files, None


_IDENTITY_CACHE: dict[tuple[str, str | None], tuple[Any, dict[str, str]]] = {}


def toolchain_identity(loaded: LoadedRecipe, plan: BuildPlan, executor_kind: str | None,
                       lockfile: Path | None) -> tuple[Any, Any, dict[str, str]]:
    """(executor, toolchain info or None, identity dict for the engine key). Probes once per process."""
    if plan.stage("engine") is None:
        return None, None, {}
    from trtbuild.commands.engine import make_executor

    kind = executor_kind or plan.settings.toolchain.executor
    executor = make_executor(kind, plan, recipe_file=loaded.path, lockfile=lockfile)
    if executor.kind == "container":
        return executor, None, {"executor": "container", "image": executor.image}
    cache_key = (executor.kind, None)
    if cache_key not in _IDENTITY_CACHE or executor.kind == "fake":
        info = executor.probe()
        ident = {"executor": info.executor, "tensorrt_llm": info.trtllm_version or "absent",
                 "tensorrt": info.tensorrt_version or "absent"}
        _IDENTITY_CACHE[cache_key] = (info, ident)
    info, ident = _IDENTITY_CACHE[cache_key]
    return executor, info, dict(ident)


def _locked_toolchain_identity(loaded: LoadedRecipe, plan: BuildPlan, executor_kind: str | None, lock_path: Path,
                               lock: Lock | None, download: bool) -> tuple[Any, Any, dict[str, str]]:
    """The toolchain identity, squared with the lockfile's. ``status`` (``download=False``) on a machine
    without TensorRT-LLM or a container runtime keys the engine stage with the locked identity; a build
    refuses a toolchain that differs from the locked one (the keys `status` reported would not match)."""
    from trtbuild.errors import ToolchainError

    locked = dict(lock.toolchain) if lock is not None and lock.toolchain else {}
    try:
        executor, info, toolchain = toolchain_identity(loaded, plan, executor_kind, lock_path)
    except ToolchainError:
        if download or not locked or plan.stage("engine") is None:
            raise
        return None, None, locked
    if download and locked and toolchain and toolchain != locked:
        def show(d: dict[str, str]) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(d.items()))
        raise ToolchainError(f"the toolchain here ({show(toolchain)}) differs from the lockfile {lock_path} "
                             f"({show(locked)}); use the locked toolchain, or run `trtbuild lock` again if the "
                             "change is intended")
    return executor, info, toolchain


def resolve_target(loaded: LoadedRecipe, plan: BuildPlan, store: Any, *, executor_kind: str | None = None,
                   lockfile: Path | None = None, progress: Progress | None = None,
                   download: bool = True) -> TargetState:
    """Everything needed to key (and run) the target's stages. ``download=False`` (status) never fetches."""
    stat_cache = store.stat_cache()
    lock_path = Path(lockfile) if lockfile else default_lock_path(loaded.path)
    if lockfile and not lock_path.is_file():
        raise StageError("fetch", f"--lockfile {lock_path}: no such file")
    lock = read_lock(lock_path)
    executor, info, toolchain = _locked_toolchain_identity(loaded, plan, executor_kind, lock_path, lock, download)
    path, files, revision = model_digests(loaded, plan, stat_cache, lock=lock, download=download)
    calib = None
    ck = plan.stage("checkpoint")
    if ck is not None and "calibration" in ck.params:
        calib = _calibration_digest(calibration_source(loaded, plan), stat_cache)
        if lock is not None and lock.calibration is not None and lock.calibration.sha256 != calib:
            raise StageError("checkpoint", f"calibration data {lock.calibration.source} differs from the lockfile "
                                           f"{lock_path}; run `trtbuild lock` again if the change is intended")
    fin = FingerprintInputs(
        model_files={f.path: f.sha256 for f in files}, revision=revision, calibration_digest=calib,
        toolchain=toolchain, templates=template_digest(),
        checkpoint_versions=package_versions(*CHECKPOINT_PACKAGES) if plan.stage("checkpoint") else {})
    fps = fingerprint_stages(plan, fin)
    plan = plan.with_keys({name: fp.key for name, fp in fps.items()})  # one key per stage, everywhere
    state = TargetState(loaded, plan, store, path, files, revision, fps, toolchain, executor, info)
    if executor is not None and info is None and executor.kind == "container":
        state.toolchain_info = None  # probed lazily by the engine stage's caller when it must build
    return state
