"""Load a recipe file: YAML with positions → validated ``Recipe``, every error at once.

Errors read ``recipe.yaml:14:7: quantization.weights: Input should be 'fp8', ... (did you mean
'int4_awq'?)``, one per line, sorted by position. Per-GPU ``targets:`` overrides are merged over
the recipe and validated too, with errors pointing into the override.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trtbuild.errors import Diagnostic, RecipeError, SourcePosition, UsageError
from trtbuild.fsutil import read_regular_file
from trtbuild.recipe.schema import SECTIONS_WITH_OVERRIDES, Recipe
from trtbuild.recipe.suggest import describe_error, describe_union_error
from trtbuild.recipe.yamlpos import PositionMap, YamlLoadError, dotted, load_yaml_with_positions, quote_key

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class LoadedRecipe:
    """A validated recipe with where it came from and its resolved per-GPU variants."""

    path: Path
    text_sha256: str
    recipe: Recipe
    data: dict[str, Any]
    positions: PositionMap
    targets: dict[str, Recipe] = field(default_factory=dict)
    """Merged recipe per canonical GPU key named in ``targets:``."""
    gpus: tuple[str, ...] = ()
    """Canonical keys of the GPUs listed in ``gpus:`` (what every command builds by default)."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def for_gpu(self, gpu_key: str) -> Recipe:
        """The recipe with the overrides for ``gpu_key`` (a canonical GPU key) applied."""
        return self.targets.get(gpu_key, self.recipe)


MAX_RECIPE_BYTES = 1024 * 1024
"""A recipe is a page of YAML; anything larger is refused before it is read."""


def read_recipe_text(path: Path) -> str:
    """The recipe file's text. Only a regular file of at most ``MAX_RECIPE_BYTES`` is read, and it is
    checked before reading: a FIFO, ``/dev/zero`` or a huge file is an error at once, never a hang."""
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{p}: no such recipe file")
    if p.is_dir():
        raise UsageError(f"{p}: is a directory, expected a recipe file (recipe.yaml)")
    try:
        raw = read_regular_file(p, MAX_RECIPE_BYTES)
    except OSError as exc:
        raise UsageError(f"{p}: cannot read the recipe: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise RecipeError([Diagnostic("file is not valid UTF-8 text", position=SourcePosition(str(p), line, col))]) from None


def load_recipe(path: Path | str) -> LoadedRecipe:
    """Read, parse and validate a recipe file. Raises RecipeError with all diagnostics."""
    p = Path(path)
    text = read_recipe_text(p)
    return parse_recipe(text, p)


def parse_recipe(text: str, path: Path) -> LoadedRecipe:
    file = str(path)
    try:
        data, positions = load_yaml_with_positions(text, file)
    except YamlLoadError as exc:
        raise RecipeError(exc.diagnostics) from None
    if not isinstance(data, dict):
        raise RecipeError([Diagnostic("a recipe is a mapping of sections (recipe, name, model, ...)",
                                      position=positions.at(()) or SourcePosition(file, 1, 1))])
    diagnostics: list[Diagnostic] = []
    recipe = _validate(data, positions, diagnostics, override_of=None)
    gpus = _validate_gpus(data, positions, diagnostics)
    targets = _validate_targets(data, positions, diagnostics, gpus)
    if diagnostics or recipe is None:
        raise RecipeError(_dedupe(diagnostics))
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return LoadedRecipe(path=path, text_sha256=digest, recipe=recipe, data=data, positions=positions, targets=targets,
                        gpus=gpus)


def _validate(data: dict[str, Any], positions: PositionMap, out: list[Diagnostic],
              override_of: tuple[str, dict[str, Any]] | None) -> Recipe | None:
    """Validate ``data``; errors are mapped to positions (into a target override when given)."""
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        grouped: dict[Path_, list[dict[str, Any]]] = {}
        errors: list[dict[str, Any]] = [dict(e) for e in exc.errors(include_url=False)]
        cleaned = [_clean_loc(data, e["loc"], e["type"]) for e in errors]
        for err, path in zip(errors, cleaned):
            # A union member that the value clearly did not aim at (a literal tried against a
            # mapping) is noise when another member reports a real problem at or below the path.
            if (err["type"] == "literal_error" and isinstance(err.get("input"), dict)
                    and len(path) < len(err["loc"])
                    and any(o is not err and c[:len(path)] == path and o["type"] != "literal_error"
                            for o, c in zip(errors, cleaned))):
                continue
            grouped.setdefault(path, []).append(err)
        for path, errs in grouped.items():
            if override_of is not None:
                gpu_name, override = override_of
                # Only report errors caused by the override; the base recipe's own are reported once.
                if not _touches(override, path):
                    continue
                pos_path: Path_ = ("targets", gpu_name) + path
                shown = dotted(("targets", gpu_name) + path)
            else:
                pos_path = path
                shown = dotted(path)
            unions = [e for e in errs if len(_clean_loc(data, e["loc"], e["type"])) < len(e["loc"])]
            if len(unions) > 1 and len(unions) == len(errs):
                messages = [describe_union_error(errs, path, data)]
            else:
                messages = [describe_error(e, path, data) for e in errs]
            prefer_key = any(e["type"] == "extra_forbidden" for e in errs)
            for message in messages:
                out.append(Diagnostic(message, path=shown, position=positions.at(pos_path, prefer_key=prefer_key)))
        return None


def _clean_loc(data: Any, loc: tuple[Any, ...], err_type: str) -> Path_:
    """Drop pydantic's union/validator tags from ``loc`` by walking the actual data."""
    out: list[str | int] = []
    node = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        in_dict = isinstance(node, dict) and isinstance(part, str) and part in node
        in_list = isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            out.append(part)
            node = node[part]
        elif last and err_type in ("missing", "extra_forbidden") and isinstance(part, (str, int)):
            out.append(part)
        # else: a union member tag such as "literal['a']" or "TokenRange": skip it
    return tuple(out)


def _touches(override: dict[str, Any], path: Path_) -> bool:
    node: Any = override
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


def _unknown_gpu(name: object) -> str:
    from trtbuild.catalog.gpus import all_gpus
    from trtbuild.recipe.suggest import did_you_mean

    hint = did_you_mean(str(name), [n for g in all_gpus() for n in (g.key, *g.aliases)])
    return f"unknown GPU {quote_key(name)}{hint}; `trtbuild gpus` lists them"


def _validate_gpus(data: dict[str, Any], positions: PositionMap, out: list[Diagnostic]) -> tuple[str, ...]:
    """Canonical keys of ``gpus:`` (names or aliases), in the recipe's order; unknown names and
    duplicates are errors."""
    from trtbuild.catalog.gpus import find_gpu

    listed = data.get("gpus")
    if not isinstance(listed, list):
        return ()  # absent, or a type error the schema reports
    keys: list[str] = []
    seen: dict[str, str] = {}
    for i, name in enumerate(listed):
        if not isinstance(name, str):
            continue
        pos = positions.at(("gpus", i))
        gpu = find_gpu(name)
        if gpu is None:
            out.append(Diagnostic(_unknown_gpu(name), path=f"gpus[{i}]", position=pos))
        elif gpu.key in seen:
            out.append(Diagnostic(f"{quote_key(name)} and {quote_key(seen[gpu.key])} both name {gpu.name}",
                                  path=f"gpus[{i}]", position=pos))
        else:
            seen[gpu.key] = name
            keys.append(gpu.key)
    return tuple(keys)


def _validate_targets(data: dict[str, Any], positions: PositionMap, out: list[Diagnostic],
                      gpus: tuple[str, ...] = ()) -> dict[str, Recipe]:
    from trtbuild.catalog.gpus import find_gpu

    targets = data.get("targets")
    if not isinstance(targets, dict):
        return {}
    result: dict[str, Recipe] = {}
    seen: dict[str, str] = {}
    for name, override in targets.items():
        gpu = find_gpu(str(name))
        pos = positions.at(("targets", name), prefer_key=True)
        if gpu is None:
            out.append(Diagnostic(_unknown_gpu(name), path=dotted(("targets", str(name))), position=pos))
            continue
        if isinstance(data.get("gpus"), list) and gpu.key not in gpus:
            listed = ", ".join(str(g) for g in data["gpus"])
            out.append(Diagnostic(f"override for {gpu.name}, which is not in gpus: [{listed}]; add {quote_key(name)} "
                                  "to gpus: (what the recipe builds) or remove the override",
                                  path=dotted(("targets", str(name))), position=pos))
            continue
        if gpu.key in seen:
            out.append(Diagnostic(f"{quote_key(name)} and {quote_key(seen[gpu.key])} both name {gpu.name}",
                                  path=dotted(("targets", str(name))), position=pos))
            continue
        seen[gpu.key] = str(name)
        if not isinstance(override, dict):
            continue  # the base validation reports the type error
        merged = merge_override(data, override)
        recipe = _validate(merged, positions, out, override_of=(str(name), override))
        if recipe is not None:
            result[gpu.key] = recipe
    return result


def merge_override(data: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge a target override over the recipe data (mappings merge, everything else replaces)."""
    merged = copy.deepcopy({k: v for k, v in data.items() if k != "targets"})
    for key, value in override.items():
        if key in SECTIONS_WITH_OVERRIDES and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        elif value is not None:
            merged[key] = copy.deepcopy(value)
    return merged


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[str, str, SourcePosition | None]] = set()
    out = []
    for d in diags:
        key = (d.message, d.path, d.position)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
