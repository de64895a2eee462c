"""The Triton repository stage: render + lint + write the model repository, and serve it.

Public API (imports are cheap; Jinja, protobuf and tritonclient load when used):

    render_repository(plan, *, out_dir, tokenizer_dir, engine_dir=None, hf_model_dir=None) -> RepositoryManifest
    lint_repository(path) -> list[Finding]
    TritonServer(repo, ...)            start/stop tritonserver on a repository (tests, serve, smoke)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trtbuild.repository.manifest import MANIFEST_NAME, RepositoryManifest, read_manifest

if TYPE_CHECKING:
    from trtbuild.repository.lint import Finding, lint_repository
    from trtbuild.repository.render import render_files, render_repository
    from trtbuild.repository.server import TritonServer

__all__ = ["MANIFEST_NAME", "Finding", "RepositoryManifest", "TritonServer", "lint_repository", "read_manifest",
           "render_files", "render_repository"]

_LAZY = {"Finding": "lint", "lint_repository": "lint", "render_files": "render", "render_repository": "render",
         "TritonServer": "server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"trtbuild.repository.{_LAZY[name]}"), name)
    raise AttributeError(name)
