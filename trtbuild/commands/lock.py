"""`trtbuild lock FILE`: write FILE's lockfile (model revision + digests, calibration, toolchain).

The lockfile is `<recipe stem>.lock.json` beside the recipe, for every command (compile, status, engine).
The toolchain is recorded where it can be known: a recipe's container image (a tag-only `toolchain.image`
is resolved to its digest through the registry), or the TensorRT-LLM found here. Run where neither is
known, the model is locked and the toolchain kept from the previous lock (and `lock` says so), so
`status` on a CPU-only CI runner can key every stage from the lock.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args


def cmd_lock(args: Args) -> int:
    from trtbuild.cache.store import Store
    from trtbuild.commands.common import recipe_gpus
    from trtbuild.lockfile import default_lock_path, lock_json_for, read_lock, write_lock
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.targets import _calibration_digest, calibration_source

    loaded = load_recipe(args.file)
    out = Path(args.out) if args.out else default_lock_path(loaded.path)
    previous = read_lock(out) if out.is_file() else None
    store = Store.open(args.cache_dir)
    gpus = recipe_gpus(loaded, args.gpu) if (args.gpu or loaded.gpus) else ["cpu"]  # cpu: the model alone
    plans = [make_plan(loaded, g) for g in gpus]
    base = plans[0]
    # Resolve the model afresh (the branch may have moved): the previous lock is not honoured here.
    from trtbuild.progress import Progress

    with Progress(enabled=not args.quiet and not args.json).waiting(f"lock {base.settings.model.source}"):
        file_digests, revision = _model_files(loaded, base, store)
    calibration = None
    for plan in plans:
        ck = plan.stage("checkpoint")
        if ck is not None and "calibration" in ck.params:
            src = calibration_source(loaded, plan)
            calibration = (plan.settings.quantization.calibration.dataset, _calibration_digest(src, store.stat_cache()))
            break
    images: dict[str, str] = dict(previous.images) if previous else {}
    toolchain, note = _toolchain(loaded, plans, args, images, previous)
    lock = lock_json_for(loaded, revision, file_digests, calibration, toolchain, images)
    write_lock(out, lock)
    if args.json:
        json.dump({"lockfile": str(out), **lock.model_dump(mode="json"), "note": note}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        rev = f" @ {revision}" if revision else ""
        print(f"lock: {out} — {len(file_digests)} model files{rev}"
              + (f", calibration {calibration[1][:12]}" if calibration else "")
              + (f", toolchain {', '.join(f'{k}={v}' for k, v in sorted(toolchain.items()))}" if toolchain else ""))
        if note:
            print(f"note: {note}", file=sys.stderr)
    return 0


def _toolchain(loaded: Any, plans: list[Any], args: Args, images: dict[str, str],
               previous: Any) -> tuple[dict[str, str], str]:
    """(toolchain identity, note). Container images are pinned through the registry; a local TensorRT-LLM
    is probed. Nothing known here: the previous lock's toolchain is kept and the note says so."""
    from trtbuild.errors import ToolchainError
    from trtbuild.targets import toolchain_identity
    from trtbuild.toolchain.executors import split_image

    toolchain: dict[str, str] = {}
    missing: list[str] = []
    for plan in plans:
        if plan.stage("engine") is None or not plan.feasible:
            continue
        tc = plan.settings.toolchain
        kind = args.executor or tc.executor
        if tc.image and kind in ("container", "auto"):
            name, tag, digest = split_image(tc.image)
            if digest is None and tag:
                images[f"{name}:{tag}"] = resolve_image_digest(tc.image, plain_http=args.plain_http,
                                                               insecure=args.insecure)
                digest = images[f"{name}:{tag}"]
            if kind == "container" or not shutil.which("trtllm-build"):
                # The container's identity is its pinned image: known without pulling or running it.
                toolchain.update({"executor": "container", "image": f"{name}:{tag}@{digest}" if tag else
                                  f"{name}@{digest}"})
                continue
        try:
            _, _, ident = toolchain_identity(loaded, plan, args.executor, None)
        except ToolchainError as exc:
            missing.append(f"{plan.target['key']} ({str(exc).removeprefix('engine: ').split(':')[0]})")
            continue
        toolchain.update(ident)
    note = ""
    if missing:
        kept = dict(previous.toolchain) if previous and previous.toolchain else {}
        toolchain = {**kept, **toolchain}
        note = (f"toolchain not recorded for {', '.join(missing)}: no TensorRT-LLM here and no container image in "
                "the recipe" + ("; kept the previous lock's toolchain" if kept else "")
                + ". Run `trtbuild lock` where trtllm-build runs, or set toolchain.image, so that `status` can "
                "key the engine stage without it")
    return toolchain, note


def resolve_image_digest(image: str, *, plain_http: bool = False, insecure: bool = False) -> str:
    """The digest a ``registry/name:tag`` image resolves to now (one HEAD request, no pull)."""
    from trtbuild.errors import PublishError, ToolchainError

    try:
        from trtbuild.registry.publish import client_for
        from trtbuild.registry.reference import parse_ref
    except ImportError as exc:  # requests missing
        raise ToolchainError(f"resolving {image} needs `pip install 'trtbuild[publish]'` ({exc})") from None
    ref = parse_ref("oci://" + image)
    try:
        digest = client_for(ref, plain_http=plain_http, insecure=insecure).manifest_digest(ref.repository,
                                                                                            ref.reference)
    except PublishError as exc:
        raise ToolchainError(f"toolchain.image {image}: cannot resolve its digest: {exc}") from None
    if digest is None:
        raise ToolchainError(f"toolchain.image {image}: no such tag in {ref.registry}")
    return digest


def _model_files(loaded: Any, plan: Any, store: Any) -> tuple[dict[str, str], str | None]:
    """{file: sha256} and the resolved revision. hf:// sources: Hub metadata (LFS sha256), no weight
    download; offline, the local HF cache snapshot. Local sources: digests through the stat cache."""
    import os

    from trtbuild.hub import hub_file_digests
    from trtbuild.plan.sources import parse_hf_source
    from trtbuild.targets import model_digests, model_source

    m = plan.settings.model
    source = model_source(loaded, plan)
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if source.startswith("hf://") and not offline:
        repo, rev = parse_hf_source(source)
        commit, digests = hub_file_digests(repo, rev, allow_pickle=m.allow_pickle, trust_remote_code=m.trust_remote_code)
        return digests, commit
    _, files, revision = model_digests(loaded, plan, store.stat_cache(), lock=None, download=False)
    return {f.path: f.sha256 for f in files}, revision
