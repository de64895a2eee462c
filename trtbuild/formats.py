"""The quantization formats: ONE table of weight and KV-cache formats that everything else derives from.

A recipe's ``quantization.weights`` / ``quantization.kv_cache`` value is a key here. The schema's Literals,
the GPU catalog's support checks, the architecture catalog's format lists, the memory plan, the planner's
rules and fit suggestions, the checkpoint stage (ModelOpt preset, exported ``quant_algo``, expected
tensors) and the engine stage (FP8 context FMHA) all read these entries; none keeps its own list.
Adding a format is one entry below plus tests (``tests/unit/test_formats.py`` shows a test-only entry
flowing through schema, plan and memory).

What is NOT here: which (format, SM) ``trtllm-build`` refuses. That stays in the builder-refusal contract
fixture (``trtbuild/contracts/trtllm_1_2/builder_refusals.json``, derived from NVIDIA's builder.py);
:func:`builder_refused_sms` reads it through ``quant_algo``, so the SM range shown for a format is always
the fixture's.

Sources: TensorRT-LLM 1.2 precision matrix (facts/trtllm-1.2.md §4), ModelOpt 0.47 presets and export
(facts/modelopt-cpu.md), the checkpoint tensors checked in ``stages/checkpoint_layout.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scales = Literal["none", "per-tensor", "per-channel", "group", "block-16"]
"""How a quantized linear layer stores its scales: none (model dtype), one per tensor, one per output
channel, one per output channel and input group of ``awq_block_size`` (AWQ), one FP8 scale per 16
weights plus global scales (NVFP4)."""

AMPERE_SM = 80
"""The oldest SM trtbuild targets; formats with ``min_sm <= AMPERE_SM`` run on every catalog GPU."""

_ALL_FAMILIES = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma2"})


@dataclass(frozen=True)
class WeightFormat:
    """One recipe ``quantization.weights`` value."""

    name: str
    bits: int | None
    """Bits per stored weight element; None: the model dtype (unquantized)."""
    scales: Scales
    activations: bool
    """Activations are quantized too (W8A8 / W4A8 / FP8 / NVFP4), with a static activation scale."""
    precisions: frozenset[str]
    """GPU math precisions (``GpuSpec.precisions``) the engine needs for this format."""
    min_sm: int
    """Lowest SM whose kernels run the format on the engine path (TensorRT-LLM support matrix)."""
    calibrated: bool
    """Quantized by ModelOpt with calibration data (``mtq.quantize``); False: exported unquantized and
    (weight-only formats) quantized by trtllm-build."""
    modelopt_preset: str | None
    """ModelOpt ``mtq`` config name used by the checkpoint stage (calibrated formats only)."""
    quant_algo: str | None
    """``quantization.quant_algo`` of the TensorRT-LLM checkpoint config (QuantAlgo name)."""
    fp8_context_fmha: bool
    """The FP8 family: checkpoints whose engines keep FP8 context FMHA (trtllm-build 1.2)."""
    families: frozenset[str]
    """Architecture families (``ArchSpec.family``) with this format on the engine path."""
    checkpoint_dtype: tuple[str, ...] = ()
    """safetensors dtypes of the exported quantized weight (empty: the model dtype)."""

    def bytes_per_linear(self, out_features: int, in_features: int, dtype_bytes: int, block: int) -> int:
        """Bytes of one linear layer's weight plus its scales, as stored in the engine."""
        n = out_features * in_features
        if self.bits is None:
            return n * dtype_bytes
        packed = n * self.bits // 8
        act = 4 if self.activations else 0
        if self.scales == "per-tensor":
            return packed + 4 + act                                 # weight + activation scale (f32)
        if self.scales == "per-channel":
            scale = 4 if self.activations else dtype_bytes          # SmoothQuant keeps f32 scales
            return packed + out_features * scale + act
        if self.scales == "group":
            groups = -(-in_features // block)
            extra = 2 * 4 if self.activations else 0                # activation + second weight scale
            return packed + out_features * groups * dtype_bytes + in_features * dtype_bytes + extra
        if self.scales == "block-16":
            return packed + -(-n // 16) + 3 * 4                     # fp8 block scales + global scales
        raise ValueError(f"weight format {self.name!r}: no byte formula for scales {self.scales!r}")


@dataclass(frozen=True)
class KvFormat:
    """One recipe ``quantization.kv_cache`` value."""

    name: str
    bytes_per_element: int | None
    """None: the model dtype."""
    precisions: frozenset[str]
    min_sm: int
    kv_cache_quant_algo: str | None
    """``quantization.kv_cache_quant_algo`` of the TensorRT-LLM checkpoint config."""


def _w(name: str, bits: int | None, scales: Scales, *, activations: bool, precisions: set[str], min_sm: int,
       preset: str | None, algo: str | None, fp8: bool = False, families: frozenset[str] = _ALL_FAMILIES,
       ckpt: tuple[str, ...] = ()) -> WeightFormat:
    return WeightFormat(name, bits, scales, activations, frozenset(precisions), min_sm, preset is not None, preset,
                        algo, fp8, families, ckpt)


_DENSE_AWQ = frozenset({"llama", "mistral", "qwen2", "gemma2"})

WEIGHT_FORMATS: dict[str, WeightFormat] = {f.name: f for f in (
    _w("none", None, "none", activations=False, precisions=set(), min_sm=0, preset=None, algo=None),
    _w("fp8", 8, "per-tensor", activations=True, precisions={"fp8"}, min_sm=89, preset="FP8_DEFAULT_CFG",
       algo="FP8", fp8=True, ckpt=("F8_E4M3",)),
    _w("int4_awq", 4, "group", activations=False, precisions={"int4"}, min_sm=80, preset="INT4_AWQ_CFG",
       algo="W4A16_AWQ", families=_DENSE_AWQ, ckpt=("I8", "U8")),
    _w("w4a8_awq", 4, "group", activations=True, precisions={"fp8", "int4"}, min_sm=89,
       preset="W4A8_AWQ_BETA_CFG", algo="W4A8_AWQ", fp8=True,
       families=frozenset({"llama", "mistral", "gemma2"}), ckpt=("I8", "U8")),
    _w("int8_sq", 8, "per-channel", activations=True, precisions={"int8"}, min_sm=80,
       preset="INT8_SMOOTHQUANT_CFG", algo="W8A8_SQ_PER_CHANNEL", families=_DENSE_AWQ, ckpt=("I8",)),
    _w("nvfp4", 4, "block-16", activations=True, precisions={"nvfp4"}, min_sm=100, preset="NVFP4_DEFAULT_CFG",
       algo="NVFP4", fp8=True, families=frozenset({"llama", "mixtral", "qwen3"}), ckpt=("U8",)),
    _w("int8_wo", 8, "per-channel", activations=False, precisions={"int8"}, min_sm=80, preset=None,
       algo="W8A16", families=_ALL_FAMILIES - {"qwen3"}),
    _w("int4_wo", 4, "per-channel", activations=False, precisions={"int4"}, min_sm=80, preset=None,
       algo="W4A16", families=_ALL_FAMILIES - {"qwen3"}),
)}
"""Every weight format, in the order plans, errors and ``trtbuild gpus`` list them."""

KV_FORMATS: dict[str, KvFormat] = {f.name: f for f in (
    KvFormat("none", None, frozenset(), 0, None),
    KvFormat("fp8", 1, frozenset({"fp8"}), 89, "FP8"),
    KvFormat("int8", 1, frozenset({"int8"}), 80, "INT8"),
)}
"""Every KV-cache format (all architectures take each on the engine path)."""


def weight_format(name: str) -> WeightFormat:
    """The entry for ``name``; ValueError naming every format when there is none."""
    try:
        return WEIGHT_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown weight format {name!r}; expected one of {', '.join(WEIGHT_FORMATS)}") from None


def kv_format(name: str) -> KvFormat:
    try:
        return KV_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown KV-cache format {name!r}; expected one of {', '.join(KV_FORMATS)}") from None


def weight_names() -> tuple[str, ...]:
    return tuple(WEIGHT_FORMATS)


def kv_names() -> tuple[str, ...]:
    return tuple(KV_FORMATS)


def calibrated_weights() -> tuple[str, ...]:
    """Weight formats the checkpoint stage quantizes with ModelOpt and calibration data."""
    return tuple(n for n, f in WEIGHT_FORMATS.items() if f.calibrated)


def fp8_family() -> tuple[str, ...]:
    """Weight formats whose engines keep FP8 context FMHA (fp8, w4a8_awq, nvfp4)."""
    return tuple(n for n, f in WEIGHT_FORMATS.items() if f.fp8_context_fmha)


def fp8_family_algos() -> frozenset[str]:
    """The same family as checkpoint ``quant_algo`` names (what trtllm-build looks at)."""
    return frozenset(f.quant_algo for f in WEIGHT_FORMATS.values() if f.fp8_context_fmha and f.quant_algo)


def formats_for_family(family: str) -> frozenset[str]:
    """Weight formats valid on the engine path for an architecture family."""
    return frozenset(n for n, f in WEIGHT_FORMATS.items() if family in f.families)


def weight_bits(name: str, dtype_bytes: int) -> int:
    """Bits per stored weight element (the model dtype's for ``none``)."""
    bits = weight_format(name).bits
    return dtype_bytes * 8 if bits is None else bits


def builder_refused_sms(name: str) -> tuple[tuple[int, int, str], ...]:
    """(sm_min, sm_max, message) ranges where trtllm-build refuses weight format ``name`` (no KV
    quantization), read from the builder-refusal contract fixture, never written down here."""
    from trtbuild.contracts import load_fixture
    from trtbuild.contracts.trtllm import builder_refusal

    algo = weight_format(name).quant_algo
    out = []
    for check in load_fixture("builder_refusals").data["sm_checks"]:
        lo, hi = int(check.get("sm_min", 0)), int(check.get("sm_max", 10**6))
        refusal = builder_refusal(lo, algo, None)
        if refusal is not None and (refusal.sm_min, refusal.sm_max) == (lo, hi):
            out.append((lo, hi, refusal.message))
    return tuple(dict.fromkeys(out))


def quant_algo(weights: str) -> str | None:
    """The checkpoint ``quant_algo`` for recipe weights ``weights``."""
    return weight_format(weights).quant_algo


def kv_algo(kv_cache: str) -> str | None:
    """The checkpoint ``kv_cache_quant_algo`` for recipe ``kv_cache``."""
    return kv_format(kv_cache).kv_cache_quant_algo
