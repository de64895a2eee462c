"""Render the whole Triton repository in memory, lint it, then write it atomically.

    render_repository(plan, out_dir=..., tokenizer_dir=..., engine_dir=...)      GPU target
    render_repository(plan, out_dir=..., tokenizer_dir=..., hf_model_dir=...)    CPU reference

Layout of ``out_dir``: ``models/`` (the Triton model repository), ``tokenizer/`` (copied tokenizer
files), ``hf_model/`` (reference only: the checkpoint, hard-linked or copied), ``launch.sh``,
``README.md`` and ``trtbuild-repository.json``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from trtbuild.errors import RepositoryError
from trtbuild.fsutil import staged_dir
from trtbuild.plan.planner import BuildPlan
from trtbuild.repository.context import TOPOLOGIES_DIR, RenderContext, build_context
from trtbuild.repository.inputs import digests, hf_model_files, read_engine_limits, read_tokenizer
from trtbuild.repository.lint import Finding, RepoView, lint_view
from trtbuild.repository.manifest import (
    HF_MODEL_DIR,
    MANIFEST_NAME,
    MODELS_DIR,
    TOKENIZER_DIR,
    CopiedTree,
    RepositoryManifest,
)
from trtbuild.resources import templates_dir

TEMPLATES_DIR = templates_dir()
LIB_FILES = {"preprocessing": ("trtbuild_text.py", "trtbuild_prompt.py"),
             "postprocessing": ("trtbuild_text.py",),
             "tensorrt_llm_bls": ("trtbuild_text.py", "trtbuild_prompt.py")}
COPY_HF_MODEL_MAX_BYTES = 4 << 30
"""The reference copies (hard-links where it can) checkpoints up to this size; larger ones are referenced."""


@dataclass(frozen=True)
class RenderedRepository:
    """A repository held in memory: rendered files, files to copy, and its manifest."""

    files: MappingProxyType[str, bytes]
    copies: MappingProxyType[str, Path]
    executable: frozenset[str]
    manifest: RepositoryManifest

    def view(self, root: str = "<rendered>") -> RepoView:
        texts = {path: data.decode("utf-8") for path, data in self.files.items()}
        texts[MANIFEST_NAME] = self.manifest.to_json_text()
        return RepoView(root=root, texts=MappingProxyType(texts),
                        present=frozenset([*self.files, *self.copies, MANIFEST_NAME]))


# ------------------------------------------------------------------------------------------- jinja
def pb_string(value: Any) -> str:
    """A protobuf text-format string literal."""
    out = []
    for ch in str(value):
        if ch in "\\\"":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ch == "\x7f":
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _pb_bool(value: Any) -> str:
    if not isinstance(value, bool):
        raise TypeError(f"expected a bool, got {value!r}")
    return "true" if value else "false"


def jinja_env() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False, trim_blocks=False)
    env.filters["pbstr"] = pb_string
    env.filters["pbbool"] = _pb_bool
    env.filters["pbcomment"] = lambda v: " ".join(str(v).split())
    return env


def templates_digest() -> str:
    h = hashlib.sha256()
    for root in (TEMPLATES_DIR, TOPOLOGIES_DIR):
        for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            h.update(f"{root.name}/{path.relative_to(root)}".encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _render_model_files(env: Any, c: RenderContext) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for model in c.models:
        base = f"{MODELS_DIR}/{model}"
        files[f"{base}/config.pbtxt"] = env.get_template(f"{model}/config.pbtxt.j2").render(c=c).encode()
        python_model = model in LIB_FILES or (model == "tensorrt_llm" and c.reference)
        if python_model:
            for source in sorted((TEMPLATES_DIR / model).glob("*.py")):  # model.py + its own modules
                files[f"{base}/1/{source.name}"] = source.read_bytes()
            for lib in LIB_FILES.get(model, ()):
                files[f"{base}/1/{lib}"] = (TEMPLATES_DIR / "lib" / lib).read_bytes()
        else:
            files[f"{base}/1/.gitkeep"] = b""
    files["launch.sh"] = env.get_template("launch.sh.j2").render(c=c).encode()
    files["README.md"] = env.get_template("README.md.j2").render(c=c).encode()
    return files


def render_files(plan: BuildPlan, *, tokenizer_dir: Path, engine_dir: Path | None = None,
                 hf_model_dir: Path | None = None, copy_hf_model: bool | None = None,
                 engine_ref: str | None = None) -> RenderedRepository:
    """Render every file of the repository in memory (nothing is written).

    ``engine_ref`` is the ``gpt_model_path`` written for a GPU target (default: ``engine_dir``). A
    relative path is relative to the repository directory (``trtbuild compile`` writes ``../engine``: the
    artifact's engine beside it); ``launch.sh`` and ``trtbuild serve`` keep it resolving from their private
    working directory (``launch.private_cwd``).
    """
    reference = bool(plan.target.get("reference"))
    tokenizer = read_tokenizer(plan, Path(tokenizer_dir), hf_model_dir)
    engine = read_engine_limits(plan, engine_dir)
    if engine_ref is not None and engine.path is not None:  # the path the repository uses, not the build's
        engine = engine.model_copy(update={"path": engine_ref})
    par = plan.settings.parallelism
    if not reference and (engine.tp, engine.pp) != (par.tp, par.pp):
        raise RepositoryError(f"the engine at {engine_dir} is tp {engine.tp} x pp {engine.pp} but the plan is tp "
                              f"{par.tp} x pp {par.pp}: rebuild the engine or fix the recipe [world.size]")
    copies: dict[str, Path] = {f"{TOKENIZER_DIR}/{name}": tokenizer.dir / name for name in tokenizer.files}
    hf_tree: CopiedTree | None = None
    hf_path: str | None = None
    if reference:
        if hf_model_dir is None:
            raise RepositoryError("hf_model_dir is required for the CPU reference target")
        hf_files = hf_model_files(Path(hf_model_dir))
        size = sum(p.stat().st_size for p in hf_files)
        copy = copy_hf_model if copy_hf_model is not None else size <= COPY_HF_MODEL_MAX_BYTES
        if copy:
            copies.update({f"{HF_MODEL_DIR}/{p.name}": p for p in hf_files})
            hf_path = f"../../{HF_MODEL_DIR}"
        else:
            hf_path = str(Path(hf_model_dir).resolve())
        hf_tree = CopiedTree(path=HF_MODEL_DIR if copy else hf_path, copied=copy, files=digests(hf_files))
    c = build_context(plan, tokenizer=tokenizer, engine=engine, engine_dir=engine_dir, hf_model_path=hf_path,
                      engine_ref=engine_ref)
    env = jinja_env()
    files = _render_model_files(env, c)
    manifest = RepositoryManifest(
        generator=c.generator, backend="python-reference" if reference else "tensorrtllm",
        recipe=plan.settings.name, recipe_sha256=str(plan.recipe.get("sha256", "")),
        target=str(plan.target.get("key")), stage_key=_stage_key(plan), topology=c.topology,
        models=c.models, client_models=c.client_models, decoupled=c.decoupled, max_batch_size=c.max_batch_size,
        world_size=c.world_size, engine=engine,
        tokenizer=CopiedTree(path=TOKENIZER_DIR, copied=True, files=digests([tokenizer.dir / n for n in tokenizer.files])),
        hf_model=hf_tree, end_ids=c.end_ids, pad_id=c.pad_id, templates_sha256=templates_digest(),
        files={path: hashlib.sha256(data).hexdigest() for path, data in sorted(files.items())}, notes=c.notes)
    return RenderedRepository(files=MappingProxyType(files), copies=MappingProxyType(copies),
                              executable=frozenset({"launch.sh"}), manifest=manifest)


def _stage_key(plan: BuildPlan) -> str | None:
    stage = plan.stage("repository")
    return stage.key if stage is not None else None


# ------------------------------------------------------------------------------------------- write
def _place(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def write_rendered(rendered: RenderedRepository, out_dir: Path) -> None:
    """Write a rendered repository into ``out_dir`` atomically (staging directory + rename)."""
    with staged_dir(Path(out_dir)) as stage:
        for rel, data in rendered.files.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            if rel in rendered.executable:
                path.chmod(0o755)
        for rel, src in rendered.copies.items():
            path = stage / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            _place(src, path)
        (stage / MANIFEST_NAME).write_text(rendered.manifest.to_json_text(), encoding="utf-8")


def render_repository(plan: BuildPlan, *, out_dir: Path, tokenizer_dir: Path, engine_dir: Path | None = None,
                      hf_model_dir: Path | None = None, copy_hf_model: bool | None = None,
                      engine_ref: str | None = None) -> RepositoryManifest:
    """Render, lint (errors → RepositoryError, exit 4) and write the repository; return its manifest."""
    rendered = render_files(plan, tokenizer_dir=tokenizer_dir, engine_dir=engine_dir, hf_model_dir=hf_model_dir,
                            copy_hf_model=copy_hf_model, engine_ref=engine_ref)
    return lint_and_write(rendered, Path(out_dir), engine_dir=engine_dir)


def lint_and_write(rendered: RenderedRepository, out_dir: Path, *, engine_dir: Path | None = None) -> RepositoryManifest:
    """Lint a rendered repository as it will stand at ``out_dir`` (errors → RepositoryError, exit 4, nothing
    written), then write it; returns its manifest. Every backend's renderer ends here."""
    findings = lint_view(rendered.view(str(out_dir)), engine_dir=engine_dir)
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise RepositoryError("the rendered repository fails lint:\n" + "\n".join(f.format() for f in errors))
    write_rendered(rendered, Path(out_dir))
    return rendered.manifest


__all__ = ["Finding", "RenderedRepository", "render_files", "render_repository", "write_rendered"]
