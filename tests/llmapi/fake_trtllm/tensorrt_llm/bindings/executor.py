"""TEST DOUBLE of tensorrt_llm.bindings.executor.KvCacheRetentionConfig (the llmapi_semantics fixture's
signature; the executor's range checks from the kv_retention fixture)."""

from __future__ import annotations

from datetime import timedelta

from trtbuild.contracts import load_fixture

_RULES = load_fixture("kv_retention").data


def _duration(value, name):
    if value is not None and not isinstance(value, timedelta):
        raise TypeError(f"{name}: expected datetime.timedelta or None, got {type(value).__name__}")
    return value


def _priority(value):
    low, high = _RULES["priorities"]["kMinRetentionPriority"], _RULES["priorities"]["kMaxRetentionPriority"]
    if not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"Invalid priority value. Must be between {low} and {high}")
    return value


class KvCacheRetentionConfig:
    class TokenRangeRetentionConfig:
        def __init__(self, token_start, token_end, priority, duration_ms=None):
            if not isinstance(token_start, int) or not (token_end is None or isinstance(token_end, int)):
                raise TypeError("token_start: int and token_end: int | None are required")
            self.token_start, self.token_end = token_start, token_end
            self.priority = _priority(priority)
            self.duration_ms = _duration(duration_ms, "duration_ms")

        def __repr__(self):
            ms = None if self.duration_ms is None else int(self.duration_ms / timedelta(milliseconds=1))
            return f"({self.token_start}, {self.token_end}, {self.priority}, {ms})"

    def __init__(self, token_range_retention_configs, decode_retention_priority=35, decode_duration_ms=None,
                 transfer_mode="DRAM", directory=None):
        ranges = sorted(token_range_retention_configs, key=lambda r: r.token_start)
        for i, r in enumerate(ranges):
            if not isinstance(r, KvCacheRetentionConfig.TokenRangeRetentionConfig):
                raise TypeError("token_range_retention_configs holds TokenRangeRetentionConfig objects")
            last = i == len(ranges) - 1
            if r.token_end is None and not last:
                raise ValueError("Invalid use of end indicator.")
            if r.token_end is not None and r.token_start >= r.token_end:
                raise ValueError("Range must have a positive, non-zero length.")
            if not last and (r.token_end is None or r.token_end > ranges[i + 1].token_start):
                raise ValueError("Token ranges must be non-overlapping.")
        self.token_range_retention_configs = ranges
        self.decode_retention_priority = _priority(decode_retention_priority)
        self.decode_duration_ms = _duration(decode_duration_ms, "decode_duration_ms")

    def __repr__(self):
        ms = None if self.decode_duration_ms is None else int(self.decode_duration_ms / timedelta(milliseconds=1))
        return f"KvCacheRetentionConfig({self.token_range_retention_configs}, {self.decode_retention_priority}, {ms})"
