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

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args
from trtbuild.errors import PlanError, RecipeError, StageError, TrtbuildError


def _row(recipe: str, gpu: str, state: str, reasons: list[str], fingerprint: str = "",
         stages: dict[str, str] | None = None, keys: dict[str, str] | None = None,
         published: dict[str, Any] | None = None) -> dict[str, Any]:
    """One recipe × GPU. ``keys``: each stage's cache key (the key compile, report.json and `cache ls` show);
    ``published`` (with --registry): ref, digest, pinned."""
    return {"recipe": recipe, "gpu": gpu, "state": state, "reasons": reasons, "fingerprint": fingerprint,
            "stages": stages or {}, "keys": keys or {}, **(published or {})}


def target_status(loaded: Any, gpu: str, store: Any, *, executor: str | None = None, registry: str | None = None,
                  gpus: Sequence[str] | None = None, plain_http: bool = False, insecure: bool = False) -> dict[str, Any]:
    """One recipe × GPU: each stage cached / to build and why; with ``registry`` (oci://host/ns/name), whether
    this fingerprint is published there (``gpus``: the run's --gpu list, which decides the tag's suffix)."""
    from trtbuild.fingerprint import explain
    from trtbuild.plan.planner import make_plan
    from trtbuild.targets import resolve_target

    path = str(loaded.path)
    plan = make_plan(loaded, gpu)
    key = plan.target["key"]
    if not plan.feasible:
        return _row(path, key, "infeasible", [d.format() for d in plan.errors])
    try:
        state = resolve_target(loaded, plan, store, executor_kind=executor, download=False)
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
    if registry:
        from trtbuild.commands.common import recipe_gpus, several_targets

        several = several_targets(loaded, recipe_gpus(loaded, gpus) if gpus else [key])
        where = _published(registry, loaded.recipe, key, fingerprint, several, plain_http=plain_http,
                           insecure=insecure)
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


def _published(registry: str, recipe: Any, gpu: str, fingerprint: str, several: bool, *, plain_http: bool,
               insecure: bool) -> dict[str, Any]:
    """{ref, digest, pinned}: where the target is published, and the manifest digest of ``fp-<fingerprint>``
    there (None when this fingerprint is not published)."""
    from trtbuild.commands.compile import publish_ref
    from trtbuild.registry.publish import client_for, published_digest
    from trtbuild.registry.reference import parse_ref

    ref = parse_ref(publish_ref(registry, recipe, gpu, fingerprint, several))
    client = client_for(ref, plain_http=plain_http, insecure=insecure)
    digest = published_digest(ref, fingerprint=fingerprint, client=client)
    pinned = f"oci://{ref.registry}/{ref.repository}@{digest}" if digest else None
    return {"ref": str(ref), "digest": digest, "pinned": pinned}


def cmd_status(args: Args) -> int:
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
                rows.append(target_status(loaded, gpu, store, executor=args.executor, registry=args.registry,
                                          gpus=args.gpu, plain_http=args.plain_http, insecure=args.insecure))
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
