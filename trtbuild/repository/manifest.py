"""`trtbuild-repository.json`: what a generated Triton repository is, and what it was checked against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from trtbuild.canon import DocumentedFrozen
from trtbuild.errors import RepositoryError

MANIFEST_NAME = "trtbuild-repository.json"
MODELS_DIR = "models"
TOKENIZER_DIR = "tokenizer"
HF_MODEL_DIR = "hf_model"
MANIFEST_FORMAT = 1


class EngineLimits(DocumentedFrozen):
    """The engine's build-time limits the repository must respect."""

    source: Literal["engine-config", "plan"]
    """`engine-config`: read from the engine's config.json; `plan`: taken from the build plan."""
    path: str | None = None
    """Engine directory (`gpt_model_path`); null for the CPU reference."""
    version: str | None = None
    """TensorRT-LLM version recorded in the engine's config.json."""
    max_batch_size: int
    max_input_len: int
    max_seq_len: int
    max_beam_width: int
    tp: int
    pp: int
    logits_dtype: str
    paged_context_fmha: bool


class CopiedTree(DocumentedFrozen):
    """A directory copied into (or referenced by) the repository."""

    path: str
    """Relative to the repository root when copied; absolute when referenced."""
    copied: bool
    files: dict[str, str]
    """File name → sha256."""


class RepositoryManifest(DocumentedFrozen):
    """Describes one generated repository. Written as trtbuild-repository.json at its root."""

    format: int = MANIFEST_FORMAT
    generator: str
    backend: Literal["tensorrtllm", "python-reference", "vllm", "llmapi"]
    """`python-reference`: `tensorrt_llm` is the CPU reference (a Python model), never an engine;
    `vllm`: `tensorrt_llm_bls` generates with vLLM (trtbuild.backends.vllm); `llmapi`: it generates with
    TensorRT-LLM's LLM API, PyTorch backend (trtbuild.backends.llmapi)."""
    recipe: str
    recipe_sha256: str
    target: str
    """GPU key, or `cpu` for the reference."""
    stage_key: str | None
    """The repository stage's key (its fingerprint, as the cache and report show it); None when rendered
    outside a compile, from a plan whose keys were never resolved."""
    topology: Literal["ensemble", "bls", "both"]
    models: tuple[str, ...]
    client_models: tuple[str, ...]
    """The models clients call: `ensemble` and/or `tensorrt_llm_bls`."""
    decoupled: bool
    max_batch_size: int
    world_size: int
    """Processes `launch.sh` starts: tp x pp (1 for the reference)."""
    engine: EngineLimits
    tokenizer: CopiedTree
    hf_model: CopiedTree | None = None
    end_ids: tuple[int, ...]
    pad_id: int
    templates_sha256: str
    files: dict[str, str]
    """Every rendered file (relative path → sha256)."""
    notes: tuple[str, ...] = ()
    """Decisions worth knowing (e.g. an instance count the repository had to change)."""

    @property
    def reference(self) -> bool:
        return self.backend == "python-reference"

    def to_json_text(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def read_manifest(repo: Path) -> RepositoryManifest:
    """Load the manifest of a repository directory. Raises RepositoryError."""
    path = Path(repo) / MANIFEST_NAME
    try:
        return RepositoryManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RepositoryError(f"{repo}: not a trtbuild repository (no {MANIFEST_NAME})") from None
    except (ValidationError, ValueError) as exc:
        raise RepositoryError(f"{path}: invalid manifest: {exc}") from None
