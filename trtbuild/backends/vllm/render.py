"""Render the vLLM backend's Triton repository: in memory, linted, then written atomically.

    render_vllm_files(plan, *, hf_model_dir, tokenizer_dir=None, copy_hf_model=None) -> RenderedRepository
    render_vllm_repository(plan, *, out_dir, hf_model_dir, tokenizer_dir=None, copy_hf_model=None)
        -> RepositoryManifest

Layout (as the other backends): ``models/tensorrt_llm_bls`` (the Python model around vLLM, with the
shared trtbuild_text.py / trtbuild_prompt.py beside it), ``models/ensemble`` (one step: the same contract
under the other client name), ``tokenizer/``, ``hf_model/`` (the checkpoint vLLM loads, hard-linked or
copied up to COPY_HF_MODEL_MAX_BYTES), ``launch.sh``, ``README.md``, ``trtbuild-repository.json``.
Reuses the repository stage's Jinja environment, tokenizer reading, copying, lint and atomic write.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from trtbuild import __version__
from trtbuild.errors import RepositoryError
from trtbuild.plan.planner import BuildPlan
from trtbuild.repository.context import DTYPE_TO_TRITON, Contract, load_contract
from trtbuild.repository.inputs import digests, hf_model_files, read_tokenizer
from trtbuild.repository.launch import script_ranks
from trtbuild.repository.lint import lint_view
from trtbuild.repository.manifest import (
    HF_MODEL_DIR,
    MODELS_DIR,
    TOKENIZER_DIR,
    CopiedTree,
    EngineLimits,
    RepositoryManifest,
)
from trtbuild.repository.render import (
    COPY_HF_MODEL_MAX_BYTES,
    LIB_FILES,
    TEMPLATES_DIR,
    RenderedRepository,
    jinja_env,
    templates_digest,
    write_rendered,
)

from .settings import VLLM_VERSION, VllmSettings, vllm_settings

BACKEND = "vllm"
SERVING_MODEL = "tensorrt_llm_bls"
"""The Python model that holds the engine; `ensemble` forwards to it (one engine, two client names)."""
MODELS = ("tensorrt_llm_bls", "ensemble")
CLIENT_MODELS = ("ensemble", "tensorrt_llm_bls")
TEMPLATE_DIR = "vllm"


@dataclass(frozen=True)
class VllmRenderContext:
    generator: str
    recipe_name: str
    target_name: str
    vllm_version: str
    cpu: bool
    max_batch_size: int
    max_queue_delay_us: int
    max_queue_size: int
    decoupled: bool
    client: Contract
    tokenizer_dir: str
    hf_model_dir: str
    add_special_tokens: bool
    skip_special_tokens: bool
    end_ids: tuple[int, ...]
    pad_id: int
    stop_words_json: str
    bad_words_json: str
    max_input_len: int
    max_seq_len: int
    exclude_input_in_output: bool
    kv_reuse: bool
    engine_args_json: str
    engine_env_json: str
    launch_ranks: tuple[tuple[str, ...], ...]


def _context(plan: BuildPlan, settings: VllmSettings, *, end_ids: tuple[int, ...], pad_id: int,
             hf_model_path: str) -> VllmRenderContext:
    s = plan.settings
    dtype = DTYPE_TO_TRITON.get(s.dtype, "TYPE_FP16")
    return VllmRenderContext(
        generator=f"trtbuild {__version__}", recipe_name=s.name, target_name=str(plan.target.get("name")),
        vllm_version=VLLM_VERSION, cpu=settings.cpu, max_batch_size=settings.max_batch_size,
        max_queue_delay_us=settings.max_queue_delay_us, max_queue_size=settings.max_queue_size,
        decoupled=settings.decoupled, client=load_contract("TYPE_FP32", dtype),
        tokenizer_dir=f"../../{TOKENIZER_DIR}", hf_model_dir=hf_model_path,
        add_special_tokens=s.serving.tokenizer.add_special_tokens,
        skip_special_tokens=s.serving.tokenizer.skip_special_tokens, end_ids=end_ids, pad_id=pad_id,
        stop_words_json=json.dumps(list(s.serving.stop_words), ensure_ascii=False),
        bad_words_json=json.dumps(list(s.serving.bad_words), ensure_ascii=False),
        max_input_len=settings.max_input_len, max_seq_len=settings.max_seq_len,
        exclude_input_in_output=settings.exclude_input_in_output, kv_reuse=s.runtime.kv_cache.reuse,
        engine_args_json=json.dumps(settings.engine_args, sort_keys=True),
        engine_env_json=json.dumps({"TOKENIZERS_PARALLELISM": "false"}, sort_keys=True),
        launch_ranks=tuple(tuple(rank) for rank in script_ranks(1)),
    )


def _files(c: VllmRenderContext) -> dict[str, bytes]:
    env = jinja_env()
    bls = f"{MODELS_DIR}/{SERVING_MODEL}"
    files = {
        f"{bls}/config.pbtxt": env.get_template(f"{TEMPLATE_DIR}/config.pbtxt.j2").render(c=c).encode(),
        f"{bls}/1/model.py": (TEMPLATES_DIR / TEMPLATE_DIR / "model.py").read_bytes(),
        f"{MODELS_DIR}/ensemble/config.pbtxt": env.get_template(f"{TEMPLATE_DIR}/ensemble.pbtxt.j2").render(c=c).encode(),
        f"{MODELS_DIR}/ensemble/1/.gitkeep": b"",
        "launch.sh": env.get_template(f"{TEMPLATE_DIR}/launch.sh.j2").render(c=c).encode(),
        "README.md": env.get_template(f"{TEMPLATE_DIR}/README.md.j2").render(c=c).encode(),
    }
    for lib in LIB_FILES["tensorrt_llm_bls"]:
        files[f"{bls}/1/{lib}"] = (TEMPLATES_DIR / "lib" / lib).read_bytes()
    return files


def render_vllm_files(plan: BuildPlan, *, hf_model_dir: Path, tokenizer_dir: Path | None = None,
                      copy_hf_model: bool | None = None) -> RenderedRepository:
    """Render every file of the vLLM repository in memory (nothing is written).

    Raises RepositoryError when the plan asks for something the vLLM backend cannot do (the errors of
    ``vllm_settings(plan).findings``) or when the checkpoint or tokenizer is missing.
    """
    settings = vllm_settings(plan)
    if settings.errors:
        raise RepositoryError("the vLLM backend cannot serve this plan:\n" +
                              "\n".join(f.format() for f in settings.errors))
    hf_model_dir = Path(hf_model_dir)
    tokenizer = read_tokenizer(plan, Path(tokenizer_dir or hf_model_dir), hf_model_dir)
    hf_files = hf_model_files(hf_model_dir)
    copy = copy_hf_model if copy_hf_model is not None else \
        sum(p.stat().st_size for p in hf_files) <= COPY_HF_MODEL_MAX_BYTES
    copies = {f"{TOKENIZER_DIR}/{name}": tokenizer.dir / name for name in tokenizer.files}
    if copy:
        copies.update({f"{HF_MODEL_DIR}/{p.name}": p for p in hf_files})
    hf_path = f"../../{HF_MODEL_DIR}" if copy else str(hf_model_dir.resolve())
    c = _context(plan, settings, end_ids=tokenizer.end_ids, pad_id=tokenizer.pad_id, hf_model_path=hf_path)
    files = _files(c)
    s = plan.settings
    limits = EngineLimits(source="plan", path=None, version=VLLM_VERSION, max_batch_size=settings.max_batch_size,
                          max_input_len=settings.max_input_len, max_seq_len=settings.max_seq_len, max_beam_width=1,
                          tp=1 if settings.cpu else s.parallelism.tp, pp=1 if settings.cpu else s.parallelism.pp,
                          logits_dtype="float32", paged_context_fmha=True)
    stage = plan.stage("repository")
    manifest = RepositoryManifest(
        generator=c.generator, backend=BACKEND, recipe=s.name, recipe_sha256=str(plan.recipe.get("sha256", "")),
        target=str(plan.target.get("key")), stage_key=stage.key if stage is not None else "", topology="both",
        models=MODELS, client_models=CLIENT_MODELS, decoupled=settings.decoupled,
        max_batch_size=settings.max_batch_size, world_size=1, engine=limits,
        tokenizer=CopiedTree(path=TOKENIZER_DIR, copied=True,
                             files=digests([tokenizer.dir / n for n in tokenizer.files])),
        hf_model=CopiedTree(path=HF_MODEL_DIR if copy else hf_path, copied=copy, files=digests(hf_files)),
        end_ids=tokenizer.end_ids, pad_id=tokenizer.pad_id, templates_sha256=templates_digest(),
        files={path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
        notes=tuple(f.format() for f in settings.findings))
    return RenderedRepository(files=MappingProxyType(files), copies=MappingProxyType(copies),
                              executable=frozenset({"launch.sh"}), manifest=manifest)


def render_vllm_repository(plan: BuildPlan, *, out_dir: Path, hf_model_dir: Path, tokenizer_dir: Path | None = None,
                           copy_hf_model: bool | None = None) -> RepositoryManifest:
    """Render, lint (errors → RepositoryError, exit 4) and write the vLLM repository; return its manifest."""
    rendered = render_vllm_files(plan, hf_model_dir=hf_model_dir, tokenizer_dir=tokenizer_dir,
                                 copy_hf_model=copy_hf_model)
    errors = [f for f in lint_view(rendered.view(str(out_dir))) if f.severity == "error"]
    if errors:
        raise RepositoryError("the rendered repository fails lint:\n" + "\n".join(f.format() for f in errors))
    write_rendered(rendered, Path(out_dir))
    return rendered.manifest
