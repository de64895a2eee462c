"""Typed views of the LLM-API fixtures, and a checker that says whether keyword arguments would be accepted.

    llm_fields()                     name -> field spec of what ``LLM(...)`` takes (PyTorch backend)
    check_llm_kwargs(kwargs)         problems pydantic (``extra="forbid"``) / ``BaseLLM.__init__`` would raise
    check_config(name, kwargs)       the same for one config class (``KvCacheConfig``, ``SchedulerConfig``)
    sampling_fields()                name -> field spec of ``SamplingParams(...)``
    check_sampling_kwargs(kwargs)    problems ``SamplingParams(**kwargs)`` would raise (unknown name, type)
    retention_init()                 the KvCacheRetentionConfig / TokenRangeRetentionConfig arguments

Types are checked from the annotation text the fixture records (``Optional[int]``, ``Literal['auto',
'slow']``, a config class name, an enum name) the way pydantic's lax mode would take a Python value: a dict
for a config class (its own fields, extra keys refused), an enum's member name or value for an enum, ints
for floats, no bools for ints. A type the fixture does not describe (e.g. ``LoraConfig``) accepts only None,
so a mapping that starts emitting one fails its test until the fixture grows.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

from trtbuild.contracts import DEFAULT_RELEASE, load_fixture

_BOUNDED = {"NonNegativeInt": ("int", {"ge": 0}), "PositiveInt": ("int", {"gt": 0}),
            "NonNegativeFloat": ("float", {"ge": 0}), "PositiveFloat": ("float", {"gt": 0}),
            "StrictInt": ("int", {})}
_ANY = ("Any", "object")


@functools.cache
def _args(release: str) -> dict[str, Any]:
    return load_fixture("llmapi_args", release).data


def llm_fields(release: str = DEFAULT_RELEASE) -> dict[str, dict[str, Any]]:
    return dict(_args(release)["llm_fields"])


def llm_extra_keys(release: str = DEFAULT_RELEASE) -> tuple[str, ...]:
    """Keys ``BaseLLM.__init__`` accepts besides the args class's fields."""
    extra = load_fixture("llmapi_semantics", release).data["llm_constructor"]["extra_keys"]
    return tuple(dict.fromkeys([*extra, *_args(release)["llm_aliases"]]))


def config_class(name: str, release: str = DEFAULT_RELEASE) -> dict[str, dict[str, Any]]:
    """Fields of a config class of llm_args.py (``KvCacheConfig``, ``SchedulerConfig``, ...)."""
    return dict(_args(release)["classes"][name]["fields"])


def enum_values(name: str, release: str = DEFAULT_RELEASE) -> dict[str, Any]:
    return dict(_args(release)["enums"][name])


def sampling_fields(release: str = DEFAULT_RELEASE) -> dict[str, dict[str, Any]]:
    return dict(load_fixture("llmapi_sampling_params", release).data["fields"])


def retention_init(release: str = DEFAULT_RELEASE) -> dict[str, Any]:
    return dict(load_fixture("llmapi_semantics", release).data["kv_cache_retention_config"])


def triton_model(release: str = DEFAULT_RELEASE) -> dict[str, Any]:
    """NVIDIA's llmapi Triton model (config.pbtxt tensors, model.yaml keys)."""
    return dict(load_fixture("llmapi_triton_model", release).data)


# -------------------------------------------------------------------------------------------- checking
def _name(node: ast.expr) -> str:
    return ast.unparse(node).split(".")[-1]


def _elts(node: ast.expr) -> list[ast.expr]:
    return list(node.elts) if isinstance(node, ast.Tuple) else [node]


class _Checker:
    def __init__(self, release: str):
        data = _args(release)
        self.classes = {k: v["fields"] for k, v in data["classes"].items()}
        self.enums = data["enums"]

    def value(self, type_text: str, value: Any, where: str, bounds: dict[str, Any] | None = None) -> list[str]:
        problems = self._check(ast.parse(type_text, mode="eval").body, value, where)
        if not problems and bounds and isinstance(value, (int, float)) and not isinstance(value, bool):
            problems += _bounds(value, bounds, where)
        return problems

    def fields(self, fields: dict[str, dict[str, Any]], kwargs: dict[str, Any], where: str,
               extra: tuple[str, ...] = ()) -> list[str]:
        out = []
        for key, value in kwargs.items():
            spec = fields.get(key)
            if spec is None:
                if key not in extra:
                    out.append(f"{where}{key}: not an argument ({where.rstrip('.') or 'the class'} has no such field)")
                continue
            out += self.value(spec["type"], value, f"{where}{key}", spec)
        return out

    def _check(self, node: ast.expr, value: Any, where: str) -> list[str]:
        if isinstance(node, ast.Subscript):
            head, inner = _name(node.value), _elts(node.slice)
            if head == "Optional":
                return [] if value is None else self._check(inner[0], value, where)
            if head == "Union":
                tries = [self._check(t, value, where) for t in inner]
                return [] if any(not t for t in tries) else [f"{where}: {value!r} is none of {ast.unparse(node)}"]
            if head == "Literal":
                allowed = [ast.literal_eval(e) for e in inner]
                return [] if value in allowed else [f"{where}: {value!r} is not one of {allowed}"]
            if head in ("List", "list", "Sequence", "Tuple", "tuple"):
                if not isinstance(value, (list, tuple)):
                    return [f"{where}: expected a list, got {type(value).__name__}"]
                return [p for i, v in enumerate(value) for p in self._check(inner[0], v, f"{where}[{i}]")]
            if head in ("Dict", "dict", "Mapping"):
                return [] if isinstance(value, dict) else [f"{where}: expected a mapping, got {type(value).__name__}"]
            if head == "Annotated":
                return self._check(inner[0], value, where)
            return self._check(node.value, value, where)
        name = _name(node)
        if name in _ANY:
            return []
        if name in _BOUNDED:
            base, bounds = _BOUNDED[name]
            return self._scalar(base, value, where) or _bounds(value, bounds, where)
        if name in ("int", "float", "str", "bool", "Path"):
            return self._scalar(name, value, where)
        if name in self.enums:
            members = self.enums[name]
            ok = value in members or value in members.values()
            return [] if ok else [f"{where}: {value!r} is not a {name} ({', '.join(members)})"]
        if name in self.classes:
            if not isinstance(value, dict):
                return [f"{where}: expected the fields of {name} as a mapping, got {type(value).__name__}"]
            return self.fields(self.classes[name], value, where + ".")
        return [] if value is None else [f"{where}: type {name} is not described by the fixture; only None can be checked"]

    @staticmethod
    def _scalar(kind: str, value: Any, where: str) -> list[str]:
        ok = {"int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool),
              "str": isinstance(value, str), "Path": isinstance(value, str),
              "bool": isinstance(value, bool)}[kind]
        return [] if ok else [f"{where}: expected {kind}, got {type(value).__name__} {value!r}"]


def _bounds(value: Any, bounds: dict[str, Any], where: str) -> list[str]:
    tests = {"ge": lambda b: value >= b, "gt": lambda b: value > b, "le": lambda b: value <= b, "lt": lambda b: value < b}
    return [f"{where}: {value!r} must be {op} {b}" for op, b in bounds.items() if op in tests and not tests[op](b)]


def check_llm_kwargs(kwargs: dict[str, Any], release: str = DEFAULT_RELEASE) -> list[str]:
    """What ``LLM(**kwargs)`` (PyTorch backend) would refuse: unknown keys, wrong types, missing model."""
    fields = llm_fields(release)
    out = _Checker(release).fields(fields, kwargs, "", llm_extra_keys(release))
    out += [f"{name}: required" for name, spec in fields.items() if spec.get("required") and name not in kwargs]
    if "backend" in kwargs and kwargs["backend"] != "pytorch":
        out.append(f"backend: {kwargs['backend']!r} selects another args class than the PyTorch backend's")
    return out


def check_config(name: str, kwargs: dict[str, Any], release: str = DEFAULT_RELEASE) -> list[str]:
    """What the config class ``name`` of llm_args.py (``KvCacheConfig``, ...) would refuse for ``kwargs``."""
    return _Checker(release).fields(config_class(name, release), kwargs, f"{name}.")


def check_sampling_kwargs(kwargs: dict[str, Any], release: str = DEFAULT_RELEASE) -> list[str]:
    """What ``SamplingParams(**kwargs)`` would refuse (unknown keyword, wrong type)."""
    return _Checker(release).fields(sampling_fields(release), kwargs, "")
