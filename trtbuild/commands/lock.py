"""`trtbuild lock FILE`: write FILE's lockfile (model revision + digests, calibration, toolchain)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("lock", help="pin the model revision, file digests, calibration data and toolchain")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--gpu", action="append", metavar="GPU", help="targets whose toolchain to record (default: all)")
    p.add_argument("--out", metavar="LOCK", help="lockfile path (default: FILE's stem + .lock.json)")
    p.add_argument("--cache-dir", metavar="DIR")
    p.add_argument("--executor", choices=["auto", "local", "container", "fake"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lock)


def cmd_lock(args: argparse.Namespace) -> int:
    from trtbuild.cache.store import Store
    from trtbuild.lockfile import default_lock_path, lock_json_for, read_lock, write_lock
    from trtbuild.plan.planner import make_plan
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.targets import _calibration_digest, calibration_source, toolchain_identity

    loaded = load_recipe(args.file)
    out = Path(args.out) if args.out else default_lock_path(loaded.path)
    previous = read_lock(out) if out.is_file() else None
    store = Store.open(args.cache_dir)
    gpus = list(args.gpu or sorted(loaded.targets) or ["cpu"])
    plans = [make_plan(loaded, g) for g in gpus]
    base = plans[0]
    # Resolve the model afresh (the branch may have moved): the previous lock is not honoured here.
    file_digests, revision = _model_files(loaded, base, store)
    calibration = None
    for plan in plans:
        ck = plan.stage("checkpoint")
        if ck is not None and "calibration" in ck.params:
            src = calibration_source(loaded, plan)
            calibration = (plan.settings.quantization.calibration.dataset, _calibration_digest(src, store.stat_cache()))
            break
    toolchain: dict[str, str] = {}
    images: dict[str, str] = dict(previous.images) if previous else {}
    for plan in plans:
        if plan.stage("engine") is None or not plan.feasible:
            continue
        _, _, ident = toolchain_identity(loaded, plan, args.executor, out if out.is_file() else None)
        toolchain.update(ident)
        image = ident.get("image")
        if image and "@" in image:
            name_tag, digest = image.rsplit("@", 1)
            images[name_tag] = digest
    lock = lock_json_for(loaded, revision, file_digests, calibration, toolchain, images)
    write_lock(out, lock)
    if args.json:
        json.dump({"lockfile": str(out), **lock.model_dump(mode="json")}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        rev = f" @ {revision}" if revision else ""
        print(f"lock: {out} — {len(file_digests)} model files{rev}"
              + (f", calibration {calibration[1][:12]}" if calibration else "")
              + (f", toolchain {', '.join(f'{k}={v}' for k, v in sorted(toolchain.items()))}" if toolchain else ""))
    return 0


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
