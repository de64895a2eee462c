"""``trtbuild engine FILE --gpu GPU --checkpoint DIR --out DIR``: build one target's TensorRT-LLM engine.

The executor comes from ``--executor`` or the recipe's ``toolchain.executor`` (``auto``: trtllm-build here,
else the recipe's container image). ``--dry-run`` prints the exact command lines and runs nothing.
``--executor fake`` (tests and demos) needs ``TRTBUILD_ALLOW_FAKE_TOOLCHAIN=1`` and marks all output FAKE.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args

ALLOW_FAKE_ENV = "TRTBUILD_ALLOW_FAKE_TOOLCHAIN"


def make_executor(kind: str, plan: Any, *, recipe_file: str | Path, lockfile: str | Path | None = None,
                  dry_run: bool = False) -> Any:
    """The executor for ``kind`` (auto|local|container|fake) and ``plan``'s toolchain settings."""
    from trtbuild.errors import ToolchainError, UsageError
    from trtbuild.toolchain.executors import (
        ContainerExecutor,
        LocalExecutor,
        choose_executor_kind,
        find_container_runtime,
        load_image_lock,
        require_pinned,
    )

    tc = plan.settings.toolchain
    if kind == "fake":
        if os.environ.get(ALLOW_FAKE_ENV) != "1":
            raise UsageError(f"--executor fake writes a FAKE engine (tests and demos only); set {ALLOW_FAKE_ENV}=1 "
                             "to allow it")
        from trtbuild.toolchain.fake import FakeExecutor

        return FakeExecutor(gpu_name=plan.target["name"], sm=plan.target["sm"],
                            gpu_count=plan.stage("engine").params["workers"])
    kind = choose_executor_kind(kind, image=tc.image)
    if kind == "local":
        return LocalExecutor()
    from trtbuild.lockfile import default_lock_path

    lock = Path(lockfile) if lockfile else default_lock_path(Path(recipe_file).resolve())
    image = require_pinned(tc.image, load_image_lock(lock))
    try:
        runtime = find_container_runtime(tc.container_runtime)
    except ToolchainError as exc:
        if not dry_run:
            raise
        runtime = tc.container_runtime or "docker"
        print(f"warning: {str(exc).removeprefix('engine: ')}", file=sys.stderr)
    return ContainerExecutor(image, runtime)


def _dry_run(plan: Any, executor: Any, args: Args, timing_cache: Path | None) -> int:
    from trtbuild.stages.engine import default_log_path
    from trtbuild.stages.engine_command import build_command
    from trtbuild.toolchain.executors import BuildJob

    ckpt, out = Path(args.checkpoint).absolute(), Path(args.out).absolute()
    ck, st, tc = executor.tool_paths(ckpt, out, timing_cache)
    argv = build_command(plan, ck, st, timing_cache=tc)
    job = BuildJob(argv=tuple(argv), checkpoint_dir=ckpt, output_dir=out, timing_cache=timing_cache,
                   log_path=default_log_path(out), work_dir=out.parent, timeout_s=None, job_id="dry-run")
    lines = executor.command_lines(job)
    fake = executor.kind == "fake"
    note = ("the build writes into a staging directory beside --out and renames it into place when the engine "
            "is validated")
    if timing_cache is not None and executor.kind != "container":
        note += (f"; trtllm-build runs in a scratch directory holding a copy of the timing cache {timing_cache} "
                 f"(copied back after a successful build)")
    if args.json:
        json.dump({"dry_run": True, "fake": fake, "executor": executor.kind, "commands": lines,
                   "display": [shlex.join(c) for c in lines], "note": note}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        if fake:
            print("# FAKE toolchain: writes a fake engine (tests and demos only)")
        for c in lines:
            print(shlex.join(c))
        print(f"# {note}", file=sys.stderr)
    return 0


def cmd_engine(args: Args) -> int:
    from trtbuild.cache.store import resolve_cache_dir
    from trtbuild.errors import UsageError
    from trtbuild.plan.planner import make_plan, require_feasible
    from trtbuild.progress import Progress
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.stages.engine import run_engine_stage
    from trtbuild.stages.engine_checks import check_checkpoint
    from trtbuild.stages.engine_command import timing_cache_path

    plan = make_plan(load_recipe(args.file), args.gpu)
    if plan.stage("engine") is None:
        raise UsageError(f"{plan.target['name']} is the CPU reference target: it serves the HF checkpoint and has "
                         "no engine to build")
    require_feasible(plan)
    kind = args.executor or plan.settings.toolchain.executor
    executor = make_executor(kind, plan, recipe_file=args.file, lockfile=args.lockfile, dry_run=args.dry_run)
    cache_root = resolve_cache_dir(args.cache_dir)
    if args.dry_run:
        return _dry_run(plan, executor, args, timing_cache_path(cache_root, plan))
    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_dir():
        raise UsageError(f"--checkpoint {checkpoint}: not a directory")
    check_checkpoint(checkpoint, plan)  # before probing (a container probe may pull the image)
    info = executor.probe()
    progress = Progress(enabled=not args.json and not args.quiet)
    manifest = run_engine_stage(plan, checkpoint, Path(args.out), executor=executor, toolchain_info=info,
                                progress=progress, cache_root=cache_root)
    if args.json:
        json.dump({"out": str(Path(args.out).absolute()), **manifest.to_json(), "build": manifest.build_facts()},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        label = "FAKE engine (not servable)" if manifest.fake else "engine"
        print(f"{label}: {Path(args.out)}  ({manifest.target}, SM {manifest.gpu_sm}, TensorRT-LLM "
              f"{manifest.trtllm_version}, tp {manifest.tp} x pp {manifest.pp}, {manifest.wall_s:.1f}s)")
    return 0
