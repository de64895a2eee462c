"""Typed views of the TensorRT-LLM 1.2 fixtures that trtbuild's planner, templates and lint consume.

Everything here is read from the JSON fixtures (never written down twice): which backend parameters must be
present, which values the backend accepts, which (quantization, SM) trtllm-build refuses, what it rewrites,
and the executor's rules for KV-retention ranges.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from trtbuild.contracts import DEFAULT_RELEASE, load_fixture
from trtbuild.contracts.parse_quant import holds

_INT = re.compile(r"^\s*[+-]?\d+")
_FLOAT = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INT_TYPES = ("int", "int32_t", "int64_t", "uint32_t", "uint64_t", "size_t", "SizeType32")


@dataclass(frozen=True)
class BackendParameter:
    name: str
    type: str
    required: bool
    """Read outside any try block: a missing key throws and the model fails to load."""
    default: Any
    accepted: tuple[str, ...] | None
    """The values the backend compares the string with; None = any value of the type."""
    invalid: str
    """What a value outside ``accepted`` does (warns and uses the default / the model fails to load)."""
    condition: str
    note: str
    source: str
    empty_is_unset: bool = False
    """The backend tests this string for emptiness and then treats it as not given."""

    def default_text(self) -> str:
        if self.default is not None:
            return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)
        return self.note or "unset"

    def parses(self, value: str, bools: dict[str, tuple[str, ...]]) -> bool:
        """Whether ``GetParameter<type>`` turns ``value`` into a value (otherwise it throws: default or fail)."""
        if self.type == "bool":
            return value in bools["true"] + bools["false"]
        if self.type in _INT_TYPES:
            return bool(_INT.match(value))
        if self.type == "float":
            return bool(_FLOAT.match(value))
        if self.type == "std::vector<int32_t>":
            return bool(value.strip()) and all(_INT.match(v) for v in value.split(","))
        return True


@functools.cache
def backend_parameters(release: str = DEFAULT_RELEASE) -> dict[str, BackendParameter]:
    fx = load_fixture("backend_parameters", release)
    out = {}
    for p in fx.data["parameters"]:
        out[p["name"]] = BackendParameter(
            name=p["name"], type=p["type"], required=bool(p["required"]), default=p.get("default"),
            accepted=tuple(p["accepted"]) if p.get("accepted") else None, invalid=p.get("invalid", ""),
            condition=p.get("condition", ""), note=p.get("note") or p.get("missing", ""),
            source=f"{p['file']}:{p['line']} ({p['function']})", empty_is_unset=bool(p.get("empty_is_unset")))
    return out


def required_parameters(release: str = DEFAULT_RELEASE) -> tuple[str, ...]:
    """Parameters the backend reads without a default: each must be present in config.pbtxt."""
    return tuple(n for n, p in backend_parameters(release).items() if p.required)


def required_one_of(release: str = DEFAULT_RELEASE) -> tuple[tuple[str, ...], ...]:
    """Groups of which at least one must be non-empty (e.g. gpt_model_path / encoder_model_path)."""
    return tuple(tuple(g) for g in load_fixture("backend_parameters", release).data.get("required_one_of", []))


def bool_spellings(release: str = DEFAULT_RELEASE) -> dict[str, tuple[str, ...]]:
    spell = load_fixture("backend_parameters", release).data["type_parsers"]["bool"]
    return {"true": tuple(spell["true"]), "false": tuple(spell["false"])}


def accepted_values(name: str, release: str = DEFAULT_RELEASE) -> tuple[str, ...]:
    """The values the backend accepts for string parameter ``name`` (KeyError if it checks none)."""
    p = backend_parameters(release)[name]
    if p.accepted is None:
        raise KeyError(f"the backend accepts any value for {name}")
    return p.accepted


def model_tensors(kind: str, release: str = DEFAULT_RELEASE) -> list[dict[str, Any]]:
    """``inputs`` or ``outputs`` of NVIDIA's tensorrt_llm config.pbtxt."""
    return list(load_fixture("request_tensors", release).data[kind])


def build_flags(release: str = DEFAULT_RELEASE) -> dict[str, dict[str, Any]]:
    return dict(load_fixture("trtllm_build_flags", release).data["flags"])


# ------------------------------------------------------------------------------------ builder refusals
@dataclass(frozen=True)
class Refusal:
    sm_min: int
    sm_max: int
    message: str
    error: str
    why: str
    """Which QuantMode predicate made the builder refuse (e.g. is_int4_weight_only)."""
    source: str


def quant_flags(quant_algo: str | None, kv_algo: str | None, release: str = DEFAULT_RELEASE) -> set[str]:
    """The QuantMode flags ``QuantMode.from_quant_algo(quant_algo, kv_algo)`` sets."""
    d = load_fixture("builder_refusals", release).data
    flags = set(d["quant_algo_flags"].get(quant_algo or "", []))
    if quant_algo and quant_algo not in d["quant_algo_flags"]:
        raise KeyError(f"unknown quant_algo {quant_algo!r}")
    return flags | set(d["kv_cache_quant_algo_flags"].get(kv_algo or "", []))


def builder_refusal(sm: int, quant_algo: str | None, kv_algo: str | None,
                    release: str = DEFAULT_RELEASE) -> Refusal | None:
    """Why ``trtllm-build`` (``builder.build``) refuses this quantization on SM ``sm``; None when it builds."""
    fx = load_fixture("builder_refusals", release)
    d = fx.data
    flags = quant_flags(quant_algo, kv_algo, release)
    src = next((s.path for s in fx.sources if s.path.endswith("builder.py")), "builder.py")
    for check in d["sm_checks"]:
        if not check.get("sm_min", 0) <= sm <= check.get("sm_max", 10**6):
            continue
        why = next((p for p in check["when_any"] if holds({"call": p}, flags, d["predicates"])), None)
        if why:
            return Refusal(check.get("sm_min", 0), check.get("sm_max", 10**6), check["message"], check["error"],
                           why, src)
    return None


def recorded_gemm_plugin(quant_algo: str | None, requested: str, release: str = DEFAULT_RELEASE) -> str:
    """The gemm_plugin trtllm-build records for ``requested`` (``disable`` = off) with this quant_algo."""
    d = load_fixture("builder_refusals", release).data
    flags = quant_flags(quant_algo, None, release)
    for rule in d["plugin_rewrites"]:
        if rule["field"] == "gemm_plugin" and holds({"call": rule["when"]}, flags, d["predicates"]) \
                and requested != rule["unless_gemm_plugin"]:
            return str(rule["value"])
    return requested


def plugins_refused_on(sm: int, release: str = DEFAULT_RELEASE) -> tuple[str, ...]:
    """Plugin options PluginConfig.validate() refuses on exactly SM ``sm``."""
    table = load_fixture("builder_refusals", release).data["plugin_sm_refusals"]["unsupported"]
    return tuple(table.get(str(sm), ()))


# ----------------------------------------------------------------------------------------- retention
@dataclass(frozen=True)
class RetentionRules:
    min_priority: int
    max_priority: int
    default_priority: int
    no_end: int
    no_expiry: int
    checks: tuple[tuple[str, str], ...]
    """(rule, message) in the order the executor applies them per range."""
    priority_message: str


@functools.cache
def retention_rules(release: str = DEFAULT_RELEASE) -> RetentionRules:
    d = load_fixture("kv_retention", release).data
    pr, sent = d["priorities"], d["tensors"]["sentinels"]
    return RetentionRules(
        min_priority=pr["kMinRetentionPriority"], max_priority=pr["kMaxRetentionPriority"],
        default_priority=pr["kDefaultRetentionPriority"], no_end=sent["kRetentionNoRangeEnd"],
        no_expiry=sent["kRetentionNoExpirationTime"],
        checks=tuple((c["rule"], c["message"]) for c in d["checks"]),
        priority_message=d["priority_check"]["message"] % (pr["kMinRetentionPriority"], pr["kMaxRetentionPriority"]))
