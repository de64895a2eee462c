"""`trtbuild init SOURCE --gpu GPU [--gpu ...]`: start from a model, not a blank file.

Writes a recipe for ``SOURCE`` (``hf://org/name[@revision]`` or a local model directory) that plans feasibly
on every ``--gpu``, and, for a Hub model, a copy of its config.json beside it so that planning never needs
the network. The config comes from the Hub (huggingface_hub, the user's token), from the local Hugging Face
cache when offline, or from ``--config FILE|DIR``.

Quantization and tensor parallelism are chosen the way the planner suggests them: start from the model's
own precision on one GPU, plan, and apply the first suggested fix of the first error until the plan is
feasible (each suggestion is itself checked by the planner). Choices every GPU shares go to the recipe
itself; the rest become that GPU's ``targets:`` override.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args
from trtbuild.errors import StageError, UsageError

MAX_STEPS = 6


def _name_from(source: str) -> str:
    tail = source.rstrip("/").split("@")[0].rsplit("/", 1)[-1]
    name = re.sub(r"[^a-z0-9._-]+", "-", tail.lower()).strip("-._")
    return name or "model"


def _hub_config(repo: str, revision: str | None) -> tuple[Path, str]:
    """(config.json path, commit) of an hf:// model: local cache when offline, else the Hub."""
    from trtbuild.hf_access import describe_hub_error, hf_token, offline
    from trtbuild.plan.sources import cached_hf_file

    what = f"hf://{repo}" + (f"@{revision}" if revision else "")
    cached = cached_hf_file(repo, revision, "config.json")
    if offline():
        if cached is None:
            raise StageError("fetch", f"{what}: config.json is not in the Hugging Face cache and HF_HUB_OFFLINE is "
                                      "set; give it with --config FILE (or a model directory)")
        return cached, cached.parent.name
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UsageError(f"{what}: reading config.json from the Hub needs huggingface_hub (`pip install "
                         "'trtbuild[checkpoint]'`), or give it with --config FILE") from None
    try:
        path = Path(hf_hub_download(repo_id=repo, filename="config.json", revision=revision or "main",
                                    token=hf_token()))
    except Exception as exc:  # noqa: BLE001 - one clear message, never a raw ConnectionError
        raise StageError("fetch", describe_hub_error(exc, what) + "; or give config.json with --config") from None
    return path, path.parent.name


def _config_arg(value: str) -> Path:
    p = Path(value)
    if p.is_dir():
        p = p / "config.json"
    if not p.is_file():
        raise UsageError(f"--config {value}: no such file")
    return p


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _choose(data: dict[str, Any], recipe_path: Path, gpu: str) -> tuple[dict[str, Any], Any]:
    """(edits for ``gpu``, final plan): apply the planner's first suggested fix until the plan is feasible."""
    import yaml

    from trtbuild.plan.planner import apply_fix, make_plan
    from trtbuild.recipe.loader import parse_recipe

    edits: dict[str, Any] = {}
    plan = None
    for _ in range(MAX_STEPS):
        current = apply_fix(data, gpu, edits) if edits else data
        plan = make_plan(parse_recipe(yaml.safe_dump(current, sort_keys=False), recipe_path), gpu)
        fixable = [d for d in plan.errors if d.fixes]
        if plan.feasible or not fixable:
            break
        edits.update(fixable[0].fixes[0])
    assert plan is not None
    return edits, plan


def cmd_init(args: Args) -> int:

    from trtbuild.catalog.gpus import get_gpu
    from trtbuild.model.config import load_model_config
    from trtbuild.plan.sources import parse_hf_source

    gpus = []
    for g in args.gpu:
        key = get_gpu(g).key
        if key not in gpus:
            gpus.append(key)
    source = args.source
    name = args.name or _name_from(source)
    out = Path(args.out or f"{name}.yaml").absolute()
    if out.exists() and not args.force:
        raise UsageError(f"{out} exists; pass --force to overwrite it")
    if out.parent.exists() and not out.parent.is_dir():
        raise UsageError(f"{out.parent}: not a directory")
    model: dict[str, Any] = {}
    written_config: Path | None = None
    if source.startswith("hf://"):
        repo, revision = parse_hf_source(source)
        if args.config:
            config, commit = _config_arg(args.config), revision
        else:
            config, commit = _hub_config(repo, revision)
        pinned = f"hf://{repo}@{commit}" if commit and re.fullmatch(r"[0-9a-f]{40}", commit) else source
        written_config = out.parent / "models" / name / "config.json"
        model = {"source": pinned, "config": os.path.relpath(written_config, out.parent)}
    else:
        local = Path(source).expanduser().absolute()
        if not (local / "config.json").is_file():
            raise UsageError(f"{source}: expected hf://org/name[@revision] or a model directory holding config.json")
        config = _config_arg(args.config) if args.config else local / "config.json"
        model = {"source": os.path.relpath(local, out.parent)}
    dims = load_model_config(config)  # a PlanError (exit 3) names what is wrong with the config
    out.parent.mkdir(parents=True, exist_ok=True)  # relative paths in the recipe resolve from there
    max_seq_len = max(2, min(args.max_seq_len, dims.max_position_embeddings))
    data: dict[str, Any] = {
        "recipe": 1, "name": name, "model": model, "gpus": list(gpus),
        "build": {"max_batch_size": 64, "max_input_len": max(1, max_seq_len // 2), "max_seq_len": max_seq_len,
                  "max_num_tokens": max(max_seq_len // 2, 2048)},
        "runtime": {"chunked_context": True, "kv_cache": {"reuse": True}},
    }
    if written_config is not None:
        written_config.parent.mkdir(parents=True, exist_ok=True)
        if config.resolve() != written_config.resolve():
            written_config.write_bytes(config.read_bytes())
    chosen: dict[str, dict[str, Any]] = {}
    plans = {}
    for gpu in gpus:
        chosen[gpu], plans[gpu] = _choose(data, out, gpu)
    _hoist(data, chosen)
    if any(chosen.values()):
        data["targets"] = {g: _nest(e) for g, e in chosen.items() if e}
    text = _render(data, source, gpus)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    infeasible = {g: [d.format() for d in p.errors] for g, p in plans.items() if not p.feasible}
    if args.json:
        json.dump({"recipe": str(out), "config": str(written_config) if written_config else None,
                   "gpus": gpus, "choices": chosen, "infeasible": infeasible}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"wrote {out}" + (f" and {written_config}" if written_config else ""))
        for g in gpus:
            picks = ", ".join(f"{k}: {v}" for k, v in chosen[g].items()) or "as the recipe says"
            state = "feasible" if plans[g].feasible else "NOT feasible"
            print(f"  {g}: {picks} ({state})")
        print(f"next: trtbuild plan {os.path.relpath(out)}")
    if infeasible:
        for g, errs in infeasible.items():
            for e in errs:
                print(f"{g}: {e}", file=sys.stderr)
        return 3
    return 0


def _hoist(data: dict[str, Any], chosen: dict[str, dict[str, Any]]) -> None:
    """Edits every GPU made alike move into the recipe itself (and out of the overrides)."""
    if len(chosen) < 2:
        common = dict(next(iter(chosen.values()), {}))
    else:
        first, *rest = list(chosen.values())
        common = {k: v for k, v in first.items() if all(r.get(k) == v for r in rest)}
    for key, value in common.items():
        _set(data, key, value)
        for edits in chosen.values():
            edits.pop(key, None)


def _nest(edits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in edits.items():
        _set(out, key, value)
    return out


def _render(data: dict[str, Any], source: str, gpus: list[str]) -> str:
    import yaml

    head = (f"# Written by `trtbuild init {source} {' '.join('--gpu ' + g for g in gpus)}`.\n"
            "# gpus: is what every command builds; targets: holds per-GPU overrides the planner chose.\n"
            "# `trtbuild plan` shows the memory plan per GPU; `trtbuild schema` documents every key.\n")
    return head + yaml.safe_dump(data, sort_keys=False)
