"""`trtbuild compile` runs the chosen backend's stages: the vLLM repository on cpu, the LLM-API repository on a
GPU target (no engine, no TensorRT-LLM needed to build either), each linted; `serve` finds vLLM's environment."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from trtbuild.repository.manifest import read_manifest


def compile_(cli, recipe: Path, gpu: str, out: Path, env: dict[str, str]):  # type: ignore[no-untyped-def]
    r = cli("compile", str(recipe), "--gpu", gpu, "--out", str(out), "--json", env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)["targets"][0]


def test_compile_vllm_on_cpu(cli, project: Callable[..., Path], env: dict[str, str], tmp_path: Path) -> None:
    recipe = project("backend: vllm\n")
    out = tmp_path / "out"
    report = compile_(cli, recipe, "cpu", out, env)
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [("fetch", "built"), ("repository", "built")]
    repo = out / "cpu" / "repository"
    manifest = read_manifest(repo)
    assert manifest.backend == "vllm" and manifest.client_models == ("ensemble", "tensorrt_llm_bls")
    assert (repo / "models" / "tensorrt_llm_bls" / "1" / "model.py").is_file()
    assert (repo / "hf_model" / "model.safetensors").is_file()      # the HF checkpoint as fetched
    assert not (out / "cpu" / "engine").exists()
    artifact = json.loads((out / "cpu" / "trtbuild-artifact.json").read_text())
    assert artifact["backend"] == "vllm" and set(artifact["stages"]) == {"fetch", "repository"}
    lint = cli("lint", str(repo), env=env)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # the same inputs again: everything cached, same fingerprint
    again = compile_(cli, recipe, "cpu", out, env)
    assert [s["status"] for s in again["stages"]] == ["cached", "cached"]
    assert again["fingerprint"] == report["fingerprint"]
    # switching the backend is a different repository stage (its key includes the backend), same fetch
    reference = compile_(cli, project(""), "cpu", tmp_path / "ref", env)
    assert [s["status"] for s in reference["stages"]] == ["cached", "built"]
    assert reference["fingerprint"] != report["fingerprint"]
    assert read_manifest(tmp_path / "ref" / "cpu" / "repository").backend == "python-reference"


def test_compile_llmapi_on_a_gpu_target_needs_no_toolchain(cli, project: Callable[..., Path], env: dict[str, str],
                                                          tmp_path: Path) -> None:
    recipe = project("backend: llmapi\n")
    out = tmp_path / "out"
    no_toolchain = {**env, "TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "", "PATH": "/usr/bin:/bin"}
    report = compile_(cli, recipe, "h100", out, no_toolchain)
    assert [s["stage"] for s in report["stages"]] == ["fetch", "repository"]
    repo = Path(report["out_dir"]) / "repository"
    assert repo.parent.name == "h100-sxm"
    assert read_manifest(repo).backend == "llmapi"
    model_yaml = (repo / "models" / "tensorrt_llm_bls" / "1" / "model.yaml").read_text()
    assert "backend: pytorch" in model_yaml and "max_num_tokens: 512" in model_yaml
    lint = cli("lint", str(repo), env=env)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_compile_refuses_a_backend_the_hardware_cannot_run(cli, project: Callable[..., Path], env: dict[str, str],
                                                           tmp_path: Path) -> None:
    r = cli("compile", str(project("backend: llmapi\n")), "--gpu", "cpu", "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 3
    assert "backend.hardware" in r.stderr and "vllm" in r.stderr
    assert not (tmp_path / "out" / "cpu").exists()


def test_serve_vllm_without_its_environment_names_the_install(cli, project: Callable[..., Path],
                                                              env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    compile_(cli, project("backend: vllm\n"), "cpu", out, env)
    empty = tmp_path / "no-venv"
    empty.mkdir()
    r = cli("serve", str(out / "cpu" / "repository"), env={**env, "TRTBUILD_VLLM_ENV": str(empty)},
            cwd=tmp_path)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "make vllm-venv" in r.stderr and str(empty) in r.stderr
    assert "Traceback" not in r.stderr
    r = cli("smoke", str(out / "cpu" / "repository"), "--prompt", "hi", env={**env, "TRTBUILD_VLLM_ENV": str(empty)},
            cwd=tmp_path)
    assert r.returncode == 4 and "make vllm-venv" in r.stderr, r.stdout + r.stderr
    assert os.listdir(empty) == []
