"""``make_plan``: a loaded recipe + a target GPU → a BuildPlan. Pure: reads only config.json.

The plan resolves defaults and target overrides, runs the feasibility rules, predicts memory per
rank, and lists the stages with their parameters and keys. An infeasible plan is still a plan
(``feasible: false`` with error diagnostics); the CLI turns that into exit 3.
"""

from __future__ import annotations

import functools
import hashlib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from trtbuild.backends import Backend, backend_for
from trtbuild.backends.rules import backend_rules, settings_findings
from trtbuild.canon import Frozen, format_bytes
from trtbuild.catalog.gpus import GpuSpec, get_gpu, gpu_to_json
from trtbuild.errors import Diagnostic, PlanError
from trtbuild.formats import WEIGHT_FORMATS, weight_bits, weight_format
from trtbuild.model.architectures import ArchSpec, get_architecture
from trtbuild.model.config import ModelDims, load_model_config
from trtbuild.plan.memory import DTYPE_BYTES, MemoryEstimate, MemoryInputs, estimate_memory
from trtbuild.plan.rules import Finding, RuleContext, run_rules
from trtbuild.plan.sources import locate_model_config
from trtbuild.recipe.loader import LoadedRecipe
from trtbuild.recipe.schema import Recipe

PLAN_FORMAT = 1
STAGE_VERSIONS = {"fetch": 1, "checkpoint": 2, "engine": 1, "repository": 1}


def format_gib(n: int | float) -> str:
    return format_bytes(n, "GiB")


class PlanDiagnostic(Frozen):
    rule: str
    severity: str
    message: str
    path: str = ""
    position: str | None = None
    fixes: tuple[dict[str, Any], ...] = ()
    """The edits the message suggests, one mapping of recipe key → value per alternative
    (``[{"quantization.kv_cache": "none"}]``); each plans without this error and without a new one."""

    def format(self) -> str:
        where = f"{self.position}: " if self.position else ""
        key = f"{self.path}: " if self.path else ""
        return f"{where}{self.severity}: {key}{self.message} [{self.rule}]"


class StagePlan(Frozen):
    name: str
    params: dict[str, Any]
    key: str | None = None
    """The stage's one key: its fingerprint (``trtbuild.fingerprint``), which needs the model files'
    digests, the toolchain and the templates. None in a bare plan; ``BuildPlan.with_keys`` fills it in
    once a target is resolved, and the cache, report, status and manifests all show that key."""


class BuildPlan(Frozen):
    format: int = PLAN_FORMAT
    recipe: dict[str, Any]
    target: dict[str, Any]
    backend: str = "trtllm_engine"
    """The serving backend of the target (trtbuild.backends): the recipe's `backend:`, else the GPU's default."""
    model: dict[str, Any]
    settings: Recipe
    """The recipe as it applies to this target: overrides merged, defaults resolved."""
    stages: tuple[StagePlan, ...]
    memory: dict[str, Any]
    diagnostics: tuple[PlanDiagnostic, ...]
    feasible: bool

    def stage(self, name: str) -> StagePlan | None:
        return next((s for s in self.stages if s.name == name), None)

    def with_keys(self, keys: dict[str, str]) -> BuildPlan:
        """This plan with each stage's key (its fingerprint) filled in."""
        stages = tuple(s.model_copy(update={"key": keys.get(s.name)}) for s in self.stages)
        return self.model_copy(update={"stages": stages})

    @property
    def errors(self) -> list[PlanDiagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def require_feasible(plan: BuildPlan) -> None:
    """Raise PlanError (exit 3) with the plan's errors unless the plan is feasible."""
    if not plan.feasible:
        raise PlanError(f"the plan for {plan.target['name']} is infeasible; nothing was built "
                        "(`trtbuild plan` explains it)",
                        diagnostics=[Diagnostic(d.message, path=d.path, rule=d.rule) for d in plan.errors])


# A suggestion in a diagnostic is written `recipe.key: value`; several edits that only work together are
# joined by " and " / " with " ("quantization.weights: int4_awq with quantization.kv_cache: none"); anything
# else between two edits separates alternatives ("try parallelism.tp: 2 or quantization.weights: fp8").
_EDIT = re.compile(r"(?<![\w.`'])([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*): ([A-Za-z0-9_.+-]+)")


@functools.lru_cache(maxsize=1)
def _recipe_keys() -> frozenset[str]:
    """Dotted keys of the recipe's scalar settings (what a suggestion may set), e.g. ``build.max_seq_len``."""
    import typing

    from trtbuild.recipe.schema import TargetOverride
    from trtbuild.recipe.suggest import _models_in

    keys: set[str] = set()

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, f in model.model_fields.items():
            dotted_key = f"{prefix}{name}"
            subs = [m for m in _models_in(f.annotation) if m is not TargetOverride]
            if subs:
                walk(subs[0], dotted_key + ".")
            elif typing.get_origin(f.annotation) not in (dict, tuple, list):
                keys.add(dotted_key)

    walk(Recipe, "")
    return frozenset(keys)


def suggested_fixes(message: str) -> tuple[dict[str, Any], ...]:
    """The edits a diagnostic's message suggests, one dict per alternative (see ``PlanDiagnostic.fixes``)."""
    import yaml

    keys = _recipe_keys()
    alternatives: list[dict[str, Any]] = []
    last_end = None
    for m in _EDIT.finditer(message):
        key, raw = m.group(1), m.group(2).rstrip(".")
        if key not in keys:
            continue
        value = yaml.safe_load(raw)
        joined = last_end is not None and message[last_end:m.start()] in (" and ", " with ")
        if joined and alternatives:
            alternatives[-1][key] = value
        else:
            alternatives.append({key: value})
        last_end = m.end()
    return tuple(alternatives)


def apply_fix(data: dict[str, Any], gpu: str, fix: dict[str, Any]) -> dict[str, Any]:
    """Recipe ``data`` with ``fix`` applied for ``gpu``: in its ``targets:`` override (keys an override can
    hold), else in the recipe itself. The GPU is added to ``gpus:`` when the recipe lists GPUs."""
    import copy

    from trtbuild.catalog.gpus import find_gpu
    from trtbuild.recipe.schema import TargetOverride

    out = copy.deepcopy(data)
    spec = find_gpu(gpu)
    key = spec.key if spec else gpu
    targets = out.setdefault("targets", {}) or {}
    out["targets"] = targets
    name = next((n for n in targets if spec is not None and find_gpu(str(n)) is spec), key)
    for dotted_key, value in fix.items():
        parts = dotted_key.split(".")
        node = targets.setdefault(name, {}) if parts[0] in TargetOverride.model_fields else out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if not targets:
        del out["targets"]
    if isinstance(out.get("gpus"), list) and not any(spec is not None and find_gpu(str(g)) is spec
                                                       for g in out["gpus"]):
        out["gpus"].append(name)
    return out


def resolve_settings(recipe: Recipe, dims: ModelDims, gpu: GpuSpec) -> tuple[Recipe, list[Finding]]:
    """Fill every `auto`/null default that depends on the model or the target."""
    notes: list[Finding] = []
    dtype = recipe.dtype if recipe.dtype != "auto" else dims.torch_dtype
    if dtype == "float32" and not gpu.reference and recipe.dtype == "auto":
        dtype = "float16"
        notes.append(Finding("dtype.fp32", "info", "checkpoint is float32; engines are built in float16", "dtype"))
    b, r = recipe.build, recipe.runtime
    q = recipe.quantization
    max_seq_len = b.max_seq_len or dims.max_position_embeddings
    # trtllm-build keeps FP8 context FMHA with paged context FMHA only together with an FP8 KV cache.
    fp8_fmha = b.fp8_context_fmha if b.fp8_context_fmha is not None else (
        weight_format(q.weights).fp8_context_fmha and not gpu.reference and gpu.sm >= 89
        and (not b.paged_context_fmha or q.kv_cache == "fp8"))
    gemm: str = b.gemm_plugin
    if gemm == "auto":
        gemm = "nvfp4" if q.weights == "nvfp4" else dtype
    build = b.model_copy(update={"max_seq_len": max_seq_len, "fp8_context_fmha": fp8_fmha, "gemm_plugin": gemm})
    runtime = r.model_copy(update={
        "max_batch_size": r.max_batch_size or b.max_batch_size,
        "decoding_mode": r.decoding_mode or ("beam_search" if b.max_beam_width > 1 else "top_k_top_p"),
    })
    resolved = recipe.model_copy(update={"dtype": dtype, "build": build, "runtime": runtime, "targets": {}})
    return resolved, notes


def _memory_inputs(s: Recipe, dims: ModelDims, gpu: GpuSpec, **over: Any) -> MemoryInputs:
    b, q, p, r = s.build, s.quantization, s.parallelism, s.runtime
    kw: dict[str, Any] = dict(
        dims=dims, dtype=s.dtype, weights=q.weights if not gpu.reference else "none",
        kv_cache=q.kv_cache if not gpu.reference else "none", awq_block_size=q.awq_block_size,
        tp=p.tp, pp=p.pp, max_batch_size=b.max_batch_size, max_seq_len=b.max_seq_len or dims.max_position_embeddings,
        max_num_tokens=b.max_num_tokens, max_beam_width=b.max_beam_width, tokens_per_block=b.kv_cache.tokens_per_block,
        gather_context_logits=b.gather_context_logits, logits_bytes=4 if b.logits_dtype == "float32" else 2,
        gpu_memory_bytes=gpu.memory_bytes if not gpu.reference else 0,
        free_gpu_memory_fraction=r.kv_cache.free_gpu_memory_fraction, kv_max_tokens=r.kv_cache.max_tokens)
    kw.update(over)
    return MemoryInputs(**kw)


def _with_updates(model: Any, updates: dict[str, Any]) -> Any:
    """``model`` (a frozen section) with dotted-key ``updates`` applied (values as the schema holds them)."""
    by_field: dict[str, dict[str, Any]] = {}
    direct: dict[str, Any] = {}
    for dotted_key, value in updates.items():
        head, _, rest = dotted_key.partition(".")
        if head not in type(model).model_fields:
            raise KeyError(dotted_key)
        if rest:
            by_field.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, sub in by_field.items():
        direct[head] = _with_updates(getattr(model, head), sub)
    return model.model_copy(update=direct)


def _plans_clean(s: Recipe, dims: ModelDims, gpu: GpuSpec, arch: ArchSpec, **updates: Any) -> bool:
    """Whether the recipe ``s`` (as written, before defaults are resolved) with ``updates``
    ({"parallelism.tp": 2, ...}) passes every rule and fits in memory."""
    try:
        cand, _ = resolve_settings(_with_updates(s, updates), dims, gpu)
    except (KeyError, AttributeError):
        return False
    max_seq_len = cand.build.max_seq_len or dims.max_position_embeddings
    if any(f.severity == "error" for f in run_rules(RuleContext(cand, dims, gpu, arch, max_seq_len))):
        return False
    return estimate_memory(_memory_inputs(cand, dims, gpu)).fits


def _fit_suggestions(s: Recipe, dims: ModelDims, gpu: GpuSpec, arch: ArchSpec) -> list[str]:
    """Edits that make the plan fit, each checked against every rule and the memory plan (a suggestion that
    leads into another error is never printed): more TP, a smaller weight format, an FP8 KV cache, a
    shorter max_seq_len."""
    out: list[str] = []
    tp = s.parallelism.tp
    for cand in (2, 4, 8, 16, 32, 64):
        if cand > tp and _plans_clean(s, dims, gpu, arch, **{"parallelism.tp": cand}):
            out.append(f"parallelism.tp: {cand}")
            break
    dtype = s.dtype if s.dtype != "auto" else dims.torch_dtype
    current_bits = weight_bits(s.quantization.weights, DTYPE_BYTES.get(dtype, 2))
    for fmt in WEIGHT_FORMATS:
        if fmt == s.quantization.weights or weight_bits(fmt, DTYPE_BYTES.get(dtype, 2)) >= current_bits:
            continue
        if not gpu.supports_weights(fmt) or fmt not in arch.weight_formats:
            continue
        if _plans_clean(s, dims, gpu, arch, **{"quantization.weights": fmt}):
            out.append(f"quantization.weights: {fmt}")
            break
    if (not out and s.quantization.kv_cache == "none" and gpu.supports_kv("fp8")
            and _plans_clean(s, dims, gpu, arch, **{"quantization.kv_cache": "fp8"})):
        out.append("quantization.kv_cache: fp8")
    if not out:
        shorter = max(256, (s.build.max_seq_len or dims.max_position_embeddings) // 4)
        updates: dict[str, Any] = {"build.max_seq_len": shorter}
        if s.build.max_input_len >= shorter:
            updates["build.max_input_len"] = shorter // 2
        if _plans_clean(s, dims, gpu, arch, **updates):
            out.append(" and ".join(f"{k}: {v}" for k, v in updates.items()))
    return out


def _memory_findings(m: MemoryEstimate, s: Recipe, dims: ModelDims, gpu: GpuSpec, arch: ArchSpec,
                     written: Recipe) -> list[Finding]:
    """``s``: the resolved settings; ``written``: the recipe for this GPU before defaults were resolved."""
    if gpu.reference or m.fits:
        return []
    tries = _fit_suggestions(written, dims, gpu, arch)
    hint = f"; try {' or '.join(tries)}" if tries else ""
    static = m.weights_bytes_per_rank + m.activation_bytes_per_rank + m.overhead_bytes_per_rank
    frac = s.runtime.kv_cache.free_gpu_memory_fraction
    breakdown = (f" (weights {format_gib(m.weights_bytes_per_rank)}, activations ~{format_gib(m.activation_bytes_per_rank)}, "
                 f"runtime ~{format_gib(m.overhead_bytes_per_rank)}, KV for one sequence {format_gib(m.min_kv_bytes)} at "
                 f"fraction {frac:g})")
    if static > m.gpu_memory_bytes:
        msg = f"needs {format_gib(m.needed_bytes_per_rank)} per GPU, {gpu.name} has {format_gib(m.gpu_memory_bytes)}{hint}{breakdown}"
        return [Finding("memory.fit", "error", msg, "parallelism")]
    msg = (f"KV cache holds {m.kv_capacity_tokens} tokens, fewer than one sequence of {m.tokens_per_sequence} "
           f"(max_seq_len x beam): needs {format_gib(m.needed_bytes_per_rank)} per GPU, {gpu.name} has "
           f"{format_gib(m.gpu_memory_bytes)}{hint}{breakdown}")
    return [Finding("memory.kv_capacity", "error", msg, "build.max_seq_len")]


def _position(loaded: LoadedRecipe, gpu_key: str, path: str) -> str | None:
    parts: tuple[str | int, ...] = tuple(path.split(".")) if path else ()
    for name, over in (loaded.data.get("targets") or {}).items():
        from trtbuild.catalog.gpus import find_gpu

        g = find_gpu(str(name))
        if g is not None and g.key == gpu_key and isinstance(over, dict):
            node: Any = over
            ok = True
            for part in parts:
                if isinstance(node, dict) and part in node:
                    node = node[part]
                else:
                    ok = False
                    break
            if ok and parts:
                pos = loaded.positions.at(("targets", name) + parts)
                return str(pos) if pos else None
    pos = loaded.positions.at(parts)
    return str(pos) if pos else None


def make_plan(loaded: LoadedRecipe, gpu_name: str) -> BuildPlan:
    """Plan the build of ``loaded`` for ``gpu_name``. Raises PlanError when the model cannot be read
    or its architecture is unsupported; other problems become diagnostics of an infeasible plan."""
    gpu = get_gpu(gpu_name)
    recipe = loaded.for_gpu(gpu.key)
    config_path = locate_model_config(recipe.model, loaded.base_dir)
    dims = load_model_config(config_path)
    arch = get_architecture(dims.architecture)
    settings, notes = resolve_settings(recipe, dims, gpu)
    backend = backend_for(settings, gpu)
    max_seq_len = settings.build.max_seq_len or dims.max_position_embeddings
    findings = notes + run_rules(RuleContext(settings, dims, gpu, arch, max_seq_len))
    # the backend's rules read the recipe as written (resolve_settings fills engine defaults such as gemm_plugin)
    findings = [f for f in findings if f.rule not in backend.drops_rules] + backend_rules(backend, recipe, gpu)
    mem = estimate_memory(_memory_inputs(settings, dims, gpu))
    findings += _memory_findings(mem, settings, dims, gpu, arch, recipe)
    order = {"error": 0, "warning": 1, "info": 2}
    diags = tuple(sorted(
        (PlanDiagnostic(rule=f.rule, severity=f.severity, message=f.message, path=f.path,
                        position=_position(loaded, gpu.key, f.path), fixes=suggested_fixes(f.message))
         for f in findings),
        key=lambda d: (order.get(d.severity, 3), d.rule)))
    config_sha = _file_sha256(config_path)
    stages = _stages(settings, dims, gpu, arch, backend)
    feasible = not any(d.severity == "error" for d in diags)
    memory: dict[str, Any] = dict(mem.to_json())
    memory["estimated_fields"] = ["activation_bytes_per_rank", "overhead_bytes_per_rank"]
    if gpu.reference:
        memory.update({"kv_capacity_tokens": None, "max_concurrent_sequences": None, "fits": None})
    plan = BuildPlan(
        recipe={"name": settings.name, "path": str(loaded.path), "sha256": loaded.text_sha256},
        target=gpu_to_json(gpu), backend=backend.name,
        model={"source": settings.model.source, "config": str(config_path), "config_sha256": config_sha,
               "architecture": dims.architecture, "family": arch.family,
               "trtllm_architecture": arch.trtllm_architecture, "decoder_type": arch.modelopt_decoder_type,
               "parameters": mem.parameters, "dtype": settings.dtype, "num_layers": dims.num_layers,
               "hidden_size": dims.hidden_size, "num_heads": dims.num_heads, "num_kv_heads": dims.num_kv_heads,
               "head_dim": dims.head_dim, "vocab_size": dims.vocab_size,
               "max_position_embeddings": dims.max_position_embeddings, "num_experts": dims.num_experts},
        settings=settings, stages=stages, memory=memory, diagnostics=diags, feasible=feasible)
    return _with_backend_findings(plan, loaded, gpu.key, backend)


def _with_backend_findings(plan: BuildPlan, loaded: LoadedRecipe, gpu_key: str, backend: Backend) -> BuildPlan:
    """The plan with what the backend's settings mapping reports (``vllm.*``, ``llmapi.*``); a key a
    ``backend.*`` error is already about is not reported twice."""
    if any(d.rule == "backend.hardware" for d in plan.diagnostics):
        return plan
    covered = {d.path for d in plan.diagnostics if d.rule.startswith("backend.") and d.severity == "error"}
    extra = [d.model_copy(update={"position": _position(loaded, gpu_key, d.path)})
             for d in settings_findings(backend, plan) if not (d.severity == "error" and d.path in covered)]
    if not extra:
        return plan
    order = {"error": 0, "warning": 1, "info": 2}
    diags = tuple(sorted(plan.diagnostics + tuple(extra), key=lambda d: (order.get(d.severity, 3), d.rule)))
    return plan.model_copy(update={"diagnostics": diags,
                                   "feasible": not any(d.severity == "error" for d in diags)})


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stages(s: Recipe, dims: ModelDims, gpu: GpuSpec, arch: ArchSpec, backend: Backend) -> tuple[StagePlan, ...]:
    m, q, p, b, r = s.model, s.quantization, s.parallelism, s.build, s.runtime
    fetch = {"source": m.source, "tokenizer": m.tokenizer, "allow_pickle": m.allow_pickle,
             "trust_remote_code": m.trust_remote_code}
    stages: list[tuple[str, dict[str, Any]]] = [("fetch", fetch)]
    if "checkpoint" in backend.stages:
        ckpt: dict[str, Any] = {"architecture": dims.architecture, "decoder_type": arch.modelopt_decoder_type,
                                "dtype": s.dtype, "weights": q.weights, "kv_cache": q.kv_cache,
                                "tp": p.tp, "pp": p.pp}
        if weight_format(q.weights).scales == "group":
            ckpt["awq_block_size"] = q.awq_block_size
        if q.needs_calibration:
            ckpt["calibration"] = q.calibration.model_dump(mode="json")
        stages.append(("checkpoint", ckpt))
    if "engine" in backend.stages:
        engine = {"gpu": gpu.key, "sm": gpu.sm, **b.model_dump(mode="json")}
        engine["workers"] = b.workers or p.tp * p.pp
        stages.append(("engine", engine))
    repo = {"backend": backend.repository_kind,
            "world_size": 1 if gpu.reference else p.tp * p.pp,
            "max_seq_len": b.max_seq_len, "max_beam_width": b.max_beam_width,
            "runtime": r.model_dump(mode="json"), "serving": s.serving.model_dump(mode="json")}
    stages.append(("repository", repo))
    return tuple(StagePlan(name=name, params=params) for name, params in stages)

