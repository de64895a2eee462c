"""The GPU catalog: names users type, SM/memory/bandwidth facts, precision gates, error messages."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trtbuild.catalog.gpus import (
    ALL_PRECISIONS,
    all_gpus,
    find_gpu,
    get_gpu,
    gpu_to_json,
    normalize_gpu_name,
    suggest_gpus,
)
from trtbuild.errors import UsageError
from trtbuild.formats import KV_FORMATS, WEIGHT_FORMATS

# What people type → the entry it must select.
SPELLINGS = {
    "h100": "h100-sxm",
    "H100": "h100-sxm",
    "h100-sxm": "h100-sxm",
    "h100sxm": "h100-sxm",
    "H100 SXM5": "h100-sxm",
    "h100_sxm": "h100-sxm",
    "NVIDIA H100 80GB HBM3": "h100-sxm",  # nvidia-smi's name for the SXM part
    "h100-pcie": "h100-pcie",
    "NVIDIA H100 PCIe": "h100-pcie",
    "h100-nvl": "h100-nvl",
    "a100": "a100-80gb",
    "a100-80gb": "a100-80gb",
    "NVIDIA A100-SXM4-80GB": "a100-80gb",
    "a100-40gb": "a100-40gb",
    "A100-SXM4-40GB": "a100-40gb",
    "NVIDIA A100-PCIE-40GB": "a100-40gb-pcie",
    "NVIDIA A100 80GB PCIe": "a100-80gb-pcie",
    "a10g": "a10g",
    "NVIDIA A10G": "a10g",
    "l4": "l4",
    "L40S": "l40s",
    "4090": "rtx-4090",
    "rtx4090": "rtx-4090",
    "NVIDIA GeForce RTX 4090": "rtx-4090",
    "h200": "h200",
    "gh200": "gh200",
    "NVIDIA GH200 480GB": "gh200",
    "gh200-144gb": "gh200-144gb",
    "b200": "b200",
    "gb200": "gb200",
    "b300": "b300",
    "5090": "rtx-5090",
    "RTX 5090": "rtx-5090",
    "rtx-pro-6000": "rtx-pro-6000",
    "RTX PRO 6000 Blackwell": "rtx-pro-6000",
    "cpu": "cpu",
    "CPU": "cpu",
}

# key → (sm, nominal GiB, GB/s) from NVIDIA spec sheets and facts/trtllm-1.2.md §4.
FACTS = {
    "a10g": (86, 24, 600),
    "l4": (89, 24, 300),
    "l40s": (89, 48, 864),
    "rtx-4090": (89, 24, 1008),
    "a100-40gb": (80, 40, 1555),
    "a100-40gb-pcie": (80, 40, 1555),
    "a100-80gb": (80, 80, 2039),
    "a100-80gb-pcie": (80, 80, 1935),
    "h100-sxm": (90, 80, 3350),
    "h100-pcie": (90, 80, 2000),
    "h100-nvl": (90, 94, 3900),
    "h200": (90, 141, 4800),
    "gh200": (90, 96, 4000),
    "gh200-144gb": (90, 144, 4900),
    "b200": (100, 180, 8000),
    "gb200": (100, 186, 8000),
    "b300": (103, 288, 8000),
    "rtx-5090": (120, 32, 1792),
    "rtx-pro-6000": (120, 96, 1792),
}


@pytest.mark.parametrize(("typed", "key"), sorted(SPELLINGS.items()))
def test_user_spellings_select_the_right_gpu(typed: str, key: str) -> None:
    assert get_gpu(typed).key == key
    assert find_gpu(typed) is get_gpu(typed)


@pytest.mark.parametrize(("key", "facts"), sorted(FACTS.items()))
def test_sm_memory_and_bandwidth(key: str, facts: tuple[int, int, int]) -> None:
    spec = get_gpu(key)
    assert (spec.sm, spec.memory_gib, spec.bandwidth_gbs) == facts
    assert spec.memory_bytes == facts[1] * 2**30
    assert not spec.reference


def test_every_key_and_alias_resolves_to_its_own_entry() -> None:
    for spec in all_gpus():
        for alias in (spec.key, *spec.aliases):
            assert find_gpu(alias) is spec, alias


def test_keys_unique_and_catalog_order_is_stable() -> None:
    keys = [g.key for g in all_gpus()]
    assert len(keys) == len(set(keys))
    assert keys[-1] == "cpu"
    assert keys.index("a100-80gb") < keys.index("h100-sxm") < keys.index("b200")
    assert all_gpus() == all_gpus()


def test_cpu_reference_target() -> None:
    cpu = get_gpu("cpu")
    assert cpu.reference and cpu.name == "CPU reference"
    assert (cpu.sm, cpu.memory_gib, cpu.memory_bytes) == (0, 0, 0)
    assert cpu.precisions == {"float32", "float16", "bfloat16"}
    assert [g.key for g in all_gpus() if g.reference] == ["cpu"]
    assert cpu.supports_weights("none") and cpu.supports_kv("none")
    assert not any(cpu.supports_weights(f) for f in WEIGHT_FORMATS if f != "none")
    assert not any(cpu.supports_kv(f) for f in KV_FORMATS if f != "none")


def test_precisions_follow_the_architecture() -> None:
    for spec in all_gpus():
        assert spec.precisions <= ALL_PRECISIONS
        if spec.reference:
            continue
        assert {"float16", "bfloat16", "int8", "int4"} <= spec.precisions
        assert ("fp8" in spec.precisions) == (spec.sm >= 89), spec.key
        assert ("nvfp4" in spec.precisions) == (spec.sm >= 100), spec.key


@pytest.mark.parametrize(
    ("gpu", "allowed"),
    [
        ("a100", {"none", "int4_awq", "int8_sq", "int8_wo", "int4_wo"}),
        ("a10g", {"none", "int4_awq", "int8_sq", "int8_wo", "int4_wo"}),
        ("l4", {"none", "fp8", "int4_awq", "w4a8_awq", "int8_sq", "int8_wo", "int4_wo"}),
        ("h100", {"none", "fp8", "int4_awq", "w4a8_awq", "int8_sq", "int8_wo", "int4_wo"}),
        ("b200", set(WEIGHT_FORMATS)),
        ("rtx-5090", set(WEIGHT_FORMATS)),
    ],
)
def test_weight_formats_by_gpu(gpu: str, allowed: set[str]) -> None:
    spec = get_gpu(gpu)
    assert {f for f in WEIGHT_FORMATS if spec.supports_weights(f)} == allowed


def test_kv_formats_by_gpu() -> None:
    assert {f for f in KV_FORMATS if get_gpu("a100").supports_kv(f)} == {"none", "int8"}
    assert {f for f in KV_FORMATS if get_gpu("l40s").supports_kv(f)} == {"none", "fp8", "int8"}
    assert {f for f in KV_FORMATS if get_gpu("gb200").supports_kv(f)} == {"none", "fp8", "int8"}


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="int3"):
        get_gpu("h100").supports_weights("int3")
    with pytest.raises(ValueError, match="fp4"):
        get_gpu("h100").supports_kv("fp4")


def test_unknown_gpu_suggests_close_names_and_the_list_command() -> None:
    with pytest.raises(UsageError) as info:
        get_gpu("h10")
    message = str(info.value)
    assert "'h10'" in message
    assert "did you mean 'h100'" in message
    assert "trtbuild gpus" in message
    assert info.value.exit_code == 2


def test_unknown_gpu_without_any_close_match() -> None:
    with pytest.raises(UsageError) as info:
        get_gpu("zzzz")
    assert "did you mean" not in str(info.value)
    assert "trtbuild gpus" in str(info.value)


def test_suggestions_name_each_gpu_once() -> None:
    hints = suggest_gpus("h10")
    assert hints[0] == "h100"
    assert len({get_gpu(h).key for h in hints}) == len(hints)
    assert suggest_gpus("b20") == ["b200", "gb200"]
    assert suggest_gpus("") == []


def test_find_gpu_returns_none_for_unknown_names() -> None:
    assert find_gpu("v100") is None
    assert find_gpu("") is None
    assert find_gpu("nvidia") is None


def test_gpu_to_json_is_stable_and_serialisable() -> None:
    data = gpu_to_json(get_gpu("h100"))
    assert data == {
        "key": "h100-sxm",
        "name": "H100 SXM",
        "sm": 90,
        "memory_gib": 80.0,
        "bandwidth_gbs": 3350.0,
        "precisions": ["bfloat16", "float16", "float32", "fp8", "int4", "int8"],
        "aliases": list(get_gpu("h100").aliases),
        "reference": False,
    }
    assert json.loads(json.dumps([gpu_to_json(g) for g in all_gpus()]))[-1]["reference"] is True


def test_specs_are_frozen_and_hashable() -> None:
    spec = get_gpu("l4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.sm = 90  # type: ignore[misc]
    assert len({spec, get_gpu("nvidia l4")}) == 1


def test_normalisation() -> None:
    assert normalize_gpu_name(" NVIDIA  H100_SXM-5 ") == "h100sxm5"
    assert normalize_gpu_name("NVIDIA GeForce RTX 4090") == "rtx4090"


_SEPARATORS = st.sampled_from(["", " ", "-", "_", "  "])


@given(data=st.data())
def test_any_case_and_separators_resolve_the_same_entry(data: st.DataObject) -> None:
    spec = data.draw(st.sampled_from(all_gpus()))
    alias = data.draw(st.sampled_from((spec.key, *spec.aliases)))
    chars = [c for c in re.sub(r"[^A-Za-z0-9]", "", alias)]
    mangled = ""
    for c in chars:
        mangled += data.draw(_SEPARATORS) + (c.upper() if data.draw(st.booleans()) else c.lower())
    assert find_gpu(mangled) is spec
