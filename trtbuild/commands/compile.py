"""`trtbuild compile FILE --gpu GPU [--gpu ...] [--out DIR] [--publish REF]`: the main command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args
from trtbuild.errors import UsageError


def publish_ref(template: str, recipe: Any, gpu: str, fingerprint: str, several: bool) -> str:
    """The OCI reference for one target: fill {name}/{gpu}/{fingerprint}; default tag from the recipe."""
    ref = template or (recipe.publish.registry or "")
    if not ref:
        raise UsageError("--publish needs a reference (oci://host/ns/name[:tag]) or the recipe's publish.registry")
    fields = {"name": recipe.name, "gpu": gpu, "fingerprint": fingerprint[:16]}
    tail = ref.rsplit("/", 1)[-1]
    if ":" not in tail and "@" not in tail:
        ref = f"{ref}:{recipe.publish.tag}"
    elif several and "{gpu}" not in ref:
        ref = f"{ref}-{{gpu}}"
    return ref.format(**fields)


def cmd_compile(args: Args) -> int:
    from trtbuild.build import Builder, BuildOptions
    from trtbuild.cache.store import Store
    from trtbuild.commands.common import recipe_gpus, several_targets
    from trtbuild.plan.planner import make_plan, require_feasible
    from trtbuild.progress import Progress
    from trtbuild.recipe.loader import load_recipe
    from trtbuild.targets import resolve_target

    loaded = load_recipe(args.file)
    gpus = recipe_gpus(loaded, args.gpu)
    several = several_targets(loaded, gpus)
    plans = [make_plan(loaded, g) for g in gpus]
    for plan in plans:  # every target is checked before any GPU (or CPU) time is spent
        require_feasible(plan)
    lockfile = Path(args.lockfile) if args.lockfile else None
    require_toolchains(loaded, plans, args.executor, lockfile, args.file)
    out = Path(args.out or Path("build") / loaded.recipe.name).absolute()
    store = Store.open(args.cache_dir)
    progress = Progress(enabled=not args.quiet and not args.json)
    options = BuildOptions(out_dir=out, executor=args.executor, lockfile=lockfile,
                           device=None if args.device == "auto" else args.device)
    builder = Builder(loaded, store, options, progress=progress)
    publishing = args.publish is not None
    reports: list[Any] = []
    skipped: list[dict[str, str]] = []
    for plan in plans:
        gpu = plan.target["key"]
        if publishing and args.skip_published:
            state = resolve_target(loaded, plan, store, executor_kind=args.executor, lockfile=lockfile)
            fp = state.fingerprints["repository"].key
            ref = publish_ref(args.publish, loaded.recipe, gpu, fp, several)
            digest = _already_published(ref, fp, args)
            if digest:
                pinned = _pinned(ref, digest)
                progress.log(f"{gpu}: fingerprint {fp[:12]} already published at {ref}; skipped ({pinned})")
                skipped.append({"gpu": gpu, "fingerprint": fp, "ref": ref, "digest": digest, "pinned": pinned})
                continue
        report = builder.build_target(plan.target["key"])
        if publishing:
            ref = publish_ref(args.publish, loaded.recipe, gpu, report.fingerprint, several)
            publication = _publish(report.out_dir, ref, loaded.recipe, store, args, progress)
            report.publications.append(publication)
            report.published.append(publication["pinned"])
            report.write()
        reports.append(report)
    summary = {"recipe": loaded.recipe.name, "out_dir": str(out), "targets": [r.to_json() for r in reports],
               "skipped": skipped}
    out.mkdir(parents=True, exist_ok=True)
    from trtbuild.fsutil import write_atomic

    write_atomic(out / "report.json", json.dumps(summary, indent=2, default=str))
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        print(render_report(reports, skipped, out))
    return 0


def require_toolchains(loaded: Any, plans: list[Any], executor: str | None, lockfile: Path | None,
                       recipe_file: str) -> None:
    """Before any work: every engine target must have a TensorRT-LLM toolchain here (local trtllm-build or a
    container runtime with the recipe's image). Otherwise stop and say how to proceed."""
    from trtbuild.errors import ToolchainError
    from trtbuild.targets import toolchain_identity

    for plan in plans:
        if plan.stage("engine") is None:
            continue
        try:
            toolchain_identity(loaded, plan, executor, lockfile)
        except ToolchainError as exc:
            gpu = plan.target["key"]
            message = str(exc).removeprefix("engine: ")
            others = [p.target["key"] for p in plans if p.stage("engine") is None]
            if others:
                hint = (f"to build only what needs no TensorRT-LLM here: trtbuild compile {recipe_file} "
                        + " ".join(f"--gpu {g}" for g in others))
            else:
                hint = (f"to try the recipe without a GPU, build the CPU reference target: trtbuild compile "
                        f"{recipe_file} --gpu cpu")
            raise ToolchainError(f"{gpu} needs TensorRT-LLM to build its engine, and it is not available here: "
                                 f"{message}\n  nothing was built; {hint}") from None


def _pinned(ref: str, digest: str) -> str:
    from trtbuild.registry.reference import parse_ref

    r = parse_ref(ref)
    return f"oci://{r.registry}/{r.repository}@{digest}"


def _already_published(ref: str, fingerprint: str, args: Args) -> str | None:
    """The manifest digest when this fingerprint is published (the tag is moved to it), else None."""
    from trtbuild.registry.publish import adopt_published, client_for
    from trtbuild.registry.reference import parse_ref

    r = parse_ref(ref)
    return adopt_published(r, fingerprint, client=client_for(r, plain_http=args.plain_http, insecure=args.insecure))


def _publish(src: Path, ref: str, recipe: Any, store: Any, args: Args,
             progress: Any) -> dict[str, Any]:
    """Publish one target; {ref, digest, pinned, tags} (``pinned`` = the reference CI pulls by digest)."""
    from trtbuild.registry.publish import client_for, publish_artifact
    from trtbuild.registry.reference import parse_ref

    r = parse_ref(ref)
    task = progress.start(f"publish {ref}")
    client = client_for(r, plain_http=args.plain_http, insecure=args.insecure,
                        upload_state_dir=store.cache_dir / "uploads")
    result = publish_artifact(src, r, client=client, annotations=dict(recipe.publish.annotations),
                              stat_cache=store.stat_cache())
    progress.finish(task, result.digest)
    return {"ref": str(result.ref), "digest": result.digest, "pinned": result.pinned, "tags": list(result.tags)}


def render_report(reports: list[Any], skipped: list[dict[str, str]], out: Path) -> str:
    from trtbuild.canon import format_bytes as _size

    lines = []
    for r in reports:
        t = r.plan.target
        label = "reference (not an engine)" if t["reference"] else f"SM {t['sm']}"
        lines.append(f"{r.plan.recipe['name']} for {t['name']} ({label}) → {r.out_dir}")
        lines.append(f"  {'stage':<11} {'status':<7} {'wall':>8} {'peak RSS':>10} {'size':>10}  key"
                     "   (peak RSS: of the process that ran the stage)")
        for s in r.stages:
            lines.append(f"  {s.stage:<11} {s.status:<7} {s.wall_s:>7.1f}s {_size(s.peak_rss_bytes):>10} "
                         f"{_size(s.artifact_bytes):>10}  {s.key[:12]}"
                         + (f"  ({'; '.join(s.reasons)})" if s.reasons and s.status == "built" else ""))
        m = r.plan.memory
        if not t["reference"]:
            lines.append(f"  predicted per GPU: weights {_size(m['weights_bytes_per_rank'])}, KV capacity "
                         f"{m['kv_capacity_tokens']:,} tokens, {m['max_concurrent_sequences']} sequences at max_seq_len")
        lines.append(f"  fingerprint {r.fingerprint}")
        for ref in r.published:
            lines.append(f"  published {ref}")
    for s in skipped:
        lines.append(f"{s['gpu']}: already published ({s['ref']}, fingerprint {s['fingerprint'][:12]}): "
                     f"{s['pinned']}")
    lines.append(f"report: {out / 'report.json'}")
    return "\n".join(lines)
