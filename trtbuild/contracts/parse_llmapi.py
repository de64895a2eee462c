"""Facts about TensorRT-LLM's LLM API (PyTorch backend), read from its Python sources with :mod:`ast`.

* :func:`llm_args` — ``tensorrt_llm/llmapi/llm_args.py``: every pydantic config class (fields: annotation,
  default, bounds, status, alias), the enums, and the keyword arguments ``LLM(...)`` accepts with the
  PyTorch backend (``TorchLlmArgs`` = its own fields over ``BaseLlmArgs``'s; pydantic with
  ``extra="forbid"``, and ``BaseLLM.__init__`` refuses any other key).
* :func:`sampling_params` — ``tensorrt_llm/sampling_params.py``: the ``SamplingParams`` dataclass fields a
  caller may pass (``init=False`` and underscore fields excluded).
* :func:`triton_model` — NVIDIA's ``triton_backend/all_models/llmapi`` model: its config.pbtxt tensors and
  the keys of its model.yaml (``triton_config`` for Triton, everything else for ``LLM(...)``).

Nothing is imported from TensorRT-LLM; annotations are kept as source text (``Optional[int]``) and read by
:mod:`trtbuild.contracts.llmapi`.
"""

from __future__ import annotations

import ast
from typing import Any

import yaml

from trtbuild.contracts.parse_backend import model_tensors

ENUM_BASES = ("StrEnum", "Enum", "IntEnum")
FIELD_BOUNDS = ("ge", "gt", "le", "lt", "min_length", "max_length")
LLM_CLASS = "TorchLlmArgs"
"""The args class ``LLM(...)`` validates with for the PyTorch backend (``backend="pytorch"``)."""


def _const(node: ast.expr | None) -> Any:
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError):
        return None


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_field_call(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in \
        ("Field", "PydanticField")


def _default(value: ast.expr | None) -> dict[str, Any]:
    """``{"required": True}``, ``{"default": <literal>}``, ``{"default_expr": "Enum.X"}`` or
    ``{"default_factory": "Name"}`` for the value side of a field declaration."""
    if value is None:
        return {"required": True}
    if _is_field_call(value):
        assert isinstance(value, ast.Call)
        factory = _kw(value, "default_factory")
        if factory is not None:
            return {"default_factory": ast.unparse(factory)}
        node = value.args[0] if value.args else _kw(value, "default")
        if node is None or (isinstance(node, ast.Constant) and node.value is Ellipsis):
            return {"required": True}
        value = node
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field":  # dataclasses.field(...)
        return {"default": _const(_kw(value, "default"))}
    literal = _const(value)
    if literal is not None or (isinstance(value, ast.Constant) and value.value is None):
        return {"default": literal}
    return {"default_expr": ast.unparse(value)}


def _field(node: ast.AnnAssign) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": ast.unparse(node.annotation), **_default(node.value)}
    if _is_field_call(node.value):
        assert isinstance(node.value, ast.Call)
        for bound in FIELD_BOUNDS:
            value = _const(_kw(node.value, bound))
            if value is not None:
                spec[bound] = value
        for key in ("status", "alias", "deprecated"):
            value = _const(_kw(node.value, key))
            if isinstance(value, str):
                spec[key] = value
    return spec


def _bases(cls: ast.ClassDef) -> list[str]:
    return [ast.unparse(b).split("[")[0] for b in cls.bases]


def _enum(cls: ast.ClassDef) -> dict[str, Any]:
    members = {}
    for node in cls.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            members[node.targets[0].id] = _const(node.value)
    return members


def _fields(cls: ast.ClassDef) -> dict[str, dict[str, Any]]:
    out = {}
    for node in cls.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
            if name.startswith("_") or name == "model_config" or ast.unparse(node.annotation).startswith("ClassVar"):
                continue
            if isinstance(node.value, ast.Call) and getattr(node.value.func, "id", "") == "PrivateAttr":
                continue
            out[name] = _field(node)
    return out


def llm_args(text: str) -> dict[str, Any]:
    """Config classes, enums and the ``LLM(...)`` keyword arguments of ``llm_args.py``."""
    tree = ast.parse(text)
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    enums = {c.name: _enum(c) for c in classes if any(b in ENUM_BASES for b in _bases(c))}
    bases = {c.name: _bases(c) for c in classes if c.name not in enums}
    own = {c.name: _fields(c) for c in classes if c.name not in enums}
    models = {name: fields for name, fields in own.items() if fields}

    def merged(name: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for base in bases[name]:
            if base in models:
                out.update(merged(base))
        out.update(models[name])
        return out

    if LLM_CLASS not in models:
        raise ValueError(f"no class {LLM_CLASS} in the source")
    fields = merged(LLM_CLASS)
    aliases = sorted(f["alias"] for f in fields.values() if f.get("alias") and f["alias"] not in fields)
    return {
        "llm_class": LLM_CLASS,
        "llm_fields": fields,
        "llm_aliases": aliases,
        "classes": {name: {"bases": bases[name], "fields": merged(name)} for name in sorted(models)},
        "enums": dict(sorted(enums.items())),
    }


def sampling_params(text: str) -> dict[str, Any]:
    """The keyword arguments ``SamplingParams(...)`` takes (a ``kw_only`` dataclass) and its defaults."""
    tree = ast.parse(text)
    cls = next((n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "SamplingParams"), None)
    if cls is None:
        raise ValueError("no class SamplingParams in the source")
    decorators = [ast.unparse(d) for d in cls.decorator_list]
    fields = {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        value = node.value
        no_init = isinstance(value, ast.Call) and getattr(value.func, "id", "") == "field" and \
            _const(_kw(value, "init")) is False
        if name.startswith("_") or no_init:
            continue
        fields[name] = {"type": ast.unparse(node.annotation), **_default(value)}
    checks = []
    for n in ast.walk(cls):
        if isinstance(n, ast.If) and n.body and isinstance(n.body[0], ast.Raise) and n.body[0].exc is not None:
            checks.append({"when": ast.unparse(n.test), "message": ast.unparse(n.body[0].exc)})
    return {"class": "SamplingParams", "decorators": decorators, "fields": fields, "validate": checks}


def triton_model(config_pbtxt: str, model_yaml: str) -> dict[str, Any]:
    """NVIDIA's llmapi Triton model: its tensors and what its model.yaml configures."""
    tensors = model_tensors(config_pbtxt)
    loaded = yaml.safe_load(model_yaml) or {}
    if not isinstance(loaded, dict):
        raise ValueError("model.yaml is not a mapping")
    triton = loaded.get("triton_config") or {}
    return {
        "inputs": tensors["inputs"],
        "outputs": tensors["outputs"],
        "model_yaml": {
            "llm_keys": sorted(k for k in loaded if k != "triton_config"),
            "llm_values": {k: v for k, v in sorted(loaded.items()) if k != "triton_config"},
            "triton_config_keys": sorted(triton),
            "triton_config_values": dict(sorted(triton.items())),
        },
    }
