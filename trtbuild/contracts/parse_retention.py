"""KV-cache retention: how the executor validates token ranges, and how the backend reads the tensors.

Sources: ``cpp/tensorrt_llm/executor/kvCacheRetentionConfig.cpp`` (the ``KvCacheRetentionConfig``
constructor: sort by start, then per range the checks that throw ``std::invalid_argument``; the
``TokenRangeRetentionConfig`` priority check; the VALID/INVALID examples in its comment),
``cpp/include/tensorrt_llm/executor/executor.h`` (priority bounds and default) and the backend's
``utils.cc`` (``getKvCacheRetentionConfigFromTensors``: which tensors, the -1 sentinels, the length checks).
"""

from __future__ import annotations

import re
from typing import Any

from trtbuild.contracts.cpp_source import CppSource, joined_literals

_CHECKS = (
    # (rule id, the condition as written in the source, what it means) — matched against the source text;
    # a check the source no longer has is reported missing by the parser, a new throw is reported unknown.
    ("open_end_not_last", r"!entry\.tokenEnd\.has_value\(\)\s*&&\s*i\s*!=\s*numRanges\s*-\s*1",
     "a range without an end (to the end of the sequence) is not the last one after sorting"),
    ("negative_start", r"entry\.tokenStart\s*<\s*0", "a range starts before token 0"),
    ("empty_range", r"entry\.tokenEnd\.has_value\(\)\s*&&\s*entry\.tokenStart\s*>=\s*entry\.tokenEnd",
     "a range's end is not after its start"),
    ("overlap", r"\*entry\.tokenEnd\s*>\s*mTokenRangeRetentionConfigs\[i\s*\+\s*1\]\.tokenStart",
     "a range ends after the next one (sorted by start) begins"),
)


def validation(cpp: str) -> dict[str, Any]:
    """The constructor's checks, in the order the source applies them, with their messages."""
    src = CppSource(cpp)
    text = src.text
    ctor = re.search(r"KvCacheRetentionConfig::KvCacheRetentionConfig\(", text)
    if ctor is None:
        raise ValueError("no KvCacheRetentionConfig constructor in the source")
    body = text[ctor.end():]
    sort = re.search(r"std::sort\([^;]*?return\s+x\.(\w+)\s*<\s*y\.(\w+)", body, re.DOTALL)
    checks = []
    for m in re.finditer(r"if\s*\(([^{]*?)\)\s*\{\s*throw std::invalid_argument\(([^;]*)\);", body):
        cond, message = " ".join(m.group(1).split()), joined_literals(m.group(2))
        rule = next((rid for rid, pattern, _ in _CHECKS if re.search(pattern, cond)), None)
        meaning = next((what for rid, _, what in _CHECKS if rid == rule), None)
        checks.append({"rule": rule or "unknown", "condition": cond, "message": message,
                       "meaning": meaning or "unrecognised check: update trtbuild's port"})
    priority = re.search(r"TLLM_CHECK_WITH_INFO\(\s*priority\s*>=\s*([\w:]+)\s*&&\s*priority\s*<=\s*([\w:]+)\s*,"
                         r"\s*(\"[^;]*?\")\s*,", text, re.DOTALL)
    examples = [{"ranges": _ranges(m.group(2)), "valid": m.group(1) == "VALID"}
                for m in re.finditer(r"//\s*(VALID|INVALID):\s*(\[.*\])", cpp)]
    return {
        "sort_key": sort.group(1) if sort else None,
        "checks": checks,
        "priority_check": {"min": priority.group(1).split("::")[-1], "max": priority.group(2).split("::")[-1],
                           "message": joined_literals(priority.group(3))} if priority else None,
        "examples": examples,
    }


def _ranges(text: str) -> list[list[int | None]]:
    return [[int(a), None if b.strip() == "None" else int(b)]
            for a, b in re.findall(r"\(\s*(\d+)\s*,\s*(None|\d+)\s*\)", text)]


def priority_constants(executor_h: str) -> dict[str, int]:
    """``kMinRetentionPriority`` / ``kMaxRetentionPriority`` / ``kDefaultRetentionPriority``."""
    found = re.findall(r"static constexpr RetentionPriority (k\w+RetentionPriority)\s*=\s*(-?\d+);", executor_h)
    return {name: int(value) for name, value in found}


def tensor_rules(utils_cc: str) -> dict[str, Any]:
    """How ``getKvCacheRetentionConfigFromTensors`` reads the request's retention inputs."""
    src = CppSource(utils_cc)
    text = src.text
    start = text.find("getKvCacheRetentionConfigFromTensors(InputTensors")
    if start == -1:
        raise ValueError("no getKvCacheRetentionConfigFromTensors in utils.cc")
    end = text.find("\n}\n", start)
    body = text[start:end]
    sentinels = {name: int(v) for name, v in re.findall(r"auto constexpr (kRetention\w+)\s*=\s*(-?\d+);", text)}
    messages = [joined_literals(m.group(1)) for m in re.finditer(r"throw std::runtime_error\(([^;]*)\);", body)]
    active = re.search(r"inputsTensors\.count\(InputFieldsNames::(\w+)\)", body)
    decode = re.search(r"decodePriority\s*=\s*([\w:]+);", body)
    return {
        "active_when_present": active.group(1) if active else None,
        "sentinels": sentinels,
        "length_errors": messages,
        "decode_priority_default": decode.group(1).split("::")[-1] if decode else None,
        "per_row": ("the backend slices every input of a multi-row request row by row at the same width "
                    "(splitBatchInputsTensors strips padding from input_ids only), so every row's ranges reach "
                    "the executor as given") if "splitBatchInputsTensors" in text else None,
    }
