"""The recipe schema: frozen pydantic models whose attribute docstrings become the JSON Schema.

Defaults live here and nowhere else (not in templates, not in the planner). Build-time (engine)
settings live under ``build:``; run-time (server) settings under ``runtime:``. The loader
(``trtbuild.recipe.loader``) adds positions to every validation error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from trtbuild import formats

if TYPE_CHECKING:  # the checker sees plain strings; at run time the Literals come from the format table
    WeightQuant = str
    KvQuant = str
else:
    WeightQuant = Literal[formats.weight_names()]
    KvQuant = Literal[formats.kv_names()]
DType = Literal["auto", "float16", "bfloat16", "float32"]
BackendName = Literal["trtllm_engine", "reference", "vllm", "llmapi"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNIT_MS = {None: 1000.0, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "min": 60_000.0, "h": 3_600_000.0}
_UNIT_BYTES = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _finite_int(number: float, what: str, limit: str) -> int:
    """``round(number)`` as an int; a ValueError (a schema error, not a crash) for inf, nan or absurd values."""
    if not math.isfinite(number) or abs(number) > 2**63:
        raise ValueError(f"{what} is out of range (at most {limit})")
    return int(round(number))


def _shown(number: float) -> str:
    """A bare number as the user wrote it, shortened (a 400-digit integer must not become a 400-char message)."""
    text = f"{number:g}" if isinstance(number, float) else str(number)
    return text if len(text) <= 24 else text[:20] + "..."


DURATION_UNITS = "ms, s, m (or min), h"
SIZE_UNITS = "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB"


@dataclass(frozen=True)
class _Quantity:
    """A recipe value written with a unit (a duration, a size); a bare number other than 0 is refused."""

    what: str                      # "duration" / "size"
    pattern: re.Pattern[str]
    units: str                     # shown in errors
    examples: str                  # "'10m', '30s' or '500ms'"
    write: str                     # "'{n}s' or '{n}ms'": how to fix a bare number n
    scale: Callable[[str | None], float]
    limit: str
    bare_suffix: str = ""          # appended to the bare-number error

    def parse(self, value: Any) -> Any:
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, (int, float)) and value == 0:
            return 0
        if isinstance(value, (int, float)):
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"the {self.what} is out of range (at most {self.limit})")
            raise ValueError(self._needs_unit(_shown(value)) + self.bare_suffix)
        if isinstance(value, str):
            m = self.pattern.match(value) if len(value) <= 1024 else None
            if not m:
                raise ValueError(f"expected a {self.what} such as {self.examples} (units: {self.units}), "
                                 f"got {value[:64]!r}")
            if m.group(2) is None and float(m.group(1)) != 0:
                raise ValueError(self._needs_unit(m.group(1)))
            return _finite_int(float(m.group(1)) * self.scale(m.group(2)), f"the {self.what}", self.limit)
        return value

    def _needs_unit(self, n: str) -> str:
        return f"a {self.what} needs a unit: write {self.write.format(n=n)} (units: {self.units})"


_DURATION_Q = _Quantity("duration", _DURATION, DURATION_UNITS, "'10m', '30s' or '500ms'", "'{n}s' or '{n}ms'",
                        lambda unit: _UNIT_MS[unit], "365 days")
_SIZE_Q = _Quantity("size", _SIZE, SIZE_UNITS, "'8GiB' or '512MB'", "e.g. '{n}GiB' or '{n}B'",
                    lambda unit: _UNIT_BYTES[(unit or "B").lower()], "1 PiB", bare_suffix="; 0 turns it off")


def parse_duration_ms(value: Any) -> Any:
    """'10m' / '30s' / '500ms' / '1h' → milliseconds (int). A bare number is refused: `600` could mean
    seconds or milliseconds, so the unit is required (0 needs none)."""
    return _DURATION_Q.parse(value)


def parse_size_bytes(value: Any) -> Any:
    """'8GiB' / '512MB' / '4096B' → bytes (int). A bare number is refused (`host_offload: 16` would be
    16 bytes): the unit is required, 0 (off) needs none."""
    return _SIZE_Q.parse(value)


# What editors see (`trtbuild schema`): the forms a recipe is written in, not the parsed integers.
_DURATION_JSON = {"anyOf": [{"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|min|h)\s*$"},
                            {"const": 0}],
                  "description": f"A duration with its unit ({DURATION_UNITS}), e.g. '10m'; 0 = none."}
_SIZE_JSON = {"anyOf": [{"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*([KMGTkmgt][iI]?[Bb]|[Bb])\s*$"},
                        {"const": 0}],
              "description": f"A size with its unit ({SIZE_UNITS}), e.g. '16GiB'; 0 = off."}

DurationMs = Annotated[int, BeforeValidator(parse_duration_ms), Field(ge=0, le=365 * 24 * 3_600_000),
                       WithJsonSchema(_DURATION_JSON)]
SizeBytes = Annotated[int, BeforeValidator(parse_size_bytes), Field(ge=0, le=2**50), WithJsonSchema(_SIZE_JSON)]


class Section(BaseModel):
    # strict: `max_num_tokens: true` is not 1 and `"64"` is not 64. Tuple fields say strict=False (a YAML list
    # is not a tuple) and keep their items strict.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, defer_build=True)


# --------------------------------------------------------------------------------------------- model
class ModelSpec(Section):
    source: str = Field(min_length=1, max_length=4096)
    """A local directory (relative to the recipe file) or `hf://org/name@revision`."""
    config: str | None = Field(default=None, max_length=4096)
    """A local copy of the model's config.json for offline planning of `hf://` sources (checked against the fetched one)."""
    tokenizer: str | None = Field(default=None, max_length=4096)
    """Tokenizer source if it differs from `source` (same forms)."""
    trust_remote_code: bool = False
    """Allow custom modelling/tokenizer code shipped with the model. Off unless you trust the source."""
    allow_pickle: bool = False
    """Allow pickle (`.bin`/`.pt`) weights when no safetensors exist. Pickle can execute code on load."""

    @field_validator("source", "tokenizer")
    @classmethod
    def _check_source(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if v.startswith("hf://"):
            body = v[len("hf://"):]
            repo, _, rev = body.partition("@")
            if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo):
                raise ValueError(f"expected hf://org/name@revision, got {v!r}")
            if "@" in body:
                from trtbuild.plan.sources import hf_revision_problem

                if (problem := hf_revision_problem(rev)) is not None:
                    raise ValueError(f"invalid revision {rev!r} in {v!r}: {problem}")
        elif "://" in v:
            raise ValueError(f"unsupported model source scheme in {v!r}: use a local directory or hf://org/name@revision")
        if "\x00" in v:
            raise ValueError("model source contains a NUL character")
        return v


# -------------------------------------------------------------------------------------- quantization
class Calibration(Section):
    dataset: str = Field(default="builtin", min_length=1, max_length=4096)
    """`builtin` (a small offline corpus shipped with trtbuild), a local .txt/.jsonl file, or `hf://dataset-name`."""
    samples: int = Field(default=512, ge=1, le=100_000)
    """Number of calibration samples (AWQ formats are capped at 64 by default in the plan)."""
    max_seq_len: int = Field(default=512, ge=8, le=131_072)
    """Tokens per calibration sample."""
    batch_size: int = Field(default=1, ge=1, le=1024)
    """Calibration batch size."""
    seed: int = Field(default=1234, ge=0, le=2**31 - 1)
    """Seed for sample selection; calibration is deterministic for a given seed."""


class Quantization(Section):
    weights: WeightQuant = "none"
    """Weight (and activation) format: none, fp8, int4_awq, w4a8_awq, int8_sq, nvfp4, int8_wo, int4_wo."""
    kv_cache: KvQuant = "none"
    """KV cache format: none (model dtype), fp8 or int8."""
    awq_block_size: Literal[64, 128] = 128
    """AWQ group size along the input dimension (int4_awq, w4a8_awq)."""
    calibration: Calibration = Calibration.model_construct()
    """Calibration data for formats that need it (fp8, int4_awq, w4a8_awq, int8_sq, nvfp4, KV quantization)."""

    @property
    def needs_calibration(self) -> bool:
        return formats.weight_format(self.weights).calibrated or self.kv_cache != "none"


class Parallelism(Section):
    tp: int = Field(default=1, ge=1, le=64)
    """Tensor-parallel size (GPUs per pipeline stage)."""
    pp: int = Field(default=1, ge=1, le=64)
    """Pipeline-parallel size."""

    @property
    def world_size(self) -> int:
        return self.tp * self.pp


# --------------------------------------------------------------------------------------------- build
class KvCacheBuild(Section):
    type: Literal["paged", "continuous", "disabled"] = "paged"
    """KV cache layout baked into the engine; in-flight batching needs `paged`."""
    tokens_per_block: int = Field(default=32, ge=1, le=4096)
    """Tokens per paged-KV block (a power of two)."""


class BuildSettings(Section):
    """Engine-time settings: baked into the engine by `trtllm-build`; changing one means a rebuild."""

    max_batch_size: int = Field(default=64, ge=1, le=8192)
    """Largest number of requests scheduled in one iteration."""
    max_input_len: int = Field(default=2048, ge=1, le=4_194_304)
    """Longest prompt in tokens."""
    max_seq_len: int | None = Field(default=None, ge=2, le=4_194_304)
    """Longest prompt + output in tokens; default: the model's max_position_embeddings."""
    max_num_tokens: int = Field(default=8192, ge=1, le=4_194_304)
    """Most tokens batched in one iteration (after padding removal)."""
    opt_num_tokens: int | None = Field(default=None, ge=1, le=4_194_304)
    """TensorRT optimisation-profile point; not with multiple_profiles."""
    max_beam_width: int = Field(default=1, ge=1, le=64)
    """Widest beam search the engine allows."""
    kv_cache: KvCacheBuild = KvCacheBuild.model_construct()
    """KV cache layout."""
    paged_context_fmha: bool = True
    """Paged context FMHA; needed for KV reuse and chunked context."""
    fp8_context_fmha: bool | None = None
    """FP8 context FMHA; default: on where the quantization allows it (fp8, w4a8_awq, nvfp4)."""
    gemm_plugin: Literal["auto", "disable", "float16", "bfloat16", "float32", "fp8", "nvfp4"] = "auto"
    """GEMM plugin; `auto` picks per quantization."""
    multiple_profiles: bool = False
    """Several TensorRT optimisation profiles: faster at varied batch shapes, slower build."""
    use_fused_mlp: bool = True
    """Fuse the gate and up projections of gated MLPs."""
    reduce_fusion: bool = False
    """Fuse AllReduce + residual + norm (tp > 1, Llama/Gemma 2 only)."""
    logits_dtype: Literal["float16", "float32"] = "float32"
    """Logits precision."""
    gather_context_logits: bool = False
    """Keep context logits (needed to return prompt logits)."""
    strip_plan: bool = False
    """Not supported: a weight-stripped engine must be refitted (trtllm-refit) and trtbuild has no refit stage; the plan refuses it (rule build.strip_plan)."""
    weight_streaming: bool = False
    """Allow weights streamed from host memory at run time (runtime.gpu_weights_percent)."""
    timing_cache: bool = True
    """Reuse a TensorRT timing cache between builds of the same target."""
    workers: int | None = Field(default=None, ge=1, le=64)
    """Parallel per-rank builds; default: min(tp × pp, visible GPUs)."""


# ------------------------------------------------------------------------------------------- runtime
class TokenRange(Section):
    start: int = Field(ge=0)
    """First token of the range."""
    end: int | None = Field(default=None, ge=1)
    """One past the last token; null = to the end of the sequence."""

    @model_validator(mode="after")
    def _ordered(self) -> TokenRange:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be greater than start ({self.start})")
        return self


class RetentionRule(Section):
    tokens: Literal["system_prompt", "prompt"] | TokenRange
    """Which tokens: `system_prompt` (the request's system prompt, or the system turn of a chat-templated prompt), `prompt` (the whole prompt) or {start, end}."""
    priority: int = Field(ge=0, le=100)
    """Retention priority 0–100; lower is evicted first (TensorRT-LLM default 35)."""
    duration: DurationMs | None = None
    """How long the priority holds before it decays to the default, e.g. `10m`; null = no expiry."""


class Retention(Section):
    rules: tuple[RetentionRule, ...] = Field(default=(), strict=False)
    """Priority rules for KV blocks of the prompt; earlier rules win."""
    decode_priority: int = Field(default=35, ge=0, le=100)
    """Priority of blocks written while decoding."""
    decode_duration: DurationMs | None = None
    """How long the decode priority holds; null = no expiry."""


class KvCacheRuntime(Section):
    free_gpu_memory_fraction: float = Field(default=0.9, gt=0.0, le=1.0)
    """Fraction of GPU memory free after the engine loads that the KV cache may take."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Hard cap on KV cache size in tokens (the smaller of this and the fraction wins)."""
    reuse: bool = True
    """Reuse KV blocks of shared prefixes across requests (needs build.paged_context_fmha)."""
    host_offload: SizeBytes = 0
    """Host memory for offloaded KV blocks, e.g. `8GiB`; 0 = off."""
    retention: Retention = Retention.model_construct()
    """Priority-based retention of KV blocks (needs reuse)."""


class RuntimeSettings(Section):
    """Server-time settings: written into the Triton repository; changing one needs no engine rebuild."""

    batching: Literal["inflight", "static"] = "inflight"
    """In-flight (continuous) batching, or static batching (V1)."""
    scheduler_policy: Literal["guaranteed_no_evict", "max_utilization"] = "guaranteed_no_evict"
    """Capacity scheduler: never pause admitted requests, or pack greedily and pause when KV runs out."""
    max_batch_size: int | None = Field(default=None, ge=1, le=8192)
    """Triton-side batch limit; default and maximum: build.max_batch_size."""
    kv_cache: KvCacheRuntime = KvCacheRuntime.model_construct()
    """KV cache sizing, reuse, offload and retention."""
    chunked_context: bool = False
    """Split long prompts into chunks scheduled alongside decoding (needs build.paged_context_fmha)."""
    max_queue_delay_us: int = Field(default=0, ge=0, le=60_000_000)
    """Triton dynamic-batching delay in microseconds."""
    max_queue_size: int = Field(default=0, ge=0, le=1_000_000)
    """Triton queue limit; 0 = unlimited."""
    streaming: bool = True
    """Decoupled mode: tokens stream as they are generated."""
    exclude_input_in_output: bool = True
    """Return only generated tokens by default (clients may override per request)."""
    decoding_mode: Literal["top_k", "top_p", "top_k_top_p", "beam_search"] | None = None
    """Sampling kernel; default: top_k_top_p (beam_search when build.max_beam_width > 1)."""
    multi_block_mode: bool = True
    """Split long-context attention across blocks in generation."""
    context_fmha_fp32_acc: bool = False
    """FP32 accumulation in context FMHA."""
    gpu_weights_percent: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of weights kept on the GPU (< 1 needs build.weight_streaming)."""
    cuda_graphs: bool = False
    """CUDA graphs for generation steps."""


# ------------------------------------------------------------------------------------------- serving
class Instances(Section):
    preprocessing: int = Field(default=4, ge=1, le=256)
    """Instances of the tokenizing model."""
    postprocessing: int = Field(default=4, ge=1, le=256)
    """Instances of the detokenizing model."""
    bls: int = Field(default=4, ge=1, le=256)
    """Instances of the BLS model (each serves one request at a time)."""


class TokenizerOptions(Section):
    add_special_tokens: bool = True
    """Add BOS etc. when tokenizing prompts."""
    skip_special_tokens: bool = True
    """Drop special tokens from generated text."""


class Serving(Section):
    topology: Literal["ensemble", "bls", "both"] = "both"
    """Which client-facing models to generate: the ensemble, the BLS model, or both."""
    instances: Instances = Instances.model_construct()
    """Instance counts of the Python models."""
    tokenizer: TokenizerOptions = TokenizerOptions.model_construct()
    """Tokenizer options for pre/post-processing."""
    end_ids: tuple[Annotated[int, Strict()], ...] | None = Field(default=None, strict=False)
    """End-of-sequence token ids (several allowed, e.g. Llama-3's <|eot_id|>); default: from the model."""
    pad_id: int | None = Field(default=None, ge=0)
    """Padding token id; default: the tokenizer's pad, else the first end id."""
    stop_words: tuple[Annotated[str, Strict()], ...] = Field(default=(), strict=False)
    """Default stop strings (clients may add their own)."""
    bad_words: tuple[Annotated[str, Strict()], ...] = Field(default=(), strict=False)
    """Default banned strings."""
    stream_coalescing_ms: int = Field(default=0, ge=0, le=1000)
    """tensorrt_llm_bls streaming: 0 sends every engine response on at once; N > 0 sends at most one
    response per N ms per stream, merging tokens that come faster (same text and token counts; fewer,
    longer chunks when the engine outpaces that rate or the server falls behind; no delay otherwise)."""

    @field_validator("end_ids")
    @classmethod
    def _end_ids(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is not None:
            if not v:
                raise ValueError("end_ids must list at least one token id (or be omitted)")
            if any(i < 0 for i in v):
                raise ValueError("end ids must be non-negative token ids")
        return v


# ------------------------------------------------------------------------------------------- publish
class Publish(Section):
    registry: str | None = Field(default=None, max_length=2048)
    """Where artifacts go: `oci://host[:port]/namespace/name`."""
    tag: str = Field(default="{name}-{gpu}", max_length=256)
    """Tag template; `{name}`, `{gpu}` and `{fingerprint}` are filled in."""
    annotations: dict[str, str] = Field(default_factory=dict)
    """Extra OCI annotations."""

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"oci://[A-Za-z0-9.\-]+(:\d+)?(/[a-z0-9._\-]+)+", v):
            raise ValueError(f"expected oci://host[:port]/namespace/name, got {v!r}")
        return v


# ----------------------------------------------------------------------------------------- toolchain
class Toolchain(Section):
    """How the engine stage runs TensorRT-LLM (the one step that needs it)."""

    executor: Literal["auto", "local", "container"] = "auto"
    """`local` (TensorRT-LLM installed here), `container` (NVIDIA's Triton TRT-LLM image), or `auto`."""
    image: str | None = Field(default=None, max_length=512)
    """Container image, pinned by tag and digest: `nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3@sha256:...`."""
    container_runtime: Literal["docker", "podman"] | None = None
    """Container CLI; default: the first of docker, podman found on PATH."""
    build_timeout: DurationMs = 4 * 3_600_000
    """Kill `trtllm-build` after this long, e.g. `4h`."""

    @field_validator("image")
    @classmethod
    def _image(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[\w.\-/:]+(@sha256:[0-9a-f]{64})?", v):
            raise ValueError(f"expected an image reference such as registry/name:tag@sha256:<64 hex>, got {v!r}")
        return v


# ------------------------------------------------------------------------------------------- targets
class TargetOverride(Section):
    """Per-GPU overrides: any of these sections, merged key by key over the recipe's."""

    backend: BackendName | None = None
    """Overrides the recipe's serving backend for this GPU."""
    dtype: DType | None = None
    """Overrides the recipe's dtype for this GPU."""
    quantization: dict[str, Any] | None = None
    """Keys of `quantization:` to override."""
    parallelism: dict[str, Any] | None = None
    """Keys of `parallelism:` to override."""
    build: dict[str, Any] | None = None
    """Keys of `build:` to override."""
    runtime: dict[str, Any] | None = None
    """Keys of `runtime:` to override."""
    serving: dict[str, Any] | None = None
    """Keys of `serving:` to override."""


# -------------------------------------------------------------------------------------------- recipe
class Recipe(Section):
    """A trtbuild recipe: one model, how to quantize, build and serve it, for one or more GPUs."""

    recipe: Literal[1]
    """Recipe format version."""
    name: str = Field(min_length=1, max_length=128)
    """Artifact name: lower-case letters, digits, `.`, `_`, `-`."""
    model: ModelSpec
    """The model to compile."""
    gpus: tuple[str, ...] = Field(default=(), max_length=64, strict=False)  # a YAML list is not a tuple
    """The GPUs this recipe is built for (names or aliases, see `trtbuild gpus`; `cpu` = the CPU reference).
    Every command (plan, compile, status, lock) builds these unless `--gpu` says otherwise."""
    backend: BackendName | None = None
    """What the targets serve with: `trtllm_engine` (TensorRT-LLM engine + Triton's C++ backend), `reference`
    (the CPU reference), `vllm` (vLLM in a Triton Python model), `llmapi` (TensorRT-LLM's LLM API, PyTorch
    backend). Default: `trtllm_engine` on GPUs, `reference` on `cpu` (see `trtbuild gpus`, README "Backends")."""
    dtype: DType = "auto"
    """Compute dtype of non-quantized parts; `auto` = the checkpoint's torch_dtype."""
    quantization: Quantization = Quantization.model_construct()
    """Weight and KV cache quantization."""
    parallelism: Parallelism = Parallelism.model_construct()
    """Tensor and pipeline parallelism."""
    build: BuildSettings = BuildSettings.model_construct()
    """Engine-time settings."""
    runtime: RuntimeSettings = RuntimeSettings.model_construct()
    """Server-time settings."""
    serving: Serving = Serving.model_construct()
    """Triton repository options."""
    targets: dict[str, TargetOverride] = Field(default_factory=dict)
    """Per-GPU overrides, keyed by GPU name or alias; each GPU must also be listed in `gpus:`. Overrides never
    decide what is built."""
    toolchain: Toolchain = Toolchain.model_construct()
    """How the engine stage runs TensorRT-LLM."""
    publish: Publish = Publish.model_construct()
    """Where `trtbuild compile --publish` sends artifacts."""

    @field_validator("recipe", mode="before")
    @classmethod
    def _recipe_version(cls, v: Any) -> Any:
        if isinstance(v, bool):  # Literal[1] would take True (True == 1)
            raise ValueError(f"expected the recipe format version 1, got {v!r}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", v):
            raise ValueError(f"must be lower-case letters, digits, '.', '_' or '-' and start with a letter or digit, "
                             f"got {v!r}")
        return v


SECTIONS_WITH_OVERRIDES = ("quantization", "parallelism", "build", "runtime", "serving")
