"""Facts about ``trtllm-build``, read from TensorRT-LLM's Python sources with :mod:`ast` (never imported).

* :func:`build_flags` — every flag of ``commands/build.py`` ``parse_arguments`` plus the plugin flags that
  ``plugin/plugin.py`` ``add_plugin_argument`` derives from ``PluginConfig`` (same derivation rules), the
  deprecations ``main()`` warns about and the combinations it refuses.
* :func:`plugin_sm_refusals` — plugins ``PluginConfig.validate`` refuses on a given SM.
"""

from __future__ import annotations

import ast
import re
from typing import Any

KNOWN_REMOVED = ("--strongly_typed", "--max_output_len", "--enable_xqa", "--builder_force_num_profiles",
                 "--use_custom_all_reduce", "--multi_block_mode", "--use_embedding_sharding", "--auto_parallel",
                 "--gpus_per_node", "--cluster_key", "--dtype", "--tp_size", "--pp_size")
"""Flags older guides and scripts use; a regenerated fixture lists those the parsed source does not define."""


def _func(tree: ast.AST, name: str) -> ast.FunctionDef:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ValueError(f"no function {name}() in the source")


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _const(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _help(call: ast.Call) -> str:
    node = _kw(call, "help")
    value = _const(node)
    return value if isinstance(value, str) else ""


def _flag_spec(call: ast.Call) -> tuple[list[str], dict[str, Any]]:
    names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    spec: dict[str, Any] = {}
    action, nargs = _const(_kw(call, "action")), _const(_kw(call, "nargs"))
    type_node, choices_node = _kw(call, "type"), _kw(call, "choices")
    choices = _const(choices_node)
    if action == "store_true":
        spec["type"] = "flag"
    elif nargs in ("+", "*"):
        spec["type"] = "list"
    elif choices_node is not None:
        spec["type"] = "choice"
    elif isinstance(type_node, ast.Name) and type_node.id == "int":
        spec["type"] = "int"
    elif isinstance(type_node, ast.Call):  # type=enum_type(KVCacheType): the values are a C++ enum's
        spec["type"] = "choice"
        spec["choices_from"] = ast.unparse(type_node)
        listed = re.search(r"\(([a-z_]+(?:,\s*(?:or\s+)?[a-z_]+)+)\)", _help(call))
        if listed:
            spec["choices"] = [v.strip().removeprefix("or ").strip() for v in listed.group(1).split(",")]
            spec["choices_source"] = "help text"
    else:
        spec["type"] = "str"
    if isinstance(choices, (list, tuple)):
        spec["choices"] = [c for c in choices]
    elif choices_node is not None:
        spec["choices_from"] = ast.unparse(choices_node)
    if _help(call).lower().startswith("deprecated"):
        spec["deprecated"] = _help(call)
    return names, spec


def _plugin_fields(plugin_py: str) -> tuple[list[str], list[tuple[str, ast.expr, Any]]]:
    tree = ast.parse(plugin_py)
    aliases: dict[str, ast.expr] = {}
    cli: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id == "cli_plugin_args":
                cli = list(ast.literal_eval(node.value))
            else:
                aliases[node.targets[0].id] = node.value
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PluginConfig")
    fields = []
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(node.value, ast.Call):
            default = _const(_kw(node.value, "default"))
            fields.append((node.target.id, _resolve_alias(node.annotation, aliases), default))
    return cli, fields


def _resolve_alias(node: ast.expr, aliases: dict[str, ast.expr]) -> ast.expr:
    class Sub(ast.NodeTransformer):
        def visit_Name(self, n: ast.Name) -> ast.AST:
            return aliases.get(n.id, n)
    out = Sub().visit(ast.parse(ast.unparse(node), mode="eval").body)
    assert isinstance(out, ast.expr)
    return out


def _literal_options(annotation: ast.expr) -> list[Any] | None:
    """``Optional[Literal[a, b]]`` → [a, b, None] (what add_plugin_argument turns into choices)."""
    text = ast.unparse(annotation)
    if not text.startswith(("Optional[", "Union[")):
        return None
    for node in ast.walk(annotation):
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "Literal":
            elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            values = [ast.literal_eval(e) for e in elts]
            if None not in values:
                values.append(None)  # Optional[...] adds None
            return values
    return None


def _plugin_flags(plugin_py: str) -> dict[str, dict[str, Any]]:
    """add_plugin_argument's rules: Literal options → choices (None shown as "disable"); bool →
    enable/disable; anything else → its own type."""
    cli, fields = _plugin_fields(plugin_py)
    out: dict[str, dict[str, Any]] = {}
    for name, annotation, default in fields:
        if name not in cli:
            continue
        options = _literal_options(annotation)
        if options is not None:
            choices = [o if o else "disable" for o in options]
            out["--" + name] = {"type": "choice", "choices": list(dict.fromkeys(choices)),
                                "default": default if name == "gemm_plugin" else (default or "disable")}
        elif ast.unparse(annotation) == "bool":
            out["--" + name] = {"type": "choice", "choices": ["enable", "disable"],
                                "default": "enable" if default else "disable"}
        else:
            out["--" + name] = {"type": "int" if ast.unparse(annotation) == "int" else "str", "default": default}
    return out


def build_flags(build_py: str, plugin_py: str) -> dict[str, Any]:
    """The trtllm-build command line: flags, aliases, deprecations and refused combinations."""
    tree = ast.parse(build_py)
    flags: dict[str, dict[str, Any]] = {}
    for node in ast.walk(_func(tree, "parse_arguments")):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr == "add_argument":
            names, spec = _flag_spec(node)
            if not names:
                continue
            flags[names[0]] = spec
            for alias in names[1:]:
                flags[alias] = {**spec, "alias_of": names[0]}
    if any(isinstance(n, ast.Call) and getattr(n.func, "id", "") == "add_plugin_argument"
           for n in ast.walk(_func(tree, "parse_arguments"))):
        for flag, spec in _plugin_flags(plugin_py).items():
            flags.setdefault(flag, {k: v for k, v in spec.items() if k != "default"})
    main = _func(tree, "main")
    for text in (s.value for s in ast.walk(main) if isinstance(s, ast.Constant) and isinstance(s.value, str)):
        m = re.match(r"Option (--\w+) is deprecated,?\s*(.*)", text)
        if m and m.group(1) in flags:
            flags[m.group(1)]["deprecated"] = m.group(2) or text
    refused = []
    for func in (main, _func(tree, "build_model")):
        for node in ast.walk(func):
            if isinstance(node, ast.If) and any(isinstance(s, ast.Raise) for s in node.body):
                raise_node = next(s for s in node.body if isinstance(s, ast.Raise))
                refused.append({"when": ast.unparse(node.test), "message": _message(raise_node.exc)})
            elif isinstance(node, ast.Assert) and node.msg is not None:
                refused.append({"when": "not (" + ast.unparse(node.test) + ")", "message": _message(node.msg)})
    removed = [f for f in KNOWN_REMOVED if f not in flags]
    return {"flags": dict(sorted(flags.items())), "removed": removed, "refused": refused}


def _message(node: ast.expr | None) -> str:
    if isinstance(node, ast.Call) and node.args:
        node = node.args[0]
    value = _const(node)
    return value if isinstance(value, str) else (ast.unparse(node) if node is not None else "")


def plugin_sm_refusals(plugin_py: str) -> dict[str, Any]:
    """``PluginConfig.validate``: plugin fields that raise NotImplementedError on an exact SM."""
    tree = ast.parse(plugin_py)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PluginConfig")
    validate = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "validate")
    for node in ast.walk(validate):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            table = ast.literal_eval(node.value)
            message = next((_message(r.exc) for r in ast.walk(validate) if isinstance(r, ast.Raise)), "")
            return {"match": "sm == key (exact)", "unsupported": {str(k): list(v) for k, v in table.items()},
                    "message": message}
    return {"match": "sm == key (exact)", "unsupported": {}, "message": ""}
