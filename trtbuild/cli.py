"""The `trtbuild` command line. The one place that maps errors to exit codes:

0 ok · 1 bug · 2 usage · 3 recipe/plan invalid · 4 stage failed · 5 publish failed.

Commands import their machinery lazily so `trtbuild plan` never pays for torch or Jinja.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from trtbuild.errors import PlanError, RecipeError, TrtbuildError, UsageError

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=False, default=str)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------------------ validate
def cmd_validate(args: argparse.Namespace) -> int:
    """0 all valid · 3 some recipe invalid · 2 some file missing or unreadable (the same code as every
    other command gives for a missing file)."""
    from trtbuild.recipe.loader import load_recipe

    results = []
    invalid = missing = 0
    for f in args.files:
        try:
            loaded = load_recipe(f)
            results.append({"file": f, "valid": True, "name": loaded.recipe.name,
                            "gpus": list(loaded.gpus), "errors": []})
            if not args.json:
                gpus = f"; gpus: {', '.join(loaded.gpus)}" if loaded.gpus else "; no gpus: listed"
                print(f"{f}: ok ({loaded.recipe.name}{gpus})")
        except RecipeError as exc:
            invalid += 1
            results.append({"file": f, "valid": False, "errors": [
                {"message": d.message, "path": d.path,
                 "line": d.position.line if d.position else None,
                 "column": d.position.col if d.position else None, "text": d.format()}
                for d in exc.diagnostics]})
            if not args.json:
                for d in exc.diagnostics:
                    print(d.format(), file=sys.stderr)
        except UsageError as exc:
            missing += 1
            results.append({"file": f, "valid": False, "errors": [{"message": str(exc), "text": str(exc)}]})
            if not args.json:
                print(f"error: {exc}", file=sys.stderr)
    if args.json:
        _print_json({"files": results, "valid": not (invalid or missing)})
    return UsageError.exit_code if missing else (RecipeError.exit_code if invalid else 0)


# ---------------------------------------------------------------------------------------- plan
def cmd_plan(args: argparse.Namespace) -> int:
    from trtbuild.commands.common import recipe_gpus
    from trtbuild.plan.planner import make_plan
    from trtbuild.plan.render import render_plan
    from trtbuild.recipe.loader import load_recipe

    loaded = load_recipe(args.file)
    plans = [make_plan(loaded, g) for g in recipe_gpus(loaded, args.gpu)]
    status = _stage_status(loaded, plans, args) if args.status else {}
    feasible = all(p.feasible for p in plans)
    if args.json:
        # One shape for one GPU or several: {"plans": [...], "feasible": ...}. A stage's "key" is the
        # cache's key (what compile, report.json and `cache ls` show); it needs the model files' digests,
        # so it is only filled in with --status (null otherwise).
        docs = []
        for p in plans:
            doc = p.to_json()
            row = status.get(p.target["key"])
            keys = (row or {}).get("keys") or {}
            doc["stages"] = [{"name": st["name"], "params": st["params"], "key": keys.get(st["name"])}
                             for st in doc["stages"]]
            if row is not None:
                doc["cache"] = row
            docs.append(doc)
        _print_json({"plans": docs, "feasible": feasible})
    else:
        parts = []
        for p in plans:
            row = status.get(p.target["key"])
            text = render_plan(p, keys=(row or {}).get("keys") if row is not None else None)
            if row is not None:
                text += "\n\n" + _render_status(row)
            parts.append(text)
        print("\n\n".join(parts))
    return 0 if feasible else 3


def _stage_status(loaded: Any, plans: list[Any], args: argparse.Namespace) -> dict[str, Any]:
    """Per target: each stage cached / to build, with the reason (needs the cache's stat cache)."""
    from trtbuild.cache.store import Store
    from trtbuild.commands.status import target_status

    store = Store.open(args.cache_dir)
    ns = argparse.Namespace(executor=args.executor, registry=None, gpu=None, plain_http=False, insecure=False)
    return {p.target["key"]: target_status(loaded, p.target["key"], store, ns) for p in plans}


def _render_status(row: dict[str, Any]) -> str:
    lines = [f"cache: {row['state']}"]
    keys = row.get("keys") or {}
    lines += [f"  {stage:<11} {state:<9} {(keys.get(stage) or '')[:12]}" for stage, state in row["stages"].items()]
    lines += [f"  {why}" for why in row["reasons"]]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- schema / gpus
def cmd_schema(args: argparse.Namespace) -> int:
    from trtbuild.recipe.schema import Recipe

    schema = Recipe.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://trtbuild.dev/schema/recipe-1.json"
    _print_json(schema)
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    from trtbuild.catalog.gpus import all_gpus, gpu_to_json
    from trtbuild.plan.render import render_gpus

    rows = [gpu_to_json(g) for g in all_gpus()]
    if args.json:
        _print_json({"gpus": rows})
    else:
        print(render_gpus(rows))
    return 0


# ------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from trtbuild import __version__

    parser = _Parser(prog="trtbuild", description="Compile a recipe into TensorRT-LLM engines and a Triton repository.")
    parser.add_argument("--version", action="version", version=f"trtbuild {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("validate", help="check recipe files; exit 0 when all are valid, 3 when not, 2 for a missing file")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what would be built for a GPU, whether it fits, and why")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--gpu", action="append", metavar="GPU",
                   help="target GPU (repeatable; default: the recipe's gpus:); see `trtbuild gpus`")
    p.add_argument("--json", action="store_true", help='machine-readable: {"plans": [...], "feasible": ...}')
    p.add_argument("--status", action="store_true",
                   help="also show each stage's cache key, cached / to build, and why (stat-caches model digests)")
    p.add_argument("--cache-dir", metavar="DIR", help="with --status: the cache to look in")
    p.add_argument("--executor", choices=["auto", "local", "container", "fake"], help="with --status")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("schema", help="print the recipe JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("gpus", help="list the GPU catalog")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_gpus)

    for register in _extra_commands():
        register(sub)
    return parser


def _extra_commands() -> list[Callable[[Any], None]]:
    """Commands of later stages register themselves here (kept out of the planning path)."""
    from trtbuild import commands

    return commands.registrars()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("TRTBUILD_DEBUG") == "1"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args))
    except RecipeError as exc:
        for d in exc.diagnostics:
            print(d.format(), file=sys.stderr)
        return exc.exit_code
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for d in exc.diagnostics:
            print("  " + d.format(), file=sys.stderr)
        return exc.exit_code
    except TrtbuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # a bug: say so, and how to report it
        if debug:
            traceback.print_exc()
        else:
            etype, value, _ = sys.exc_info()
            print(f"internal error (a bug in trtbuild): {etype.__name__ if etype else 'Exception'}: {value}\n"
                  "  rerun with --debug for the traceback", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
