"""Lint a Triton repository: the mistakes that otherwise show up at serve time (or never).

Every finding names the file and a rule id. Rules (all errors unless noted):

    config.parse                 config.pbtxt parses as Triton's ModelConfig protobuf
    config.name                  `name:` equals the model's directory name
    config.bool                  boolean parameters are exactly `true` / `false`
    config.duplicate             (warning) a tensor name declared twice in one model
    template.placeholder         no `${...}` left in any generated text file
    model.files                  version directory 1/ exists; Python models have 1/model.py;
                                 the tokenizer the models load is there
    manifest.digest              (warning) a generated file changed since it was generated
    trtllm.kv_reuse_explicit     `enable_kv_cache_reuse` is set (missing means *true* in C++)
    trtllm.required              every parameter the C++ backend reads without a default is present, with a
                                 value it accepts, and an engine path is set (else the model fails to load)
    trtllm.parameter_value       a value the backend ignores (outside the set it compares with, or not
                                 parsable as its type): it warns and silently uses its default
                                 (both from the backend_parameters contract fixture, trtbuild/contracts/)
    trtllm.paged_context         KV reuse or chunked context on an engine without paged context FMHA
    reference.label              manifest backend and the `tensorrt_llm` backend agree
    batch.engine_limit           Triton max_batch_size of tensorrt_llm <= the engine's max_batch_size
    batch.ensemble               ensemble max_batch_size <= every step model's
    decoupled.consistent         tensorrt_llm and tensorrt_llm_bls (and the manifest) agree
    dtype.logits                 logits tensors have one dtype across ensemble, BLS and tensorrt_llm
    dtype.prompt_table           prompt_embedding_table has one dtype across them
    ensemble.mapping             every input_map/output_map names a real tensor; dtype and dims match
    ensemble.required_input      a required step input is not mapped
    ensemble.decoupled_origin    a step after a decoupled model consumes only that model's tensors
                                 (Triton refuses to load the ensemble otherwise)
    ensemble.unused_tensor       an internal tensor no step consumes (Triton refuses this too)
    world.size                   world size = tp x pp, and launch.sh starts that many ranks
    llmapi.*                     an LLM-API repository's 1/model.yaml (trtbuild/backends/llmapi/lint.py)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from trtbuild.contracts.trtllm import BackendParameter, backend_parameters, bool_spellings, required_one_of
from trtbuild.repository.manifest import MANIFEST_NAME, MODELS_DIR, TOKENIZER_DIR

BOOL_PARAMS = frozenset({
    "enable_kv_cache_reuse", "enable_chunked_context", "exclude_input_in_output", "multi_block_mode",
    "enable_context_fmha_fp32_acc", "cuda_graph_mode", "normalize_log_probs", "kv_cache_onboard_blocks",
    "speculative_decoding_fast_logits", "add_special_tokens", "skip_special_tokens", "accumulate_tokens",
})
LOGITS_TENSORS = ("context_logits", "generation_logits", "draft_logits")
TEXT_SUFFIXES = (".pbtxt", ".py", ".sh", ".md", ".json", ".yaml", ".txt")
COPIED_TREES = (TOKENIZER_DIR + "/", "hf_model/")


@dataclass(frozen=True)
class Finding:
    rule: str
    file: str
    message: str
    severity: str = "error"

    def format(self) -> str:
        return f"{self.file}: {self.severity}: {self.message} [{self.rule}]"


@dataclass(frozen=True)
class RepoView:
    """A repository as lint sees it: text of the generated files, and which paths exist."""

    root: str
    texts: Mapping[str, str]
    present: frozenset[str]


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    dims: tuple[int, ...]
    optional: bool


def load_view(path: Path) -> RepoView:
    """Read a repository from disk: a trtbuild repository, its models/ dir, or any Triton repository."""
    root = Path(path)
    prefix = ""
    if not (root / MANIFEST_NAME).is_file() and not (root / MODELS_DIR).is_dir():
        prefix = MODELS_DIR + "/"  # a bare Triton model repository
    texts: dict[str, str] = {}
    present: set[str] = set()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        rel = prefix + file.relative_to(root).as_posix()
        present.add(rel)
        if rel.startswith(COPIED_TREES) or not file.name.endswith(TEXT_SUFFIXES) or file.stat().st_size > 4 << 20:
            continue
        try:
            texts[rel] = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return RepoView(root=str(root), texts=MappingProxyType(texts), present=frozenset(present))


def lint_repository(path: Path) -> list[Finding]:
    """Lint a repository on disk. Engine limits come from the engine's config.json when reachable."""
    return lint_view(load_view(Path(path)))


# ------------------------------------------------------------------------------------------ parsing
def _parse_configs(view: RepoView, out: list[Finding]) -> dict[str, Any]:
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    configs: dict[str, Any] = {}
    for rel, text in sorted(view.texts.items()):
        parts = rel.split("/")
        if len(parts) != 3 or parts[0] != MODELS_DIR or parts[2] != "config.pbtxt":
            continue
        model = parts[1]
        try:
            cfg = text_format.Parse(text, model_config_pb2.ModelConfig())
        except text_format.ParseError as exc:
            out.append(Finding("config.parse", rel, f"not a valid Triton ModelConfig: {exc}"))
            continue
        if cfg.name and cfg.name != model:
            out.append(Finding("config.name", rel, f"name {cfg.name!r} differs from the directory name {model!r}"))
        configs[model] = cfg
    return configs


def _tensors(items: Any) -> dict[str, Tensor]:
    from tritonclient.grpc import model_config_pb2

    return {t.name: Tensor(t.name, model_config_pb2.DataType.Name(t.data_type), tuple(t.dims),
                           bool(getattr(t, "optional", False))) for t in items}


def _params(cfg: Any) -> dict[str, str]:
    return {k: v.string_value for k, v in cfg.parameters.items()}


def _dims_match(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return len(a) == len(b) and all(x == y or x == -1 or y == -1 for x, y in zip(a, b))


def _file(model: str) -> str:
    return f"{MODELS_DIR}/{model}/config.pbtxt"


# -------------------------------------------------------------------------------------------- rules
def lint_view(view: RepoView, *, engine_dir: Path | None = None) -> list[Finding]:
    out: list[Finding] = []
    manifest = _manifest(view, out)
    for rel, text in sorted(view.texts.items()):
        if rel.startswith(COPIED_TREES):
            continue
        for m in re.finditer(r"\$\{[^}\n]*\}?", text):
            line = text.count("\n", 0, m.start()) + 1
            out.append(Finding("template.placeholder", f"{rel}:{line}", f"unfilled placeholder {m.group(0)!r}"))
    configs = _parse_configs(view, out)
    _model_rules(view, configs, manifest, out)
    _trtllm_rules(configs, manifest, engine_dir, out, view.root)
    _consistency_rules(configs, manifest, out)
    _ensemble_rules(configs, out)
    _launch_rules(view, manifest, out)
    from trtbuild.backends.llmapi.lint import llmapi_lint  # the LLM-API backend's own rules

    out += llmapi_lint(view, configs)
    return out


def _manifest(view: RepoView, out: list[Finding]) -> dict[str, Any] | None:
    text = view.texts.get(MANIFEST_NAME)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        out.append(Finding("model.files", MANIFEST_NAME, f"manifest is not JSON: {exc}"))
        return None
    for rel, digest in (data.get("files") or {}).items():
        current = view.texts.get(rel)
        if current is not None and hashlib.sha256(current.encode()).hexdigest() != digest:
            out.append(Finding("manifest.digest", rel, "changed since trtbuild generated it", "warning"))
    return data if isinstance(data, dict) else None


def _model_rules(view: RepoView, configs: dict[str, Any], manifest: dict[str, Any] | None,
                 out: list[Finding]) -> None:
    for model, cfg in configs.items():
        rel = _file(model)
        for kind, items in (("input", cfg.input), ("output", cfg.output)):
            names = [t.name for t in items]
            for dup in sorted({n for n in names if names.count(n) > 1}):
                out.append(Finding("config.duplicate", rel, f"{kind} {dup!r} is declared twice", "warning"))
        for key, value in _params(cfg).items():
            if key in BOOL_PARAMS and value not in ("true", "false"):
                out.append(Finding("config.bool", rel, f"parameter {key} is {value!r}: write true or false"))
        base = f"{MODELS_DIR}/{model}/1/"
        if not any(p.startswith(base) for p in view.present):
            out.append(Finding("model.files", rel, f"no version directory {base}"))
        if cfg.backend == "python" and base + "model.py" not in view.present:
            out.append(Finding("model.files", rel, f"Python model without {base}model.py"))
        tok = _params(cfg).get("tokenizer_dir")
        if tok and manifest is not None and tok.startswith("../../"):
            target = tok[len("../../"):].rstrip("/") + "/"
            if not any(p.startswith(target) for p in view.present):
                out.append(Finding("model.files", rel, f"tokenizer_dir {tok} has no files in the repository"))


def _trtllm_rules(configs: dict[str, Any], manifest: dict[str, Any] | None, engine_dir: Path | None,
                  out: list[Finding], root: str | None = None) -> None:
    cfg = configs.get("tensorrt_llm")
    if cfg is None:
        return
    rel, params = _file("tensorrt_llm"), _params(cfg)
    if "enable_kv_cache_reuse" not in params:
        out.append(Finding("trtllm.kv_reuse_explicit", rel,
                           "enable_kv_cache_reuse is not set: the C++ backend then reuses KV blocks (true)"))
    _contract_rules(rel, params, out)
    engine = dict((manifest or {}).get("engine") or {})
    ref = params.get("gpt_model_path") if cfg.backend != "python" else None
    if engine_dir is None and ref and not Path(ref).is_absolute() and root:
        ref = str(Path(root) / ref)  # relative to the repository directory (where launch.sh starts the server)
    engine_config = _engine_config(engine_dir or ref)
    if engine_config:
        engine.update(engine_config)
    if manifest is not None:
        reference = manifest.get("backend") == "python-reference"
        if reference != (cfg.backend == "python"):
            out.append(Finding("reference.label", rel, f"manifest says backend {manifest.get('backend')!r} but "
                               f"tensorrt_llm uses backend {cfg.backend!r}"))
    if engine.get("max_batch_size") and cfg.max_batch_size > int(engine["max_batch_size"]):
        out.append(Finding("batch.engine_limit", rel, f"max_batch_size {cfg.max_batch_size} exceeds the engine's "
                           f"max_batch_size {engine['max_batch_size']} (the engine's limit wins at run time)"))
    if engine.get("paged_context_fmha") is False:
        for key in ("enable_kv_cache_reuse", "enable_chunked_context"):
            if params.get(key) == "true":
                out.append(Finding("trtllm.paged_context", rel, f"{key} needs an engine built with paged context FMHA"))
    if manifest is not None and engine.get("tp") and manifest.get("backend") == "tensorrtllm":
        want = int(engine["tp"]) * int(engine.get("pp", 1))
        if int(manifest.get("world_size", 0)) != want:
            out.append(Finding("world.size", MANIFEST_NAME, f"world_size {manifest.get('world_size')} but the "
                               f"engine is tp {engine['tp']} x pp {engine.get('pp', 1)} = {want}"))


def _contract_rules(rel: str, params: dict[str, str], out: list[Finding]) -> None:
    """Parameters against what the C++ backend reads (the backend_parameters contract fixture)."""
    known, bools = backend_parameters(), bool_spellings()
    for name, req in known.items():
        if req.required and name not in params:
            out.append(Finding("trtllm.required", rel, f"parameter {name} is missing: the C++ backend reads it "
                               f"without a default ({req.source}) and the model fails to load (\"Cannot find "
                               f"parameter with name: {name}\"); write it, empty if unused"))
    for group in required_one_of():
        if not any(params.get(name) for name in group):
            out.append(Finding("trtllm.required", rel, f"none of {', '.join(group)} is set: the model fails to load "
                               "(the engine directory goes in gpt_model_path)"))
    for key, value in params.items():
        p: BackendParameter | None = known.get(key)
        if p is None or key in BOOL_PARAMS or (value == "" and (p.empty_is_unset or p.accepted is None)
                                               and p.type == "std::string"):
            continue  # not read by the backend / checked by config.bool / an empty string the backend skips
        fails = p.invalid.startswith("throws")
        if p.accepted is not None and value not in p.accepted:
            what = "the model fails to load" if fails else f"the backend ignores it and uses its default ({p.default_text()})"
            out.append(Finding("trtllm.required" if fails else "trtllm.parameter_value", rel,
                               f"{key} is {value!r}; the backend accepts only {', '.join(p.accepted)}: {what}"))
        elif not p.parses(value, bools):
            out.append(Finding("trtllm.parameter_value", rel, f"{key} is {value!r}, which the backend cannot read "
                               f"as {p.type}: it ignores it and uses its default ({p.default_text()})"))


def _engine_config(path: Any) -> dict[str, Any]:
    if not path:
        return {}
    file = Path(str(path)) / "config.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    build = data.get("build_config") or {}
    mapping = (data.get("pretrained_config") or {}).get("mapping") or {}
    found = {"max_batch_size": build.get("max_batch_size"), "tp": mapping.get("tp_size"), "pp": mapping.get("pp_size"),
             "paged_context_fmha": (build.get("plugin_config") or {}).get("use_paged_context_fmha")}
    return {k: v for k, v in found.items() if v is not None}


def _consistency_rules(configs: dict[str, Any], manifest: dict[str, Any] | None, out: list[Finding]) -> None:
    trt, bls = configs.get("tensorrt_llm"), configs.get("tensorrt_llm_bls")
    if trt is not None and bls is not None:
        a, b = trt.model_transaction_policy.decoupled, bls.model_transaction_policy.decoupled
        if a != b:
            out.append(Finding("decoupled.consistent", _file("tensorrt_llm_bls"), f"decoupled is {str(b).lower()} "
                               f"here but {str(a).lower()} in tensorrt_llm: streaming breaks on one path"))
    if (trt is not None and manifest is not None and "decoupled" in manifest
            and bool(manifest["decoupled"]) != trt.model_transaction_policy.decoupled):
        out.append(Finding("decoupled.consistent", _file("tensorrt_llm"), "decoupled differs from the manifest"))
    for rule, names in (("dtype.logits", LOGITS_TENSORS), ("dtype.prompt_table", ("prompt_embedding_table",))):
        seen: dict[str, tuple[str, str]] = {}
        for model in ("tensorrt_llm", "ensemble", "tensorrt_llm_bls"):
            cfg = configs.get(model)
            if cfg is None:
                continue
            tensors = {**_tensors(cfg.input), **_tensors(cfg.output)}
            for name in names:
                if name in tensors:
                    seen.setdefault(tensors[name].dtype, (model, name))
        if len(seen) > 1:
            detail = ", ".join(f"{m}.{n} is {d}" for d, (m, n) in sorted(seen.items()))
            out.append(Finding(rule, _file("ensemble" if "ensemble" in configs else "tensorrt_llm_bls"),
                               f"dtypes disagree: {detail}"))


def _ensemble_rules(configs: dict[str, Any], out: list[Finding]) -> None:
    ens = configs.get("ensemble")
    if ens is None or ens.platform != "ensemble":
        return
    rel = _file("ensemble")
    available = dict(_tensors(ens.input))
    origin = dict.fromkeys(available, "")  # tensor -> decoupled model it streams from ("" = none)
    produced: dict[str, Tensor] = {}
    consumed: set[str] = set()
    for step in ens.ensemble_scheduling.step:
        cfg = configs.get(step.model_name)
        if cfg is None:
            out.append(Finding("ensemble.mapping", rel, f"step model {step.model_name!r} is not in the repository"))
            continue
        if cfg.max_batch_size and ens.max_batch_size > cfg.max_batch_size:
            out.append(Finding("batch.ensemble", rel, f"ensemble max_batch_size {ens.max_batch_size} exceeds "
                               f"{step.model_name}'s {cfg.max_batch_size}"))
        inputs, outputs = _tensors(cfg.input), _tensors(cfg.output)
        for key, value in step.input_map.items():
            consumed.add(value)
            where = f"step {step.model_name}: input_map {key} <- {value}"
            model_t, source = inputs.get(key), available.get(value)
            if model_t is None:
                out.append(Finding("ensemble.mapping", rel, f"{where}: {step.model_name} has no input {key!r}"))
            elif source is None:
                out.append(Finding("ensemble.mapping", rel, f"{where}: no ensemble input or earlier output {value!r}"))
            elif source.dtype != model_t.dtype or not _dims_match(source.dims, model_t.dims):
                out.append(Finding("ensemble.mapping", rel, f"{where}: {source.dtype} {list(source.dims)} does not "
                                   f"match {model_t.dtype} {list(model_t.dims)}"))
        for name, t in inputs.items():
            if not t.optional and name not in step.input_map:
                out.append(Finding("ensemble.required_input", rel, f"step {step.model_name}: required input "
                                   f"{name!r} is not mapped"))
        sources = {origin.get(v, "") for v in step.input_map.values()}
        streamed = sorted(o for o in sources if o)
        if streamed and len(sources) > 1:
            out.append(Finding("ensemble.decoupled_origin", rel, f"step {step.model_name} mixes tensors streamed "
                               f"by {', '.join(streamed)} with other tensors; Triton allows a step after a "
                               "decoupled model to consume only that model's outputs"))
        step_origin = step.model_name if cfg.model_transaction_policy.decoupled else (streamed[0] if streamed else "")
        for key, value in step.output_map.items():
            model_t = outputs.get(key)
            if model_t is None:
                out.append(Finding("ensemble.mapping", rel, f"step {step.model_name}: output_map {key} -> {value}: "
                                   f"{step.model_name} has no output {key!r}"))
                continue
            produced[value] = model_t
            available[value] = model_t
            origin[value] = step_origin
    ens_outputs = _tensors(ens.output)
    for name, t in ens_outputs.items():
        source = produced.get(name)
        if source is None:
            out.append(Finding("ensemble.mapping", rel, f"ensemble output {name!r} is produced by no step"))
        elif source.dtype != t.dtype or not _dims_match(source.dims, t.dims):
            out.append(Finding("ensemble.mapping", rel, f"ensemble output {name}: {t.dtype} {list(t.dims)} but the "
                               f"step produces {source.dtype} {list(source.dims)}"))
    for name in sorted(set(produced) - consumed - set(ens_outputs)):
        out.append(Finding("ensemble.unused_tensor", rel, f"tensor {name!r} is produced but no step consumes it"))
    for name in sorted(set(_tensors(ens.input)) - consumed):
        out.append(Finding("ensemble.unused_tensor", rel, f"ensemble input {name!r} reaches no step", "warning"))


def _launch_rules(view: RepoView, manifest: dict[str, Any] | None, out: list[Finding]) -> None:
    script = view.texts.get("launch.sh")
    if script is None or manifest is None:
        return
    live = [line for line in script.splitlines() if not line.lstrip().startswith("#")]
    ranks = sum(line.count("shm-region-prefix-name=") for line in live)
    world = int(manifest.get("world_size", 1))
    if ranks != world:
        out.append(Finding("world.size", "launch.sh", f"starts {ranks} tritonserver rank(s), world size is {world}"))
