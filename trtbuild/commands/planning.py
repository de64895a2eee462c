"""`trtbuild validate`, `plan`, `schema` and `gpus`: the commands that read recipes and the catalog only.

They are the planning path: nothing here imports torch, Jinja or the build machinery.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from trtbuild.errors import RecipeError, UsageError


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------------------ validate
def cmd_validate(files: Sequence[str], *, as_json: bool = False) -> int:
    """0 all valid · 3 some recipe invalid · 2 some file missing or unreadable (the same code as every
    other command gives for a missing file)."""
    from trtbuild.recipe.loader import load_recipe

    results = []
    invalid = missing = 0
    for f in files:
        try:
            loaded = load_recipe(f)
            results.append({"file": f, "valid": True, "name": loaded.recipe.name,
                            "gpus": list(loaded.gpus), "errors": []})
            if not as_json:
                gpus = f"; gpus: {', '.join(loaded.gpus)}" if loaded.gpus else "; no gpus: listed"
                print(f"{f}: ok ({loaded.recipe.name}{gpus})")
        except RecipeError as exc:
            invalid += 1
            results.append({"file": f, "valid": False, "errors": [
                {"message": d.message, "path": d.path,
                 "line": d.position.line if d.position else None,
                 "column": d.position.col if d.position else None, "text": d.format()}
                for d in exc.diagnostics]})
            if not as_json:
                for d in exc.diagnostics:
                    print(d.format(), file=sys.stderr)
        except UsageError as exc:
            missing += 1
            results.append({"file": f, "valid": False, "errors": [{"message": str(exc), "text": str(exc)}]})
            if not as_json:
                print(f"error: {exc}", file=sys.stderr)
    if as_json:
        print_json({"files": results, "valid": not (invalid or missing)})
    return UsageError.exit_code if missing else (RecipeError.exit_code if invalid else 0)


# ---------------------------------------------------------------------------------------- plan
def cmd_plan(file: str, *, gpus: Sequence[str] | None = None, as_json: bool = False, status: bool = False,
             cache_dir: str | None = None, executor: str | None = None) -> int:
    from trtbuild.commands.common import recipe_gpus
    from trtbuild.plan.planner import make_plan
    from trtbuild.plan.render import render_plan
    from trtbuild.recipe.loader import load_recipe

    loaded = load_recipe(file)
    plans = [make_plan(loaded, g) for g in recipe_gpus(loaded, gpus)]
    rows = _stage_status(loaded, plans, cache_dir, executor) if status else {}
    feasible = all(p.feasible for p in plans)
    if as_json:
        # One shape for one GPU or several: {"plans": [...], "feasible": ...}. A stage's "key" is the
        # cache's key (what compile, report.json and `cache ls` show); it needs the model files' digests,
        # so it is only filled in with --status (null otherwise).
        docs = []
        for p in plans:
            doc = p.to_json()
            row = rows.get(p.target["key"])
            keys = (row or {}).get("keys") or {}
            doc["stages"] = [{"name": st["name"], "params": st["params"], "key": keys.get(st["name"])}
                             for st in doc["stages"]]
            if row is not None:
                doc["cache"] = row
            docs.append(doc)
        print_json({"plans": docs, "feasible": feasible})
    else:
        parts = []
        for p in plans:
            row = rows.get(p.target["key"])
            text = render_plan(p, keys=(row or {}).get("keys") if row is not None else None)
            if row is not None:
                text += "\n\n" + _render_status(row)
            parts.append(text)
        print("\n\n".join(parts))
    return 0 if feasible else 3


def _stage_status(loaded: Any, plans: list[Any], cache_dir: str | None, executor: str | None) -> dict[str, Any]:
    """Per target: each stage cached / to build, with the reason (needs the cache's stat cache)."""
    from trtbuild.cache.store import Store
    from trtbuild.commands.status import target_status

    store = Store.open(cache_dir)
    return {p.target["key"]: target_status(loaded, p.target["key"], store, executor=executor) for p in plans}


def _render_status(row: dict[str, Any]) -> str:
    lines = [f"cache: {row['state']}"]
    keys = row.get("keys") or {}
    lines += [f"  {stage:<11} {state:<9} {(keys.get(stage) or '')[:12]}" for stage, state in row["stages"].items()]
    lines += [f"  {why}" for why in row["reasons"]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- schema / gpus
def cmd_schema() -> int:
    print_json(recipe_schema())
    return 0


def recipe_schema() -> dict[str, Any]:
    """The recipe's JSON Schema as `trtbuild schema` emits it (field docstrings as descriptions)."""
    from trtbuild.recipe import schema as module

    schema = module.Recipe.model_json_schema()
    _describe_fields(schema, module)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://trtbuild.dev/schema/recipe-1.json"
    return schema


def attribute_docs(module: Any) -> dict[str, dict[str, str]]:
    """{class: {field: docstring}} from the string literal under each field of ``module``'s classes.

    The recipe models do not ask pydantic for these (``use_attribute_docstrings`` re-parses the module once
    per class at import, a cost every `trtbuild plan` paid); the schema, the one reader, gets them here
    from one parse."""
    import ast
    import inspect

    docs: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = docs.setdefault(node.name, {})
        for stmt, after in zip(node.body, node.body[1:]):
            if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                    and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                    and isinstance(after.value.value, str)):
                fields[stmt.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _describe_fields(schema: dict[str, Any], module: Any) -> None:
    docs = attribute_docs(module)
    models = {name: obj for name, obj in vars(module).items() if name in docs and hasattr(obj, "model_fields")}
    targets = [("Recipe", schema), *schema.get("$defs", {}).items()]
    for name, node in targets:
        model = models.get(name)
        if model is None:
            continue
        # a field's docstring, unless the field states its description itself (as pydantic would)
        own = {f: doc for f, doc in _inherited_docs(model, docs).items()
               if model.model_fields.get(f) is not None and model.model_fields[f].description is None}
        props = node.get("properties", {})
        for field in props.keys() & own.keys():  # keys sorted, as pydantic writes them
            props[field] = dict(sorted({**props[field], "description": own[field]}.items()))


def _inherited_docs(model: Any, docs: dict[str, dict[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        out.update(docs.get(cls.__name__, {}))
    return out


def cmd_gpus(*, as_json: bool = False) -> int:
    from trtbuild.catalog.gpus import all_gpus, gpu_to_json
    from trtbuild.plan.render import render_gpus

    rows = [gpu_to_json(g) for g in all_gpus()]
    if as_json:
        print_json({"gpus": rows})
    else:
        print(render_gpus(rows))
    return 0
