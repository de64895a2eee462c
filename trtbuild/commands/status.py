"""`trtbuild status RECIPES... --gpu ...`: fresh / stale / missing per recipe × GPU, with reasons.

CI runs it on every change: it reads recipes and config.json files, stat-caches model digests (no
weight bytes are read when nothing changed) and never downloads or builds. `--github-matrix` prints
the targets to build as a GitHub Actions matrix; `--registry` asks the registry instead of the cache.

With `--registry`, each target says where it is (or will be) published (`ref`, the tag) and, when it is
published with this fingerprint, the manifest digest (`digest`) and the reference pinned by it (`pinned`,
`oci://host/ns/name@sha256:...`): what CI pulls (`trtbuild pull PINNED DIR`) so that what it deploys is
exactly what was built, whatever the tag points at by then.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trtbuild.errors import PlanError, RecipeError, StageError, TrtbuildError


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="fresh / stale / missing for each recipe × GPU (CI mode)")
    p.add_argument("files", nargs="+", metavar="RECIPE")
    p.add_argument("--gpu", action="append", metavar="GPU", help="GPUs to check (default: each recipe's gpus:)")
    p.add_argument("--cache-dir", metavar="DIR")
    p.add_argument("--registry", metavar="REF", help="oci://host/ns/name: fresh = published with this fingerprint")
    p.add_argument("--executor", choices=["auto", "local", "container", "fake"])
    p.add_argument("--plain-http", action="store_true")
    p.add_argument("--insecure", action="store_true")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--github-matrix", action="store_true",
                     help='print {"include": [{"recipe": ..., "gpu": ...}]} of the targets that need a build; '
                          "invalid or infeasible targets are left out and listed on stderr (exit 0, so one "
                          "bad target does not stop the others)")
    p.set_defaults(func=cmd_status)


def _row(recipe: str, gpu: str, state: str, reasons: list[str], fingerprint: str = "",
         stages: dict[str, str] | None = None, keys: dict[str, str] | None = None,
         published: dict[str, Any] | None = None) -> dict[str, Any]:
    """One recipe × GPU. ``keys``: each stage's cache key (the key compile, report.json and `cache ls` show);
    ``published`` (with --registry): ref, digest, pinned."""
    return {"recipe": recipe, "gpu": gpu, "state": state, "reasons": reasons, "fingerprint": fingerprint,
            "stages": stages or {}, "keys": keys or {}, **(published or {})}


def target_status(loaded: Any, gpu: str, store: Any, args: argparse.Namespace) -> dict[str, Any]:
    from trtbuild.fingerprint import explain
    from trtbuild.plan.planner import make_plan
    from trtbuild.targets import resolve_target

    path = str(loaded.path)
    plan = make_plan(loaded, gpu)
    key = plan.target["key"]
    if not plan.feasible:
        return _row(path, key, "infeasible", [d.format() for d in plan.errors])
    try:
        state = resolve_target(loaded, plan, store, executor_kind=args.executor, download=False)
    except (StageError, TrtbuildError) as exc:
        return _row(path, key, "unknown", [str(exc).splitlines()[0]])
    fps = state.fingerprints
    fingerprint = fps["repository"].key
    stages = {}
    reasons: list[str] = []
    for name, fp in fps.items():
        if store.get(name, fp.key) is not None:
            stages[name] = "cached"
            continue
        stages[name] = "to build"
        why = explain(state.previous_inputs(name), fp.inputs)
        reasons += [f"{name}: {r}" for r in why if not r.endswith("stage changed")]
    where: dict[str, Any] = {}
    if args.registry:
        from trtbuild.commands.common import recipe_gpus, several_targets

        where = _published(args, loaded.recipe, key, fingerprint,
                           several_targets(loaded, recipe_gpus(loaded, args.gpu) if args.gpu else [key]))
        published = where["digest"] is not None
        st = "fresh" if published else ("stale" if any(v == "cached" for v in stages.values()) or reasons else "missing")
        if published:
            reasons = []
        elif not reasons:
            reasons = ["not published with this fingerprint"]
    elif all(v == "cached" for v in stages.values()):
        st = "fresh"
    else:
        st = "missing" if all(r.endswith("never built") for r in reasons) else "stale"
    return _row(path, key, st, reasons, fingerprint, stages, {name: fp.key for name, fp in fps.items()}, where)


def _published(args: argparse.Namespace, recipe: Any, gpu: str, fingerprint: str, several: bool) -> dict[str, Any]:
    """{ref, digest, pinned}: where the target is published, and the manifest digest of ``fp-<fingerprint>``
    there (None when this fingerprint is not published)."""
    from trtbuild.commands.compile import publish_ref
    from trtbuild.registry.publish import client_for, published_digest
    from trtbuild.registry.reference import parse_ref

    ref = parse_ref(publish_ref(args.registry, recipe, gpu, fingerprint, several))
    client = client_for(ref, plain_http=args.plain_http, insecure=args.insecure)
    digest = published_digest(ref, fingerprint=fingerprint, client=client)
    pinned = f"oci://{ref.registry}/{ref.repository}@{digest}" if digest else None
    return {"ref": str(ref), "digest": digest, "pinned": pinned}


def cmd_status(args: argparse.Namespace) -> int:
    """0 ok · 2 usage (a missing recipe file, an unknown --gpu, a recipe without gpus: and no --gpu) · 3 a recipe
    is invalid or a target infeasible (with --github-matrix: left out of the matrix, exit 0) · 5 the registry
    (--registry) could not be asked."""
    from trtbuild.cache.store import Store
    from trtbuild.catalog.gpus import get_gpu
    from trtbuild.commands.common import recipe_gpus
    from trtbuild.recipe.loader import load_recipe

    for name in args.gpu or []:
        get_gpu(name)  # an unknown --gpu is a usage error (exit 2), the same in every command
    store = Store.open(args.cache_dir)
    rows: list[dict[str, Any]] = []
    for f in args.files:
        try:
            loaded = load_recipe(f)  # a missing file is a usage error (exit 2), as in every command
        except RecipeError as exc:
            rows.append(_row(f, "-", "invalid", [d.format() for d in exc.diagnostics]))
            continue
        gpus = recipe_gpus(loaded, args.gpu)
        for gpu in gpus:
            try:
                rows.append(target_status(loaded, gpu, store, args))
            except PlanError as exc:
                rows.append(_row(f, gpu, "infeasible", [str(exc)]))
    bad = [r for r in rows if r["state"] in ("invalid", "infeasible")]
    if args.github_matrix:
        # "unknown" (e.g. no lockfile pins the model or the toolchain) cannot be proven fresh: build it.
        include = [{"recipe": r["recipe"], "gpu": r["gpu"],
                    **({"fingerprint": r["fingerprint"], "ref": r["ref"]} if "ref" in r else {})}
                   for r in rows if r["state"] in ("stale", "missing", "unknown") and r["gpu"] != "-"]
        print(json.dumps({"include": include}))
        for r in bad:
            print(f"excluded ({r['state']}): {r['recipe']} --gpu {r['gpu']}: "
                  + "; ".join(r["reasons"][:3]), file=sys.stderr)
        return 0
    if args.json:
        json.dump({"targets": rows}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in rows:
            print(f"{r['state']:<10} {Path(r['recipe']).name} --gpu {r['gpu']}"
                  + (f"  {r['fingerprint'][:12]}" if r["fingerprint"] else "")
                  + (f"  {r['pinned']}" if r.get("pinned") else ""))
            for why in r["reasons"]:
                print(f"           {why}")
    return 3 if bad else 0
