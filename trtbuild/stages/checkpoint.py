"""Checkpoint stage: HF checkpoint → (quantized) TensorRT-LLM checkpoint, with NVIDIA ModelOpt.

Two converters produce the same bytes. Requests that need no calibration (weights none / int8_wo /
int4_wo, kv_cache none) go through :mod:`trtbuild.stages.streaming_checkpoint`, which reproduces
ModelOpt's export bit for bit with numpy, one tensor chunk at a time (peak memory far below the
model's size; no torch import). Everything else, and the rare configs the streaming converter does not
reproduce (the manifest records which converter ran and why), goes through ModelOpt.

What ModelOpt runs, per ``quantization.weights`` (the calls of TensorRT-LLM's examples/quantization/quantize.py):

* ``fp8`` / ``int8_sq`` / ``int4_awq`` / ``w4a8_awq`` / ``nvfp4``: ``mtq.quantize`` with the ModelOpt preset
  (FP8_DEFAULT_CFG, INT8_SMOOTHQUANT_CFG, INT4_AWQ_CFG, W4A8_AWQ_BETA_CFG, NVFP4_DEFAULT_CFG; AWQ group
  size from ``awq_block_size``) calibrated on the recipe's data, then ``export_tensorrt_llm_checkpoint``.
  NVFP4 uses max calibration (the only NVFP4 calibration that runs on CPU).
* ``none`` / ``int8_wo`` / ``int4_wo``: no calibration; the model is exported in ``dtype`` and
  ``quant_algo`` is set to null / W8A16 / W4A16, so ``trtllm-build`` quantizes the weights (as quantize.py).
* ``kv_cache: fp8 | int8``: the attention K/V BMM quantizers are added (FP8_KV_CFG, or 8-bit integer)
  and calibrated with the weights, or alone for the formats above that need no calibration.

Calibration sample count is taken as given: quantize.py forces 32 samples for AWQ, the recipe default
cap for AWQ lives in the plan. The export is written into a staging directory, patched, verified
(:mod:`trtbuild.stages.checkpoint_checks`), given the tokenizer (``tokenizer/``) and a manifest
(``trtbuild-checkpoint.json``), and only then renamed into place.

torch, transformers and modelopt are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import CheckpointError, StageError
from trtbuild.formats import KV_FORMATS, WEIGHT_FORMATS, calibrated_weights
from trtbuild.fsutil import sha256_file, staged_dir
from trtbuild.model.architectures import get_architecture
from trtbuild.model.config import TOKENIZER_FILES
from trtbuild.progress import Progress
from trtbuild.stages.calibration import load_calibration_texts
from trtbuild.stages.checkpoint_checks import (
    ModelDims,
    hf_weight_problems,
    patch_exported_config,
    preflight_problems,
    read_dims,
    support_problems,
    verify_export,
)
from trtbuild.stages.fetch import FileDigest, model_files, weight_files
from trtbuild.stages.safetensors_stream import SourceTensor, index_tensors

if TYPE_CHECKING:
    from trtbuild.recipe.schema import ModelSpec, Parallelism, Quantization

MANIFEST_NAME = "trtbuild-checkpoint.json"
MANIFEST_FORMAT = "trtbuild-checkpoint/1"
STAGE_VERSION = 2
CONVERTERS = ("auto", "modelopt", "streaming")
VERSIONED_PACKAGES = ("nvidia-modelopt", "torch", "transformers", "safetensors", "tokenizers", "accelerate", "numpy")
DTYPES = ("float16", "bfloat16", "float32")


@dataclass(frozen=True)
class CheckpointInputs:
    """Everything the checkpoint stage needs; values already resolved by the planner."""

    model_dir: Path
    architecture: str
    """HF architecture, e.g. LlamaForCausalLM (must match the model's config.json)."""
    decoder_type: str
    """ModelOpt decoder type, e.g. llama, qwen."""
    dtype: str
    """float16 | bfloat16 | float32: load and export dtype of non-quantized tensors."""
    weights: str
    kv_cache: str
    awq_block_size: int
    calib_dataset: str
    """builtin, an absolute .txt/.jsonl path, or hf://name."""
    calib_samples: int
    calib_max_seq_len: int
    calib_batch_size: int
    calib_seed: int
    tp: int
    pp: int
    trust_remote_code: bool
    allow_pickle: bool = False
    tokenizer_dir: Path | None = None
    """Tokenizer directory when it differs from model_dir."""
    input_files: tuple[FileDigest, ...] = ()
    """Digests from the fetch stage; computed from model_dir when empty."""

    def __post_init__(self) -> None:
        checks = (
            ("quantization.weights", self.weights in WEIGHT_FORMATS, self.weights),
            ("quantization.kv_cache", self.kv_cache in KV_FORMATS, self.kv_cache),
            ("dtype", self.dtype in DTYPES, self.dtype),
            ("quantization.awq_block_size", self.awq_block_size > 0, self.awq_block_size),
            ("parallelism.tp", self.tp >= 1, self.tp),
            ("parallelism.pp", self.pp >= 1, self.pp),
            ("quantization.calibration.samples", self.calib_samples >= 1, self.calib_samples),
            ("quantization.calibration.max_seq_len", self.calib_max_seq_len >= 1, self.calib_max_seq_len),
            ("quantization.calibration.batch_size", self.calib_batch_size >= 1, self.calib_batch_size),
        )
        for key, ok, value in checks:
            if not ok:
                raise CheckpointError(f"{key}: unsupported value {value!r}")

    @property
    def needs_calibration(self) -> bool:
        return self.weights in calibrated_weights() or self.kv_cache != "none"

    @classmethod
    def from_recipe(cls, *, model_dir: Path, architecture: str, decoder_type: str, dtype: str,
                    model: ModelSpec, quantization: Quantization, parallelism: Parallelism,
                    calib_dataset: str | None = None, tokenizer_dir: Path | None = None,
                    input_files: tuple[FileDigest, ...] = ()) -> CheckpointInputs:
        """Build inputs from (merged) recipe sections; ``calib_dataset`` overrides a recipe-relative path."""
        cal = quantization.calibration
        return cls(
            model_dir=model_dir, architecture=architecture, decoder_type=decoder_type, dtype=dtype,
            weights=quantization.weights, kv_cache=quantization.kv_cache,
            awq_block_size=quantization.awq_block_size, calib_dataset=calib_dataset or cal.dataset,
            calib_samples=cal.samples, calib_max_seq_len=cal.max_seq_len, calib_batch_size=cal.batch_size,
            calib_seed=cal.seed, tp=parallelism.tp, pp=parallelism.pp,
            trust_remote_code=model.trust_remote_code, allow_pickle=model.allow_pickle,
            tokenizer_dir=tokenizer_dir, input_files=input_files)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["model_dir"] = str(self.model_dir)
        data["tokenizer_dir"] = str(self.tokenizer_dir) if self.tokenizer_dir else None
        data["input_files"] = [f._asdict() for f in self.input_files]
        return data


@dataclass(frozen=True)
class CheckpointManifest:
    """What the checkpoint stage produced; also written as ``trtbuild-checkpoint.json``."""

    out_dir: Path
    quant_algo: str | None
    kv_cache_quant_algo: str | None
    world_size: int
    files: tuple[FileDigest, ...]
    """Output files (relative to out_dir) with digests, the manifest itself excluded."""
    input_files: tuple[FileDigest, ...]
    versions: tuple[tuple[str, str], ...]
    device: str
    wall_s: float = field(default=0.0, compare=False)
    """How long this run took: a build fact, not written into ``trtbuild-checkpoint.json``."""
    calibration: tuple[tuple[str, Any], ...] = field(default=())
    inputs: tuple[tuple[str, Any], ...] = field(default=())
    converter: str = "modelopt"
    """``streaming`` (numpy, bit-identical to ModelOpt's export) or ``modelopt``."""
    converter_note: str | None = None
    """Why ModelOpt ran for a request the streaming converter usually takes."""

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT, "stage_version": STAGE_VERSION,
            "converter": self.converter, "converter_note": self.converter_note,
            "quant_algo": self.quant_algo, "kv_cache_quant_algo": self.kv_cache_quant_algo,
            "world_size": self.world_size, "device": self.device,
            "versions": dict(self.versions), "inputs": dict(self.inputs), "calibration": dict(self.calibration),
            "input_files": [f._asdict() for f in self.input_files],
            "files": [f._asdict() for f in self.files],
        }

    @classmethod
    def load(cls, out_dir: Path) -> CheckpointManifest:
        path = Path(out_dir) / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {data.get('format')!r}")
            return cls(
                out_dir=Path(out_dir), quant_algo=data["quant_algo"], kv_cache_quant_algo=data["kv_cache_quant_algo"],
                world_size=data["world_size"], files=tuple(FileDigest(**f) for f in data["files"]),
                input_files=tuple(FileDigest(**f) for f in data["input_files"]),
                versions=tuple(sorted(data["versions"].items())), device=data["device"],
                calibration=tuple(sorted(data["calibration"].items())), inputs=tuple(sorted(data["inputs"].items())),
                converter=data.get("converter", "modelopt"), converter_note=data.get("converter_note"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: unreadable checkpoint manifest ({type(e).__name__}: {e})") from None


# --------------------------------------------------------------------------------------- entry point
def preflight(inputs: CheckpointInputs) -> tuple[dict[str, Any], ModelDims, dict[str, SourceTensor] | None]:
    """Checks that need no weights: config.json, architecture, weight files, parallel layout.

    Returns the HF config, its dimensions and the index of the safetensors weights (None for pickle)."""
    config_path = inputs.model_dir / "config.json"
    try:
        hf_cfg = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{config_path}: not found (model.source is not a Hugging Face model)") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{config_path}: unreadable ({type(e).__name__}: {e})") from None
    dims = read_dims(hf_cfg, str(config_path))
    problems = support_problems(dims.architecture, weights=inputs.weights, dtype=inputs.dtype)
    if problems:
        raise CheckpointError("\n  ".join(f"{config_path}: {p}" if p.startswith("architecture") else p
                                          for p in problems))
    if dims.architecture != inputs.architecture:
        raise CheckpointError(f"{config_path}: architecture is {dims.architecture}, the plan expected "
                              f"{inputs.architecture}")
    decoder = get_architecture(dims.architecture).modelopt_decoder_type
    if decoder != inputs.decoder_type:
        raise CheckpointError(f"decoder_type {inputs.decoder_type!r} does not match {dims.architecture} "
                              f"(ModelOpt decoder {decoder!r})")
    problems = preflight_problems(dims, weights=inputs.weights, awq_block_size=inputs.awq_block_size,
                                  tp=inputs.tp, pp=inputs.pp)
    if problems:
        raise CheckpointError("\n  ".join(["the model cannot be laid out as requested:", *problems]))
    try:
        weights = weight_files(inputs.model_dir, allow_pickle=inputs.allow_pickle)
        safetensors = [p for p in weights if p.suffix == ".safetensors"]
        sources = index_tensors(safetensors) if safetensors else None
    except StageError as e:  # fetch errors name the directory or file; re-raise as this stage's error
        raise CheckpointError(str(e).removeprefix("fetch: ")) from None
    if sources:
        tensors = {name: (s.shape, str(s.path)) for name, s in sources.items()}
        problems = hf_weight_problems(dims, tensors, tied_embeddings=bool(hf_cfg.get("tie_word_embeddings")))
        if problems:
            raise CheckpointError("\n  ".join([f"{inputs.model_dir}: weights do not match config.json:", *problems]))
    tokenizer_files(inputs.tokenizer_dir or inputs.model_dir, trust_remote_code=inputs.trust_remote_code)
    return hf_cfg, dims, sources


def run_checkpoint(inputs: CheckpointInputs, out_dir: Path, *, progress: Progress | None = None,
                   device: str | None = None, converter: str = "auto") -> CheckpointManifest:
    """Convert/quantize ``inputs.model_dir`` into a verified TensorRT-LLM checkpoint at ``out_dir``.

    ``converter``: ``auto`` (streaming when it reproduces ModelOpt's output for the request, else
    ModelOpt), ``modelopt`` or ``streaming`` (an error when the request needs ModelOpt).
    """
    from trtbuild.stages import streaming_checkpoint as streaming

    if converter not in CONVERTERS:
        raise CheckpointError(f"converter must be one of {', '.join(CONVERTERS)}, got {converter!r}")
    started = time.monotonic()
    progress = progress or Progress.silent()
    hf_cfg, dims, sources = preflight(inputs)
    reason = streaming.streaming_problem(hf_cfg, dims, weights=inputs.weights, kv_cache=inputs.kv_cache,
                                         dtype=inputs.dtype, tp=inputs.tp, sources=sources)
    if converter == "streaming" and reason:
        raise CheckpointError(f"the streaming converter cannot produce this checkpoint: {reason}")
    use_streaming = converter != "modelopt" and reason is None
    note = reason if converter == "auto" and not inputs.needs_calibration and reason else None
    texts = (load_calibration_texts(inputs.calib_dataset, samples=inputs.calib_samples, seed=inputs.calib_seed)
             if inputs.needs_calibration else None)
    input_files = inputs.input_files or _digest_inputs(inputs)

    out_dir = Path(out_dir)
    with staged_dir(out_dir) as stage:
        if use_streaming:
            assert sources is not None
            device = "cpu"
            calib_info: dict[str, Any] = {"used": False}
            task = progress.start(f"convert to TensorRT-LLM checkpoint, streaming (tp={inputs.tp}, pp={inputs.pp})")
            plans = streaming.plan_ranks(dims, sources, dtype=inputs.dtype, tp=inputs.tp, pp=inputs.pp,
                                         tied=bool(hf_cfg.get("tie_word_embeddings")))
            streaming.write_ranks(plans, sources, stage)
            raw = streaming.modelopt_config(hf_cfg, dims, decoder_type=inputs.decoder_type, dtype=inputs.dtype,
                                            tp=inputs.tp, pp=inputs.pp)
            (stage / "config.json").write_text(json.dumps(raw, indent=4), encoding="utf-8")
            progress.finish(task)
        else:
            with progress.waiting("import torch, transformers and ModelOpt"):  # ~10 s before any model work
                from trtbuild.stages import modelopt_driver as driver

                with contextlib.suppress(ImportError):  # the stage itself reports a missing package
                    import modelopt.torch.quantization  # noqa: F401
                    import transformers  # noqa: F401
            device = device or driver.default_device()
            model, tokenizer = driver.load_model_and_tokenizer(inputs, device=device, progress=progress)
            calib_info = driver.quantize(model, tokenizer, inputs, texts, device=device, progress=progress)
            driver.export(model, inputs, stage, progress=progress)
            del model, tokenizer
        task = progress.start("verify checkpoint")
        config_path = stage / "config.json"
        config = patch_exported_config(
            json.loads(config_path.read_text(encoding="utf-8")), dims, hf_cfg, architecture=inputs.architecture,
            weights=inputs.weights, kv_cache=inputs.kv_cache, decoder_type=inputs.decoder_type)
        config_path.write_text(json.dumps(config, indent=4) + "\n", encoding="utf-8")
        quant = config.get("quantization") or {}
        if quant.get("quant_algo") != "MIXED_PRECISION":
            (stage / "quant_cfg.json").unlink(missing_ok=True)  # ModelOpt writes it even when not mixed
        verify_export(stage, config, dims, architecture=inputs.architecture, dtype=inputs.dtype,
                      weights=inputs.weights, kv_cache=inputs.kv_cache, awq_block_size=inputs.awq_block_size,
                      tp=inputs.tp, pp=inputs.pp)
        _copy_tokenizer(inputs.tokenizer_dir or inputs.model_dir, stage / "tokenizer",
                        trust_remote_code=inputs.trust_remote_code)
        progress.finish(task)
        manifest = CheckpointManifest(
            out_dir=out_dir, quant_algo=quant.get("quant_algo"), kv_cache_quant_algo=quant.get("kv_cache_quant_algo"),
            world_size=inputs.tp * inputs.pp, files=_digest_dir(stage), input_files=input_files,
            versions=toolchain_versions(), device=device, wall_s=round(time.monotonic() - started, 3),
            calibration=tuple(sorted(calib_info.items())),
            inputs=_recorded_inputs(inputs),
            converter="streaming" if use_streaming else "modelopt", converter_note=note)
        (stage / MANIFEST_NAME).write_text(json.dumps(manifest.to_json(), indent=2) + "\n", encoding="utf-8")
    return manifest


# ------------------------------------------------------------------------------------------ helpers
def _recorded_inputs(inputs: CheckpointInputs) -> tuple[tuple[str, Any], ...]:
    """The inputs as ``trtbuild-checkpoint.json`` records them: settings, never where files live (the
    model and tokenizer directories are locations; their content is ``input_files``), so the same inputs
    give the same bytes wherever the model, the HF cache or the trtbuild cache are."""
    out = {k: v for k, v in inputs.to_json().items() if k not in ("input_files", "model_dir", "tokenizer_dir")}
    if os.path.isabs(str(out.get("calib_dataset", ""))):
        out["calib_dataset"] = "file:" + os.path.basename(str(out["calib_dataset"]))
    return tuple(sorted(out.items()))


def toolchain_versions() -> tuple[tuple[str, str], ...]:
    """Python, trtbuild and library versions, from package metadata (nothing is imported)."""
    import trtbuild

    versions = {"python": platform.python_version(), "trtbuild": trtbuild.__version__}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "absent"
    return tuple(sorted(versions.items()))


def _digest_inputs(inputs: CheckpointInputs) -> tuple[FileDigest, ...]:
    files = model_files(inputs.model_dir, allow_pickle=inputs.allow_pickle,
                        trust_remote_code=inputs.trust_remote_code)
    return tuple(FileDigest(str(p.relative_to(inputs.model_dir)), sha256_file(p), p.stat().st_size) for p in files)


def _digest_dir(root: Path) -> tuple[FileDigest, ...]:
    return tuple(
        FileDigest(p.relative_to(root).as_posix(), sha256_file(p), p.stat().st_size)
        for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST_NAME)


def tokenizer_files(src: Path, *, trust_remote_code: bool) -> list[Path]:
    """The tokenizer files of ``src`` copied next to the checkpoint; error if it has no tokenizer."""
    if not src.is_dir():
        raise CheckpointError(f"{src}: tokenizer directory does not exist")
    names = set(TOKENIZER_FILES)
    files = [p for p in sorted(src.iterdir()) if p.is_file() and (
        p.name in names or p.name.endswith(".tiktoken")
        or (trust_remote_code and p.name.startswith("tokenization_") and p.suffix == ".py"))]
    vocab_names = {"tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt"}
    if not any(p.name in vocab_names or p.name.endswith(".tiktoken") for p in files):
        raise CheckpointError(f"{src}: no tokenizer files (tokenizer.json, tokenizer.model, vocab.json, ...)")
    return files


def _copy_tokenizer(src: Path, dst: Path, *, trust_remote_code: bool) -> None:
    dst.mkdir()
    for p in tokenizer_files(src, trust_remote_code=trust_remote_code):
        shutil.copyfile(p, dst / p.name)
