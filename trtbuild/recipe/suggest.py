"""Human messages for validation errors: "did you mean", and "this key belongs under X"."""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from typing import Any

from pydantic import BaseModel

from trtbuild.recipe.schema import Recipe, TargetOverride
from trtbuild.recipe.yamlpos import dotted, quote_key, show_key

Path_ = tuple[str | int, ...]

_SECTION_KIND = {
    "build": "a build-time (engine) setting",
    "runtime": "a run-time (server) setting",
    "quantization": "a quantization setting",
    "parallelism": "a parallelism setting",
    "serving": "a serving (Triton repository) setting",
    "model": "a model setting",
    "publish": "a publish setting",
}


def did_you_mean(word: str, candidates: typing.Iterable[str], cutoff: float = 0.6) -> str:
    """' (did you mean 'x'?)' or '' — case-insensitive closest match."""
    cands = list(dict.fromkeys(str(c) for c in candidates))
    lowered = {c.lower(): c for c in cands}
    hits = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
    return f" (did you mean '{lowered[hits[0]]}'?)" if hits else ""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """BaseModel classes reachable through Optional/Union/tuple/dict annotations."""
    out: list[type[BaseModel]] = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list, dict, typing.Annotated):
        for arg in typing.get_args(annotation):
            if arg is not Ellipsis:
                out.extend(_models_in(arg))
    return out


def model_at(path: Path_) -> type[BaseModel] | None:
    """The schema model whose fields are valid keys at ``path`` of the recipe (None if free-form)."""
    model: type[BaseModel] = Recipe
    i = 0
    while i < len(path):
        part = path[i]
        if not isinstance(part, str) or part not in model.model_fields:
            return None
        annotation = model.model_fields[part].annotation
        origin = typing.get_origin(annotation)
        candidates = _models_in(annotation)
        if not candidates:
            return None
        if origin in (dict, tuple, list):
            i += 1  # skip the mapping key / list index
        model = candidates[0]
        i += 1
    if model is TargetOverride:
        return model
    return model


@functools.lru_cache(maxsize=1)
def _key_index() -> dict[str, tuple[str, ...]]:
    """Every field name in the schema → the dotted paths where it is valid."""
    index: dict[str, list[str]] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            dotted = f"{prefix}.{name}" if prefix else name
            index.setdefault(name, []).append(dotted)
            for sub in _models_in(f.annotation):
                if sub is not TargetOverride and sub is not model:
                    walk(sub, dotted)

    walk(Recipe, "")
    return {k: tuple(v) for k, v in index.items()}


def _belongs_elsewhere(key: str, here: str) -> str:
    """"'max_input_len' is a build-time (engine) setting: move it to build.max_input_len" or ''."""
    own = f"{here}.{key}" if here else key
    places = [p for p in _key_index().get(key, ()) if p != own]
    if not places:
        return ""
    section = places[0].split(".", 1)[0]
    kind = _SECTION_KIND.get(section)
    if kind and len(places) == 1:
        return f"'{key}' is {kind}: move it to {places[0]}"
    return f"'{key}' is not valid here; it belongs under " + " or ".join(places)


def _expected_literals(ctx: dict[str, Any] | None) -> list[str]:
    if not ctx or "expected" not in ctx:
        return []
    return re.findall(r"'([^']*)'", str(ctx["expected"])) or re.findall(r"\b(\w+)\b", str(ctx["expected"]))


def describe_error(err: Any, path: Path_, data: dict[str, Any]) -> str:
    """A one-line message for one pydantic error dict at the cleaned ``path``."""
    etype = err["type"]
    if etype == "extra_forbidden":
        key = show_key(path[-1]) if path else "?"
        qkey = quote_key(path[-1]) if path else "'?'"
        parent = path[:-1]
        here = dotted(parent)
        model = model_at(parent)
        allowed = list(model.model_fields) if model is not None else []
        local = did_you_mean(key, allowed, cutoff=0.75)
        elsewhere = _belongs_elsewhere(key, _schema_path(parent))
        if elsewhere:
            return elsewhere
        if local:
            return f"unknown key {qkey}{local}"
        section = f" in {here}" if here else ""
        if allowed:
            return f"unknown key {qkey}{section}{did_you_mean(key, allowed)}; valid keys: {', '.join(allowed)}"
        return f"unknown key {qkey}{section}"
    if etype == "missing":
        return f"required key {quote_key(path[-1]) if path else repr('?')} is missing"
    if etype == "literal_error":
        expected = _expected_literals(err.get("ctx"))
        hint = did_you_mean(str(err.get("input")), expected) if isinstance(err.get("input"), str) else ""
        return f"{err['msg']}, got {_short(err.get('input'))}{hint}"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if etype in ("int_type", "int_parsing", "bool_type", "bool_parsing", "float_type", "float_parsing",
                 "string_type", "model_type", "dict_type", "tuple_type", "list_type", "int_from_float"):
        msg = f"{msg}, got {_short(err.get('input'))}"
    return msg


def describe_union_error(errs: list[dict[str, Any]], path: Path_, data: dict[str, Any]) -> str:
    """One message for a value that matched none of a union's members."""
    options: list[str] = []
    hint = ""
    value = errs[0].get("input")
    for e in errs:
        if e["type"] == "literal_error":
            lits = _expected_literals(e.get("ctx"))
            options.append("one of " + ", ".join(f"'{x}'" for x in lits))
            if isinstance(value, str) and not hint:
                hint = did_you_mean(value, lits)
        elif e["type"] in ("model_type", "dict_type", "model_attributes_type"):
            options.append("a mapping")
        elif len(e["loc"]) and path and e["loc"][-1] != path[-1]:
            sub = describe_error(e, path, data)
            options.append(f"a mapping whose '{e['loc'][-1]}': {sub}")
        else:
            options.append(describe_error(e, path, data))
    unique = list(dict.fromkeys(options))
    return f"expected {' or '.join(unique)}, got {_short(value)}{hint}"


def _schema_path(parent: Path_) -> str:
    """Dotted schema location for ``parent``, skipping free-form keys such as target GPU names."""
    parts: list[str] = []
    model: type[BaseModel] | None = Recipe
    i = 0
    while i < len(parent) and model is not None:
        part = parent[i]
        if not isinstance(part, str) or part not in model.model_fields:
            break
        parts.append(part)
        annotation = model.model_fields[part].annotation
        subs = _models_in(annotation)
        if typing.get_origin(annotation) in (dict, tuple, list):
            i += 1
        model = subs[0] if subs else None
        i += 1
    return ".".join(parts)


def _short(value: Any) -> str:
    text = repr(value)
    if isinstance(value, dict):
        text = "a mapping"
    elif isinstance(value, list):
        text = "a list"
    return text if len(text) <= 60 else text[:57] + "..."

