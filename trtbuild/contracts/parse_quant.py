"""What ``trtllm-build`` refuses or rewrites per quantization and SM, read from ``builder.py`` and
``quantization/mode.py`` with :mod:`ast`.

``mode.py`` is interpreted, not imported: ``QuantMode`` flags in declaration order, the predicates
(``is_int4_weight_only`` …) as small expressions over flags, and ``from_quant_algo`` evaluated for every
``QuantAlgo`` by walking its if/elif chain and the ``from_description`` helper. ``builder.py``'s ``build()``
gives the SM-range checks (``if get_sm_version() >= 100 and get_sm_version() < 120: if <predicates>:
raise RuntimeError(msg)``) and the gemm-plugin rewrite for NVFP4.
"""

from __future__ import annotations

import ast
from typing import Any

Pred = dict[str, Any]


def _cls(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)


def _methods(cls: ast.ClassDef) -> dict[str, ast.FunctionDef]:
    return {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}


def _flag_names(node: ast.expr) -> list[str]:
    """``self.A | QuantMode.B | C`` → [A, B, C]."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _flag_names(node.left) + _flag_names(node.right)
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Name):
        return [node.id]
    raise ValueError(f"not a flag expression: {ast.unparse(node)}")


class QuantModeModel:
    """``QuantMode`` of one ``mode.py``: flags, composite masks, predicates and ``from_quant_algo``."""

    def __init__(self, mode_py: str):
        tree = ast.parse(mode_py)
        self.cls = _cls(tree, "QuantMode")
        self.algos = [t.id for n in _cls(tree, "QuantAlgo").body if isinstance(n, ast.Assign)
                      for t in n.targets if isinstance(t, ast.Name)]
        self.flags: list[str] = []
        self.masks: dict[str, list[str]] = {}
        for node in self.cls.body:
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                name = node.targets[0].id
                if ast.unparse(node.value) == "auto()" and name != "COUNT":
                    self.flags.append(name)
                elif isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.BitOr):
                    self.masks[name] = _flag_names(node.value)
        self.masks["VALID_FLAGS"] = list(self.flags)
        self.methods = _methods(self.cls)
        self.predicates = {name: p for name, fn in self.methods.items() if (p := self._predicate(fn)) is not None}

    # ------------------------------------------------------------------------------- predicates
    def _predicate(self, fn: ast.FunctionDef) -> Pred | None:
        body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
        if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
            return None
        try:
            return self._expr(body[0].value)
        except ValueError:
            return None

    def _expr(self, node: ast.expr) -> Pred:
        if isinstance(node, ast.BoolOp):
            key = "or" if isinstance(node.op, ast.Or) else "and"
            return {key: [self._expr(v) for v in node.values]}
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return {"not": self._expr(node.operand)}
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name == "_any" and len(node.args) == 1:
                return {"any": _flag_names(node.args[0])}
            if name == "_all" and node.args:
                mask = self._mask(node.args[1]) if len(node.args) > 1 else list(self.flags)
                return {"all": _flag_names(node.args[0]), "mask": mask}
            if not node.args:
                return {"call": name}
        raise ValueError(f"unsupported predicate expression: {ast.unparse(node)}")

    def _mask(self, node: ast.expr) -> list[str]:
        names = _flag_names(node)
        return [f for n in names for f in self.masks.get(n, [n])]

    # ------------------------------------------------------------------------------ evaluation
    def _eval_description(self, args: dict[str, Any]) -> set[str]:
        fn = self.methods["from_description"]
        params = [a.arg for a in fn.args.args]
        defaults = dict(zip(params[len(params) - len(fn.args.defaults):],
                            (ast.literal_eval(d) for d in fn.args.defaults)))
        env = {**defaults, **args}
        mode: set[str] = set()

        def truth(test: ast.expr) -> bool:
            if isinstance(test, ast.Name):
                return bool(env.get(test.id))
            if isinstance(test, ast.BoolOp):
                vals = [truth(v) for v in test.values]
                return all(vals) if isinstance(test.op, ast.And) else any(vals)
            if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
                return not truth(test.operand)
            raise ValueError(f"unsupported condition in from_description: {ast.unparse(test)}")

        def run(stmts: list[ast.stmt]) -> None:
            for s in stmts:
                if isinstance(s, ast.If):
                    if any(isinstance(x, ast.Expr) for x in s.body) and all(
                            isinstance(x, ast.Expr) for x in s.body):
                        continue  # a validity check calling raise_error(): not a flag
                    run(s.body if truth(s.test) else s.orelse)
                elif isinstance(s, (ast.Assign, ast.AugAssign)):
                    value = s.value
                    if isinstance(value, ast.BinOp):
                        mode.update(f for f in _flag_names(value) if f in self.flags)
        run(fn.body)
        return mode

    def _eval_call(self, call: ast.Call, base: set[str]) -> set[str]:
        name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
        if name == "from_description":
            return self._eval_description(self._bind("from_description", call, {}))
        if name.startswith("set_"):
            ret = self.methods[name].body[-1]
            assert isinstance(ret, ast.Return) and ret.value is not None
            return base | {f for f in _flag_names(ret.value) if f in self.flags}
        if name in self.methods:  # use_weight_only / use_smooth_quant / use_qserve
            env = self._bind(name, call, {})
            inner = next(n for n in ast.walk(self.methods[name]) if isinstance(n, ast.Call)
                         and getattr(n.func, "attr", "") == "from_description")
            return self._eval_description(self._bind("from_description", inner, env))
        if ast.unparse(call) == "QuantMode(0)":
            return set()
        raise ValueError(f"unsupported call in from_quant_algo: {ast.unparse(call)}")

    def _bind(self, method: str, call: ast.Call, env: dict[str, Any]) -> dict[str, Any]:
        fn = self.methods[method]
        params = [a.arg for a in fn.args.args]
        defaults = dict(zip(params[len(params) - len(fn.args.defaults):],
                            (ast.literal_eval(d) for d in fn.args.defaults)))

        def value(node: ast.expr) -> Any:
            return env.get(node.id, defaults.get(node.id)) if isinstance(node, ast.Name) else ast.literal_eval(node)
        bound = dict(defaults)
        bound.update({p: value(a) for p, a in zip(params, call.args)})
        bound.update({k.arg: value(k.value) for k in call.keywords if k.arg})
        return bound

    def algo_flags(self) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """(flags of every quant_algo, flags a kv_cache_quant_algo adds), by walking from_quant_algo."""
        fn = self.methods["from_quant_algo"]
        weights: dict[str, list[str]] = {}
        kv: dict[str, list[str]] = {}
        for chain in (s for s in fn.body if isinstance(s, ast.If)):
            node: ast.stmt | None = chain
            while isinstance(node, ast.If):
                test = node.test
                if isinstance(test, ast.Compare) and isinstance(test.left, ast.Name):
                    algo = ast.unparse(test.comparators[0]).split(".")[-1]
                    assign = next(s for s in node.body if isinstance(s, ast.Assign))
                    assert isinstance(assign.value, ast.Call)
                    if test.left.id == "quant_algo":
                        weights[algo] = self._sorted(self._eval_call(assign.value, set()))
                    else:
                        kv[algo] = self._sorted(self._eval_call(assign.value, set()))
                node = node.orelse[0] if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If) else None
        return weights, kv

    def _sorted(self, flags: set[str]) -> list[str]:
        return [f for f in self.flags if f in flags]


def holds(pred: Pred, flags: set[str], predicates: dict[str, Pred]) -> bool:
    """Evaluate a predicate expression (as stored in the fixture) on a set of QuantMode flags."""
    if "or" in pred:
        return any(holds(p, flags, predicates) for p in pred["or"])
    if "and" in pred:
        return all(holds(p, flags, predicates) for p in pred["and"])
    if "not" in pred:
        return not holds(pred["not"], flags, predicates)
    if "any" in pred:
        return bool(flags & set(pred["any"]))
    if "all" in pred:
        return (flags & set(pred["mask"])) == set(pred["all"])
    if "call" in pred:
        return holds(predicates[pred["call"]], flags, predicates)
    raise ValueError(f"unknown predicate form {pred}")


def builder_checks(builder_py: str) -> dict[str, Any]:
    """SM-range refusals and the NVFP4 gemm-plugin rewrite in ``build()``."""
    tree = ast.parse(builder_py)
    build = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "build")
    checks = []
    for node in ast.walk(build):
        if isinstance(node, ast.If) and "get_sm_version()" in ast.unparse(node.test):
            bounds = _sm_bounds(node.test)
            for inner in node.body:
                if isinstance(inner, ast.If) and any(isinstance(s, ast.Raise) for s in inner.body):
                    preds = [c.func.attr for c in ast.walk(inner.test)
                             if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute)]
                    raise_node = next(s for s in inner.body if isinstance(s, ast.Raise))
                    msg = raise_node.exc.args[0] if isinstance(raise_node.exc, ast.Call) else None
                    checks.append({**bounds, "when_any": preds, "error": type_name(raise_node),
                                   "message": ast.literal_eval(msg) if msg is not None else ""})
    rewrites = []
    assigned = {t.id: n.value for n in ast.walk(build) if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(t, ast.Name)}
    for node in ast.walk(build):
        if isinstance(node, ast.If) and "_explicitly_disable_gemm_plugin" in ast.unparse(node.test):
            var = next((v.id for v in ast.walk(node.test) if isinstance(v, ast.Name) and v.id in assigned), None)
            source = assigned.get(var) if var else None
            pred = source.func.attr if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute) else None
            for s in node.body:
                if isinstance(s, ast.Assign) and ast.unparse(s.targets[0]).endswith("plugin_config.gemm_plugin"):
                    rewrites.append({"when": pred, "unless_gemm_plugin": "disable", "field": "gemm_plugin",
                                     "value": ast.literal_eval(s.value)})
    return {"sm_checks": checks, "plugin_rewrites": rewrites}


def type_name(node: ast.Raise) -> str:
    exc = node.exc
    return ast.unparse(exc.func) if isinstance(exc, ast.Call) else ast.unparse(exc) if exc else ""


def _sm_bounds(test: ast.expr) -> dict[str, int]:
    out: dict[str, int] = {}
    for cmp in (n for n in ast.walk(test) if isinstance(n, ast.Compare)):
        op, value = cmp.ops[0], ast.literal_eval(cmp.comparators[0])
        if isinstance(op, ast.GtE):
            out["sm_min"] = value
        elif isinstance(op, ast.Gt):
            out["sm_min"] = value + 1
        elif isinstance(op, ast.Lt):
            out["sm_max"] = value - 1
        elif isinstance(op, ast.LtE):
            out["sm_max"] = value
    return out


def builder_refusals(builder_py: str, mode_py: str) -> dict[str, Any]:
    """Everything the refusal fixture holds: the model of QuantMode and the builder's checks."""
    model = QuantModeModel(mode_py)
    weights, kv = model.algo_flags()
    checks = builder_checks(builder_py)
    used = {p for c in checks["sm_checks"] for p in c["when_any"]} | {r["when"] for r in checks["plugin_rewrites"]}
    unknown = sorted(p for p in used if p and p not in model.predicates)
    if unknown:
        raise ValueError(f"builder.py uses QuantMode predicates this parser cannot read: {', '.join(unknown)}")
    return {"quant_algo_flags": weights, "kv_cache_quant_algo_flags": kv,
            "predicates": {k: model.predicates[k] for k in sorted(model.predicates)}, **checks}
