"""The architecture catalog: which HF model classes have a TensorRT-LLM engine path, and how.

Each entry ties the ``architectures[0]`` of an HF ``config.json`` to

* the key TensorRT-LLM 1.2 looks up in ``tensorrt_llm.models.MODEL_MAP`` (written as ``architecture`` in
  the TRT-LLM checkpoint ``config.json``); for these six it is the HF name itself;
* the ``decoder_type`` to pass to ``modelopt.torch.export.export_tensorrt_llm_checkpoint``. ModelOpt 0.47
  derives it with ``modelopt.torch.export.model_utils.get_model_type``, a case-insensitive substring match
  over ``MODEL_NAME_TO_TYPE`` in insertion order; the values below are what that function returns for
  each class name (Mistral and Mixtral export as ``llama``, Qwen2 and Qwen3 as ``qwen``);
* the recipe weight/KV formats valid for the family on the engine path: derived from the format table
  (``trtbuild/formats.py``, ``WeightFormat.families``; legacy TRT-backend precision matrix, facts/trtllm-1.2.md
  §4, and for Qwen the per-model matrix in TensorRT-LLM's ``examples/models/core/qwen/README.md``).

Whether a format also runs on a given GPU is a separate question (``GpuSpec.supports_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass

from trtbuild.errors import UnsupportedArchitecture
from trtbuild.formats import KV_FORMATS, WEIGHT_FORMATS, formats_for_family


@dataclass(frozen=True)
class ArchSpec:
    """One supported HF architecture."""

    hf_architecture: str
    """``architectures[0]`` in the HF config.json, e.g. ``LlamaForCausalLM``."""
    family: str
    """Short family name: llama, mistral, mixtral, qwen2, qwen3, gemma2."""
    trtllm_architecture: str
    """Key into TensorRT-LLM's ``MODEL_MAP``; the checkpoint config's ``architecture``."""
    modelopt_decoder_type: str
    """``decoder_type`` for ``export_tensorrt_llm_checkpoint`` (ModelOpt 0.47)."""
    moe: bool
    """Mixture-of-experts model (expert parallelism, router kept in FP32)."""
    notes: str
    """Caveats shown in plans and ``trtbuild models``."""
    checkpoint_refusal: str = ""
    """Why trtbuild's checkpoint stage cannot convert this architecture (empty: it converts it, with the
    tensor layout in ``stages/checkpoint_layout.py`` checked against the HF weights, by ModelOpt and by the
    streaming converter alike). The planner refuses engine targets for such an architecture."""

    checkpoint_excludes: frozenset[str] = frozenset()
    """Weight formats the checkpoint stage refuses for this architecture (every other format's export was
    checked against the HF weights)."""

    @property
    def checkpoint_formats(self) -> frozenset[str]:
        """Weight formats the checkpoint stage converts for this architecture (none when it refuses it)."""
        return frozenset(WEIGHT_FORMATS) - self.checkpoint_excludes if self.checkpoint else frozenset()

    @property
    def checkpoint(self) -> bool:
        """The checkpoint stage converts this architecture (so engine targets can be planned)."""
        return not self.checkpoint_refusal

    @property
    def weight_formats(self) -> frozenset[str]:
        """Recipe ``quantization.weights`` values valid on the engine path for this family (formats table)."""
        return formats_for_family(self.family)

    @property
    def kv_formats(self) -> frozenset[str]:
        """Recipe ``quantization.kv_cache`` values valid on the engine path for this family (every one)."""
        return frozenset(KV_FORMATS)


_CATALOG: tuple[ArchSpec, ...] = (
    ArchSpec(
        hf_architecture="LlamaForCausalLM",
        family="llama",
        trtllm_architecture="LlamaForCausalLM",
        modelopt_decoder_type="llama",
        moe=False,
        notes="Llama 1/2/3/3.1/3.2/3.3 text models. Llama 3.1+ RoPE scaling (rope_type llama3) must "
              "survive export as rotary_scaling.",
    ),
    ArchSpec(
        hf_architecture="MistralForCausalLM",
        family="mistral",
        trtllm_architecture="MistralForCausalLM",
        modelopt_decoder_type="llama",
        moe=False,
        notes="Built by TensorRT-LLM's Llama model class. No NVFP4 on the engine path. Mistral 7B v0.1 "
              "uses a 4096-token sliding window; v0.2+ has none.",
    ),
    ArchSpec(
        hf_architecture="MixtralForCausalLM",
        family="mixtral",
        trtllm_architecture="MixtralForCausalLM",
        modelopt_decoder_type="llama",
        moe=True,
        notes="Sparse MoE (8 experts, top-2). No SmoothQuant or AWQ on the engine path; the router stays "
              "FP32 and is never quantized. ModelOpt warns that MoE quantization other than FP8 may be "
              "unsupported.",
        # ModelOpt 0.47's int8_sq export crashes on the stacked experts (RuntimeError: size of tensor a (256)
        # must match b (512)), and the AWQ/W4A8 expert layout it writes is unchecked.
        checkpoint_excludes=frozenset({"int8_sq", "int4_awq", "w4a8_awq"}),
    ),
    ArchSpec(
        hf_architecture="Qwen2ForCausalLM",
        family="qwen2",
        trtllm_architecture="Qwen2ForCausalLM",
        modelopt_decoder_type="qwen",
        moe=False,
        notes="Qwen2 and Qwen2.5 (bias on q/k/v). Some sizes do not support every INT4-AWQ + TP "
              "combination; no NVFP4 or W4A8-AWQ on the engine path.",
    ),
    ArchSpec(
        hf_architecture="Qwen3ForCausalLM",
        family="qwen3",
        trtllm_architecture="Qwen3ForCausalLM",
        modelopt_decoder_type="qwen",
        moe=False,
        notes="Dense Qwen3 (engine path since TensorRT-LLM 1.0; q/k RMSNorm per head). TensorRT-LLM's "
              "Qwen matrix lists BF16/FP8/NVFP4 only, Hopper and newer. ModelOpt 0.47's TRT-LLM exporter "
              "only collects q_norm/k_norm for gemma3: check the exported checkpoint carries them.",
    ),
    ArchSpec(
        hf_architecture="Gemma2ForCausalLM",
        family="gemma2",
        trtllm_architecture="Gemma2ForCausalLM",
        modelopt_decoder_type="gemma2",
        moe=False,
        notes="Four RMSNorms per layer, tied embeddings, attention and final logit soft-capping, sliding "
              "window (4096) on alternate layers. No NVFP4 on the engine path.",
        checkpoint_refusal="ModelOpt 0.47's TensorRT-LLM export has no config writer for decoder 'gemma2' unless "
                           "tensorrt_llm is importable; on this path it raises NotImplementedError ('Cannot export "
                           "tensorrt_llm checkpoint for model gemma2') after loading and calibrating the model",
    ),
)

_BY_NAME = {spec.hf_architecture: spec for spec in _CATALOG}


def supported_architectures() -> tuple[str, ...]:
    """The HF architecture names with an engine path, in catalog order."""
    return tuple(spec.hf_architecture for spec in _CATALOG)


def all_architectures() -> tuple[ArchSpec, ...]:
    """Every catalog entry, in catalog order."""
    return _CATALOG


def checkpoint_architectures() -> tuple[str, ...]:
    """The HF architecture names the checkpoint stage converts, in catalog order."""
    return tuple(spec.hf_architecture for spec in _CATALOG if spec.checkpoint)


def find_architecture(hf_arch: str) -> ArchSpec | None:
    """The entry for ``hf_arch`` (exact HF class name), or None."""
    return _BY_NAME.get(hf_arch)


def get_architecture(hf_arch: str) -> ArchSpec:
    """The entry for ``hf_arch``; raises UnsupportedArchitecture naming every supported one."""
    spec = _BY_NAME.get(hf_arch)
    if spec is not None:
        return spec
    hint = ""
    lowered = {name.lower(): name for name in _BY_NAME}
    if hf_arch.lower() in lowered:
        hint = f" (did you mean {lowered[hf_arch.lower()]!r}? names are case-sensitive)"
    raise UnsupportedArchitecture(
        f"architecture {hf_arch!r} has no TensorRT-LLM engine path in trtbuild{hint}; "
        f"supported: {', '.join(supported_architectures())}"
    )
