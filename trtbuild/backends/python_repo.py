"""What the Python-model backends (vLLM, LLM API) render alike: the model files they carry and their manifest.

Both serve the Hugging Face checkpoint as fetched from a Triton Python model: the tokenizer is copied into
``tokenizer/``, the checkpoint into ``hf_model/`` up to COPY_HF_MODEL_MAX_BYTES (else referenced by its
absolute path), and the manifest describes the repository with the plan's limits in place of an engine's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from trtbuild.backends.served import ServedSettings
from trtbuild.errors import RepositoryError
from trtbuild.plan.planner import BuildPlan
from trtbuild.repository.inputs import TokenizerInfo, digests, hf_model_files, read_tokenizer
from trtbuild.repository.manifest import (
    HF_MODEL_DIR,
    TOKENIZER_DIR,
    CopiedTree,
    EngineLimits,
    RepositoryManifest,
)
from trtbuild.repository.render import COPY_HF_MODEL_MAX_BYTES, RenderedRepository, templates_digest


def refuse_unservable(settings: ServedSettings, label: str) -> None:
    """RepositoryError listing the settings' errors (what the backend cannot do for this plan), if any."""
    if settings.errors:
        raise RepositoryError(f"the {label} backend cannot serve this plan:\n" +
                              "\n".join(f.format() for f in settings.errors))


@dataclass(frozen=True)
class ModelFiles:
    """The tokenizer and checkpoint a Python-model repository carries."""

    tokenizer: TokenizerInfo
    hf_files: list[Path]
    copied: bool
    """Whether the checkpoint is copied into the repository (else referenced by ``hf_path``)."""
    copies: dict[str, Path]
    """Repository path → source file, for the tokenizer and (when copied) the checkpoint."""
    hf_path: str
    """How the model's config names the checkpoint: relative to a model directory, or absolute."""


def model_files(plan: BuildPlan, *, hf_model_dir: Path, tokenizer_dir: Path | None,
                copy_hf_model: bool | None) -> ModelFiles:
    hf_model_dir = Path(hf_model_dir)
    tokenizer = read_tokenizer(plan, Path(tokenizer_dir or hf_model_dir), hf_model_dir)
    hf_files = hf_model_files(hf_model_dir)
    copied = copy_hf_model if copy_hf_model is not None else \
        sum(p.stat().st_size for p in hf_files) <= COPY_HF_MODEL_MAX_BYTES
    copies = {f"{TOKENIZER_DIR}/{name}": tokenizer.dir / name for name in tokenizer.files}
    if copied:
        copies.update({f"{HF_MODEL_DIR}/{p.name}": p for p in hf_files})
    hf_path = f"../../{HF_MODEL_DIR}" if copied else str(hf_model_dir.resolve())
    return ModelFiles(tokenizer=tokenizer, hf_files=hf_files, copied=copied, copies=copies, hf_path=hf_path)


def rendered_repository(plan: BuildPlan, settings: ServedSettings, model: ModelFiles, files: Mapping[str, bytes], *,
                        backend: str, generator: str, version: str, tp: int, pp: int, models: tuple[str, ...],
                        client_models: tuple[str, ...]) -> RenderedRepository:
    """The rendered files with their manifest: the plan's limits stand where an engine's would."""
    s = plan.settings
    limits = EngineLimits(source="plan", path=None, version=version, max_batch_size=settings.max_batch_size,
                          max_input_len=settings.max_input_len, max_seq_len=settings.max_seq_len, max_beam_width=1,
                          tp=tp, pp=pp, logits_dtype="float32", paged_context_fmha=True)
    stage = plan.stage("repository")
    tokenizer = model.tokenizer
    manifest = RepositoryManifest(
        generator=generator, backend=backend, recipe=s.name, recipe_sha256=str(plan.recipe.get("sha256", "")),
        target=str(plan.target.get("key")), stage_key=stage.key if stage is not None else "", topology="both",
        models=models, client_models=client_models, decoupled=settings.decoupled,
        max_batch_size=settings.max_batch_size, world_size=1, engine=limits,
        tokenizer=CopiedTree(path=TOKENIZER_DIR, copied=True,
                             files=digests([tokenizer.dir / n for n in tokenizer.files])),
        hf_model=CopiedTree(path=HF_MODEL_DIR if model.copied else model.hf_path, copied=model.copied,
                            files=digests(model.hf_files)),
        end_ids=tokenizer.end_ids, pad_id=tokenizer.pad_id, templates_sha256=templates_digest(),
        files={path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())},
        notes=tuple(f.format() for f in settings.findings))
    return RenderedRepository(files=MappingProxyType(dict(files)), copies=MappingProxyType(model.copies),
                              executable=frozenset({"launch.sh"}), manifest=manifest)
