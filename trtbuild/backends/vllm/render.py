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

import json
from dataclasses import dataclass
from pathlib import Path

from trtbuild import __version__
from trtbuild.plan.planner import BuildPlan
from trtbuild.repository.context import DTYPE_TO_TRITON, Contract, load_contract
from trtbuild.repository.launch import script_ranks
from trtbuild.repository.manifest import (
    MODELS_DIR,
    TOKENIZER_DIR,
    RepositoryManifest,
)
from trtbuild.repository.render import (
    LIB_FILES,
    TEMPLATES_DIR,
    RenderedRepository,
    jinja_env,
    lint_and_write,
)

from ..python_repo import model_files, refuse_unservable, rendered_repository
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
    refuse_unservable(settings, "vLLM")
    model = model_files(plan, hf_model_dir=hf_model_dir, tokenizer_dir=tokenizer_dir, copy_hf_model=copy_hf_model)
    c = _context(plan, settings, end_ids=model.tokenizer.end_ids, pad_id=model.tokenizer.pad_id,
                 hf_model_path=model.hf_path)
    par = plan.settings.parallelism
    return rendered_repository(plan, settings, model, _files(c), backend=BACKEND, generator=c.generator,
                               version=VLLM_VERSION, tp=1 if settings.cpu else par.tp, pp=1 if settings.cpu else par.pp,
                               models=MODELS, client_models=CLIENT_MODELS)


def render_vllm_repository(plan: BuildPlan, *, out_dir: Path, hf_model_dir: Path, tokenizer_dir: Path | None = None,
                           copy_hf_model: bool | None = None) -> RepositoryManifest:
    """Render, lint (errors → RepositoryError, exit 4) and write the vLLM repository; return its manifest."""
    rendered = render_vllm_files(plan, hf_model_dir=hf_model_dir, tokenizer_dir=tokenizer_dir,
                                 copy_hf_model=copy_hf_model)
    return lint_and_write(rendered, Path(out_dir))
