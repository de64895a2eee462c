"""Rendering: golden files per example recipe x GPU (and the reference), determinism, engine limits,
labelling, atomic writes. `pytest --update-golden` rewrites the golden files (review the diff)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from trtbuild.errors import RepositoryError
from trtbuild.repository.render import render_files, render_repository

from .helpers import FAKE_ENGINE_ROOT, GOLDEN, ROOT, plan_for

CASES = [("llama-3.1-70b-fp8-tp4", "h100"), ("llama-3.1-8b-fp8", "h100"), ("llama-3.1-8b-fp8", "a100"),
         ("mistral-7b-int4-awq", "l4"), ("qwen2.5-7b", "h100"), ("qwen2.5-7b", "cpu")]
SHA = re.compile(r"\b[0-9a-f]{64}\b")


def _render(recipe: str, gpu: str, tokenizer: Path, **kw):
    plan = plan_for(ROOT / "recipes" / f"{recipe}.yaml", gpu)
    if gpu == "cpu":
        return render_files(plan, tokenizer_dir=tokenizer, hf_model_dir=tokenizer, **kw)
    return render_files(plan, tokenizer_dir=tokenizer, engine_dir=FAKE_ENGINE_ROOT / recipe / gpu, **kw)


def _pinned(rendered) -> dict[str, str]:
    """What the golden files pin: every config.pbtxt, launch.sh, and the manifest (digests masked)."""
    files = {rel: data.decode() for rel, data in rendered.files.items()
             if rel.endswith("config.pbtxt") or rel == "launch.sh"}
    manifest = json.loads(rendered.manifest.to_json_text())
    files["trtbuild-repository.json"] = SHA.sub("<sha256>", json.dumps(manifest, indent=2, sort_keys=True)) + "\n"
    return files


@pytest.mark.parametrize(("recipe", "gpu"), CASES, ids=[f"{r}--{g}" for r, g in CASES])
def test_golden(recipe: str, gpu: str, tiny_model: Path, update_golden: bool) -> None:
    # The example recipes' tokenizers are not available offline: the tiny model's stands in (it only
    # decides copied files, masked here, and end ids where a recipe does not set serving.end_ids).
    pinned = _pinned(_render(recipe, gpu, tiny_model))
    root = GOLDEN / f"{recipe}--{gpu}"
    if update_golden:
        for rel, text in pinned.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text, encoding="utf-8")
        for old in root.rglob("*"):
            if old.is_file() and old.relative_to(root).as_posix() not in pinned:
                old.unlink()
    expected = {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in root.rglob("*") if p.is_file()}
    assert sorted(expected) == sorted(pinned), "files differ: run pytest --update-golden and review the diff"
    for rel, text in pinned.items():
        assert text == expected[rel], f"{rel} differs from {root / rel}: run pytest --update-golden and review"


def test_rendering_is_deterministic(tiny_model: Path) -> None:
    a, b = _render("llama-3.1-8b-fp8", "h100", tiny_model), _render("llama-3.1-8b-fp8", "h100", tiny_model)
    assert dict(a.files) == dict(b.files) and a.manifest == b.manifest


def test_templates_fail_on_undefined_values() -> None:
    import jinja2

    from trtbuild.repository.render import jinja_env

    with pytest.raises(jinja2.UndefinedError):
        jinja_env().get_template("ensemble/config.pbtxt.j2").render(c={"generator": "x"})


def test_gpu_repository_runs_the_cpp_backend_with_every_parameter_explicit(tiny_model: Path) -> None:
    r = _render("llama-3.1-8b-fp8", "h100", tiny_model)
    config = r.files["models/tensorrt_llm/config.pbtxt"].decode()
    assert 'backend: "tensorrtllm"' in config and r.manifest.backend == "tensorrtllm"
    params = dict(re.findall(r'key: "([^"]+)" value \{ string_value: "([^"]*)" \}', config))
    assert params["gpt_model_path"] == str(FAKE_ENGINE_ROOT / "llama-3.1-8b-fp8" / "h100")
    assert params["enable_kv_cache_reuse"] == "true"
    assert params["gpt_model_type"] == "inflight_fused_batching"
    assert params["batch_scheduler_policy"] == "max_utilization"
    assert params["enable_chunked_context"] == "true"
    assert params["kv_cache_host_memory_bytes"] == str(16 * 2**30)
    assert params["decoding_mode"] == "top_k_top_p"
    assert not any(k.startswith("reference_") for k in params)
    assert "models/tensorrt_llm/1/model.py" not in r.files
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    pre = text_format.Parse(r.files["models/preprocessing/config.pbtxt"].decode(), model_config_pb2.ModelConfig())
    retention = json.loads(pre.parameters["kv_retention"].string_value)
    assert retention["rules"] == [{"tokens": "system_prompt", "priority": 90, "duration_ms": 600000}]


def test_reference_repository_is_labelled_a_reference(tiny_model: Path) -> None:
    r = _render("qwen2.5-7b", "cpu", tiny_model)
    config = r.files["models/tensorrt_llm/config.pbtxt"].decode()
    assert 'backend: "python"' in config and "CPU REFERENCE" in config
    assert r.manifest.backend == "python-reference" and r.manifest.reference
    assert "reference, not an engine" in r.files["README.md"].decode()
    assert "models/tensorrt_llm/1/model.py" in r.files
    assert r.manifest.hf_model is not None and r.manifest.hf_model.copied
    assert f"{'hf_model'}/model.safetensors" in r.copies


def test_large_checkpoints_are_referenced_not_copied(tiny_model: Path) -> None:
    r = _render("qwen2.5-7b", "cpu", tiny_model, copy_hf_model=False)
    assert r.manifest.hf_model is not None and not r.manifest.hf_model.copied
    assert not any(rel.startswith("hf_model/") for rel in r.copies)
    assert f'"{tiny_model.resolve()}"' in r.files["models/tensorrt_llm/config.pbtxt"].decode()


def _engine(tmp: Path, **build) -> Path:
    engine = tmp / "engine"
    engine.mkdir()
    (engine / "config.json").write_text(json.dumps({
        "version": "1.2.0", "pretrained_config": {"mapping": {"tp_size": build.pop("tp", 1), "pp_size": 1}},
        "build_config": {"max_batch_size": 128, "max_input_len": 8192, "max_seq_len": 16384, "max_beam_width": 1,
                         "plugin_config": {"use_paged_context_fmha": True}, **build}}))
    return engine


def test_engine_config_sets_the_limits(tmp_path: Path, tiny_model: Path) -> None:
    engine = _engine(tmp_path, max_seq_len=8192)
    plan = plan_for(ROOT / "recipes" / "llama-3.1-8b-fp8.yaml", "h100")
    manifest = render_repository(plan, out_dir=tmp_path / "repo", tokenizer_dir=tiny_model, engine_dir=engine)
    assert manifest.engine.source == "engine-config" and manifest.engine.version == "1.2.0"
    assert 'string_value: "8192"' in (tmp_path / "repo/models/tensorrt_llm/config.pbtxt").read_text()


@pytest.mark.parametrize(("build", "rule"), [({"max_batch_size": 16}, "batch.engine_limit"),
                                             ({"tp": 2}, "world.size"),
                                             ({"plugin_config": {"use_paged_context_fmha": False}},
                                              "trtllm.paged_context")])
def test_engine_mismatch_fails_the_stage_and_writes_nothing(tmp_path: Path, tiny_model: Path, build, rule) -> None:
    plan = plan_for(ROOT / "recipes" / "llama-3.1-8b-fp8.yaml", "h100")
    with pytest.raises(RepositoryError, match=re.escape(rule)) as info:
        render_repository(plan, out_dir=tmp_path / "repo", tokenizer_dir=tiny_model,
                          engine_dir=_engine(tmp_path, **build))
    assert info.value.exit_code == 4
    assert not (tmp_path / "repo").exists()
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]


def test_written_repository_is_complete_and_lints_clean(tmp_path: Path, tiny_model: Path, cli) -> None:
    plan = plan_for(ROOT / "recipes" / "qwen2.5-7b.yaml", "h100")
    render_repository(plan, out_dir=tmp_path / "repo", tokenizer_dir=tiny_model, engine_dir=Path("/opt/e"))
    repo = tmp_path / "repo"
    for model in ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble", "tensorrt_llm_bls"):
        assert (repo / "models" / model / "config.pbtxt").is_file() and (repo / "models" / model / "1").is_dir()
    assert (repo / "tokenizer" / "tokenizer.json").read_bytes() == (tiny_model / "tokenizer.json").read_bytes()
    assert (repo / "launch.sh").stat().st_mode & 0o111
    done = cli("lint", str(repo))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("gpu", ["h100", "cpu"])
def test_launch_script_runs_the_server_outside_the_repository(tmp_path: Path, tiny_model: Path, gpu: str) -> None:
    """Triton's Python stubs import from their working directory: launch.sh must not start the server in the
    repository (a stray json.py there would run in every model), yet `../engine` must still resolve."""
    import os
    import subprocess

    out = tmp_path / "out"
    plan = plan_for(ROOT / "recipes" / "qwen2.5-7b.yaml", gpu)
    if gpu == "cpu":
        render_repository(plan, out_dir=out / "repository", tokenizer_dir=tiny_model, hf_model_dir=tiny_model)
    else:
        engine = _engine(tmp_path)
        (out / "engine").parent.mkdir(parents=True)
        engine.rename(out / "engine")
        render_repository(plan, out_dir=out / "repository", tokenizer_dir=tiny_model, engine_dir=out / "engine",
                          engine_ref="../engine")
    repo = out / "repository"
    (repo / "json.py").write_text("raise SystemExit('imported from the repository')\n")
    fake = tmp_path / "tritonserver"
    fake.write_text('#!/bin/sh\npwd\nls ../engine/config.json 2>/dev/null || echo no-engine\necho "$@"\n')
    fake.chmod(0o755)
    env = {**os.environ, "TRITONSERVER": str(fake), "TMPDIR": str(tmp_path)}
    run = subprocess.run([str(repo / "launch.sh")], capture_output=True, text=True, env=env, cwd=repo, check=True)
    cwd, engine_seen, argv = run.stdout.splitlines()[:3]
    assert not Path(cwd).resolve().is_relative_to(repo.resolve()) and not any(Path(cwd).iterdir())
    assert f"--model-repository={repo}/models" in argv
    if gpu == "cpu":
        assert engine_seen == "no-engine"
    else:
        assert (Path(cwd) / engine_seen).resolve() == (out / "engine" / "config.json").resolve()
