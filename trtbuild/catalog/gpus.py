"""The GPU catalog: every target ``--gpu`` accepts, with its SM, memory, bandwidth and precisions.

Memory is the nominal figure NVIDIA sells the part with (in GiB, which is what "80 GB" HBM means in
practice); B200 and GB200 list the capacity usable in HGX/DGX and NVL72 systems (180 and 186), not the
192 GB first announced. Bandwidth is the spec-sheet peak in GB/s. Precisions follow the TensorRT-LLM
support matrix (facts/trtllm-1.2.md §4): Ampere has no FP8, only Blackwell (SM100/103/120) has NVFP4.

The ``cpu`` entry is the reference target: it runs the HF checkpoint on CPU behind the same Triton
contract and is never an engine. Names are matched case-insensitively and ignore spaces, dashes,
underscores and a leading "NVIDIA"/"GeForce", so ``H100 SXM5``, ``h100_sxm`` and the nvidia-smi name
``NVIDIA H100 80GB HBM3`` all find the same entry.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from trtbuild.errors import UsageError
from trtbuild.formats import kv_format, weight_format

ALL_PRECISIONS = frozenset({"float32", "float16", "bfloat16", "fp8", "int8", "int4", "nvfp4"})
_AMPERE = frozenset({"float32", "float16", "bfloat16", "int8", "int4"})
_ADA_HOPPER = _AMPERE | {"fp8"}
_BLACKWELL = _ADA_HOPPER | {"nvfp4"}
_REFERENCE = frozenset({"float32", "float16", "bfloat16"})


@dataclass(frozen=True)
class GpuSpec:
    """One compile target: a GPU model (or the CPU reference)."""

    key: str
    """Canonical id, e.g. ``h100-sxm``."""
    name: str
    """Display name, e.g. ``H100 SXM``."""
    sm: int
    """Compute capability as an integer (9.0 → 90); 0 for the CPU reference."""
    memory_gib: float
    """Nominal device memory in GiB (0 for the CPU reference)."""
    bandwidth_gbs: float
    """Peak memory bandwidth in GB/s from NVIDIA's spec sheet (0 for the CPU reference)."""
    precisions: frozenset[str]
    """Math precisions TensorRT-LLM supports on this SM."""
    aliases: tuple[str, ...]
    """Other names users type for this target (the key always matches too)."""
    reference: bool = False
    """True only for the CPU reference target: never an engine."""
    notes: str = ""
    """Free-text caveats shown by ``trtbuild gpus``."""

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 2**30)

    def supports_weights(self, fmt: str) -> bool:
        """Whether recipe ``quantization.weights: fmt`` can run on this target (ValueError for an unknown one)."""
        spec = weight_format(fmt)
        return self._supports(spec.precisions, spec.min_sm)

    def supports_kv(self, fmt: str) -> bool:
        """Whether recipe ``quantization.kv_cache: fmt`` can run on this target (ValueError for an unknown one)."""
        spec = kv_format(fmt)
        return self._supports(spec.precisions, spec.min_sm)

    def _supports(self, needs: frozenset[str], min_sm: int) -> bool:
        if not needs:
            return True
        return not self.reference and self.sm >= min_sm and needs <= self.precisions


def _gpu(key: str, name: str, sm: int, mem: float, bw: float, precisions: frozenset[str],
         *aliases: str, notes: str = "") -> GpuSpec:
    return GpuSpec(key=key, name=name, sm=sm, memory_gib=float(mem), bandwidth_gbs=float(bw),
                   precisions=precisions, aliases=tuple(aliases), notes=notes)


_CATALOG: tuple[GpuSpec, ...] = (
    # Ampere
    _gpu("a10g", "A10G", 86, 24, 600, _AMPERE, "nvidia a10g"),
    _gpu("a10", "A10", 86, 24, 600, _AMPERE, "nvidia a10"),
    _gpu("a100-40gb", "A100 40GB SXM", 80, 40, 1555, _AMPERE,
         "a100-40gb-sxm", "a100-sxm4-40gb", "a100 40gb"),
    _gpu("a100-40gb-pcie", "A100 40GB PCIe", 80, 40, 1555, _AMPERE, "a100-pcie-40gb"),
    _gpu("a100-80gb", "A100 80GB SXM", 80, 80, 2039, _AMPERE,
         "a100", "a100-sxm", "a100-80gb-sxm", "a100-sxm4-80gb", "a100 80gb"),
    _gpu("a100-80gb-pcie", "A100 80GB PCIe", 80, 80, 1935, _AMPERE,
         "a100-pcie", "a100-pcie-80gb", "a100 80gb pcie"),
    # Ada
    _gpu("l4", "L4", 89, 24, 300, _ADA_HOPPER, "nvidia l4"),
    _gpu("l40s", "L40S", 89, 48, 864, _ADA_HOPPER, "nvidia l40s"),
    _gpu("rtx-4090", "GeForce RTX 4090", 89, 24, 1008, _ADA_HOPPER, "4090", "rtx4090", "rtx 4090"),
    # Hopper
    _gpu("h100-sxm", "H100 SXM", 90, 80, 3350, _ADA_HOPPER,
         "h100", "h100-sxm5", "h100 80gb hbm3", "h100-sxm5-80gb"),
    _gpu("h100-pcie", "H100 PCIe", 90, 80, 2000, _ADA_HOPPER, "h100-pcie-80gb"),
    _gpu("h100-nvl", "H100 NVL", 90, 94, 3900, _ADA_HOPPER, "h100 nvl 94gb"),
    _gpu("h200", "H200", 90, 141, 4800, _ADA_HOPPER, "h200-sxm", "h200-nvl", "h200 141gb hbm3e",
         notes="H200 NVL (PCIe) has the same memory and bandwidth."),
    _gpu("gh200", "GH200 96GB", 90, 96, 4000, _ADA_HOPPER, "gh200-96gb", "gh200 480gb",
         notes="The GPU of the original Grace Hopper superchip (96 GB HBM3)."),
    _gpu("gh200-144gb", "GH200 144GB", 90, 144, 4900, _ADA_HOPPER, "gh200 144g hbm3e", "gh200-hbm3e"),
    # Blackwell
    _gpu("b200", "B200", 100, 180, 8000, _BLACKWELL, "hgx-b200", "dgx-b200",
         notes="180 GB usable per GPU in HGX/DGX B200 (192 GB announced)."),
    _gpu("gb200", "GB200", 100, 186, 8000, _BLACKWELL, "gb200-nvl72",
         notes="Per GPU of a GB200 superchip (~186 GB usable, 192 GB announced)."),
    _gpu("b300", "B300", 103, 288, 8000, _BLACKWELL, "hgx-b300", "blackwell-ultra",
         notes="Blackwell Ultra: INT8 tensor throughput is greatly reduced versus B200."),
    _gpu("gb300", "GB300", 103, 288, 8000, _BLACKWELL, "gb300-nvl72"),
    _gpu("rtx-5090", "GeForce RTX 5090", 120, 32, 1792, _BLACKWELL, "5090", "rtx5090", "rtx 5090"),
    _gpu("rtx-pro-6000", "RTX PRO 6000 Blackwell", 120, 96, 1792, _BLACKWELL,
         "rtx-pro-6000-blackwell", "rtx pro 6000 blackwell workstation edition",
         "rtx pro 6000 blackwell server edition", "pro-6000"),
    # The CPU reference backend
    GpuSpec(key="cpu", name="CPU reference", sm=0, memory_gib=0.0, bandwidth_gbs=0.0,
            precisions=_REFERENCE, aliases=("reference", "cpu-reference"), reference=True,
            notes="Python-backend reference of the same Triton contract; never an engine."),
)

_PREFIXES = ("nvidia", "geforce")


def normalize_gpu_name(name: str) -> str:
    """Lower-case, drop spaces/dashes/underscores/dots and a leading "NVIDIA" / "GeForce"."""
    text = re.sub(r"[^a-z0-9]", "", name.lower())
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if text.startswith(prefix) and len(text) > len(prefix):
                text = text[len(prefix):]
                changed = True
    return text


def _build_index() -> dict[str, GpuSpec]:
    index: dict[str, GpuSpec] = {}
    for spec in _CATALOG:
        for alias in (spec.key, *spec.aliases):
            norm = normalize_gpu_name(alias)
            other = index.get(norm)
            if other is not None and other is not spec:  # a catalog bug, caught by the tests
                raise AssertionError(f"GPU alias {alias!r} names both {other.key} and {spec.key}")
            index[norm] = spec
    return index


_INDEX = _build_index()


def all_gpus() -> tuple[GpuSpec, ...]:
    """Every target, in catalog order (older to newer, the CPU reference last)."""
    return _CATALOG


def find_gpu(name: str) -> GpuSpec | None:
    """The target called ``name`` (key or alias, loosely spelled), or None."""
    return _INDEX.get(normalize_gpu_name(name))


def suggest_gpus(name: str, limit: int = 3) -> list[str]:
    """Names that look like ``name``, best first, at most one per catalog entry."""
    norm = normalize_gpu_name(name)
    if not norm:
        return []
    spelled: dict[str, tuple[str, GpuSpec]] = {}
    for spec in _CATALOG:
        for alias in (spec.key, *spec.aliases):
            spelled.setdefault(normalize_gpu_name(alias), (alias, spec))
    close = difflib.get_close_matches(norm, list(spelled), n=len(spelled), cutoff=0.6)
    close += [n for n in spelled if (n.startswith(norm) or norm.startswith(n)) and n not in close]
    out: list[str] = []
    seen: set[str] = set()
    for n in close:
        alias, spec = spelled[n]
        if spec.key not in seen:
            seen.add(spec.key)
            out.append(alias)
    return out[:limit]


def get_gpu(name: str) -> GpuSpec:
    """The target called ``name``; raises UsageError with suggestions when there is none."""
    spec = find_gpu(name)
    if spec is not None:
        return spec
    hints = suggest_gpus(name)
    text = f"unknown GPU {name!r}"
    if hints:
        text += " (did you mean " + " or ".join(repr(h) for h in hints) + "?)"
    text += "; run `trtbuild gpus` to list every supported target"
    raise UsageError(text)


def gpu_to_json(spec: GpuSpec) -> dict[str, Any]:
    """A stable, JSON-ready view of one target (used by ``trtbuild gpus --json`` and plan output)."""
    return {
        "key": spec.key,
        "name": spec.name,
        "sm": spec.sm,
        "memory_gib": spec.memory_gib,
        "bandwidth_gbs": spec.bandwidth_gbs,
        "precisions": sorted(spec.precisions),
        "aliases": list(spec.aliases),
        "reference": spec.reference,
    }
