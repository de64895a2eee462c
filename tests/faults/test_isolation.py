"""Issue 11, finding 1: nothing from the working directory runs inside a child process.

A ``numpy.py``, ``concurrent.py``, ``sitecustomize.py`` (and ``json.py``, ``yaml.py``, ``pynvml.py``) in the
directory trtbuild is started from are planted; each records that it was imported. Every child trtbuild
starts is run from there: the checkpoint worker (a real compile), the toolchain probe, the local
trtllm-build, the container CLI, a docker credential helper and tritonserver's Python stubs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trtbuild.toolchain.process import child_environment, isolated_python_argv, which

from .faultlib import BIN, Project, make_project, plant_hostile_modules

pytestmark = pytest.mark.slow


def _imported(markers: list[Path]) -> list[str]:
    return [m.name for m in markers if m.exists()]


def test_compile_from_a_hostile_directory_runs_none_of_it(tmp_path: Path, tiny_model: Path) -> None:
    """The checkpoint worker (torch, ModelOpt) was `python -m ...` and imported ./numpy.py."""
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    markers = plant_hostile_modules(hostile, tmp_path / "markers")
    project = make_project(tmp_path / "project", tiny_model)
    r = project.compile(cwd=hostile, gpus=("h100",))
    assert r.returncode == 0, r.stderr[-3000:]
    stages = {s["stage"]: s["status"] for s in json.loads(r.stdout)["targets"][0]["stages"]}
    assert stages["checkpoint"] == "built"  # the worker really ran
    assert _imported(markers) == []


def test_python_dash_m_trtbuild_drops_the_working_directory(tmp_path: Path, tiny_model: Path) -> None:
    """`python -m trtbuild` puts the cwd first on sys.path; trtbuild drops it before importing anything."""
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    markers = plant_hostile_modules(hostile, tmp_path / "markers")
    project = make_project(tmp_path / "project", tiny_model)
    r = subprocess.run([sys.executable, "-m", "trtbuild", "plan", str(project.dir / "recipe.yaml"), "--gpu", "h100",
                        "--json"], cwd=hostile, env=project.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["feasible"] is True
    assert _imported(markers) == []


@pytest.mark.parametrize("install", ["editable", "pythonpath"])
def test_isolated_python_child_finds_trtbuild_but_not_the_cwd(tmp_path: Path, install: str) -> None:
    """The worker's interpreter runs -I with the parent's sys.path minus the cwd: an editable install and a
    copy found only through PYTHONPATH both work, and the child imports the parent's trtbuild."""
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    markers = plant_hostile_modules(hostile, tmp_path / "markers")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    expected = Path(__import__("trtbuild").__file__).resolve().parent
    if install == "pythonpath":
        src = tmp_path / "src"
        shutil.copytree(expected, src / "trtbuild", ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = str(src)
        expected = (src / "trtbuild").resolve()
    probe = ("import subprocess, sys, trtbuild\n"
             "from trtbuild.toolchain.process import isolated_python_argv\n"
             "print(trtbuild.__file__, flush=True)\n"
             "sys.exit(subprocess.run(isolated_python_argv('site')).returncode)\n")
    # The parent drops the (hostile) cwd from its own path first, as the trtbuild entry points do.
    r = subprocess.run([sys.executable, "-c", f"import sys; sys.path = [p for p in sys.path if p not in "
                        f"('', {str(hostile)!r})]; exec({probe!r})"],
                       cwd=hostile, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert Path(r.stdout.splitlines()[0]).resolve().parent == expected
    child_path = r.stdout[r.stdout.index("sys.path = ["):r.stdout.index("]")]
    assert str(hostile) not in child_path and "''" not in child_path
    assert _imported(markers) == []


def test_isolated_argv_is_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = isolated_python_argv("trtbuild.stages.checkpoint_worker", "--events-fd", "3")
    assert argv[0] == sys.executable and argv[1] == "-I" and argv[2] == "-c"
    spec = json.loads(argv[4])
    assert "" not in spec["path"] and str(tmp_path) not in spec["path"]
    assert spec["module"] == "trtbuild.stages.checkpoint_worker" and argv[5:] == ["--events-fd", "3"]


def test_child_environment_and_which_never_resolve_in_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = child_environment({"PATH": f":.:bin:{BIN}::/usr/bin", "PYTHONPATH": ":./lib:/opt/lib", "HOME": "/h"})
    assert env == {"PATH": f"{BIN}:/usr/bin", "PYTHONPATH": "/opt/lib", "HOME": "/h"}
    assert "PYTHONPATH" not in child_environment({"PYTHONPATH": ".:"})
    evil = tmp_path / "docker-credential-evil"
    evil.write_text("#!/bin/sh\ntouch pwned\n")
    evil.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    assert which("docker-credential-evil", path=".:") is None and shutil.which("docker-credential-evil", path=".")


def test_credential_helper_in_the_cwd_is_never_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trtbuild.registry.auth import run_credential_helper

    evil = tmp_path / "docker-credential-evil"
    evil.write_text(f"#!/bin/sh\ntouch {tmp_path / 'pwned'}\necho '{{}}'\n")
    evil.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f".:{os.environ.get('PATH', '')}")
    assert run_credential_helper("evil", "registry.example.com") is None
    assert not (tmp_path / "pwned").exists()


def test_toolchain_probe_runs_in_an_empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -c PROBE` puts its cwd first on sys.path: a json.py / pynvml.py there would run."""
    from trtbuild.toolchain.detect import run_probe

    hostile = tmp_path / "hostile"
    hostile.mkdir()
    markers = plant_hostile_modules(hostile, tmp_path / "markers")
    monkeypatch.chdir(hostile)
    data = run_probe([sys.executable])
    assert data["python"] and _imported(markers) == []


def test_local_trtllm_build_is_not_found_in_the_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trtbuild.errors import ToolchainError
    from trtbuild.toolchain.executors import BuildJob, LocalExecutor, choose_executor_kind

    hostile = tmp_path / "hostile"
    hostile.mkdir()
    evil = hostile / "trtllm-build"
    evil.write_text(f"#!/bin/sh\ntouch {tmp_path / 'pwned'}\n")
    evil.chmod(0o755)
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("PATH", f".:{os.environ.get('PATH', '')}")
    with pytest.raises(ToolchainError, match="TensorRT-LLM"):
        choose_executor_kind("auto", image=None)  # ./trtllm-build does not count as installed
    job = BuildJob(argv=("trtllm-build", "--help"), checkpoint_dir=tmp_path, output_dir=tmp_path / "o",
                   timing_cache=None, log_path=tmp_path / "log", work_dir=hostile, timeout_s=30)
    with pytest.raises(ToolchainError, match="not found"):
        LocalExecutor().run(job)
    assert not (tmp_path / "pwned").exists()


def test_container_executor_child_sees_no_cwd_and_no_relative_path(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The container CLI runs in the job's scratch directory with absolute PATH entries only; nothing of the
    user's directory is mounted into the container, and no host environment is forwarded but HOME=/tmp."""
    from trtbuild.toolchain.executors import BuildJob, ContainerExecutor

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "docker-call.json"
    (bin_dir / "docker").write_text(
        f"#!{sys.executable} -I\nimport json, os, sys\n"
        f"json.dump({{'argv': sys.argv, 'cwd': os.getcwd(), 'path': os.environ.get('PATH')}}, open({str(record)!r}, 'w'))\n")
    (bin_dir / "docker").chmod(0o755)
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("PATH", f".::{bin_dir}:/usr/bin")
    image = "nvcr.io/nvidia/tritonserver:25.05-trtllm-python-py3@sha256:" + "a" * 64
    work = tmp_path / "work"
    job = BuildJob(argv=("trtllm-build", "--checkpoint_dir", "/trtbuild/checkpoint"), checkpoint_dir=tmp_path / "ck",
                   output_dir=tmp_path / "out", timing_cache=None, log_path=tmp_path / "log", work_dir=work,
                   timeout_s=30)
    work.mkdir()
    ContainerExecutor(image, "docker").run(job)
    call = json.loads(record.read_text())
    assert call["cwd"] == str(work) and call["path"] == f"{bin_dir}:/usr/bin"
    mounts = [call["argv"][i + 1] for i, a in enumerate(call["argv"]) if a == "-v"]
    assert all(not m.startswith(str(hostile)) for m in mounts)
    envs = [call["argv"][i + 1] for i, a in enumerate(call["argv"]) if a == "-e"]
    assert envs == ["HOME=/tmp"]


def test_tritonserver_stubs_import_nothing_from_the_cwd(tmp_path: Path, built: Project,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A real tritonserver (Python backend stubs) on the compiled CPU reference, started from a hostile
    directory with an empty (= cwd) entry on PYTHONPATH and PATH: it loads, and imports none of it."""
    from trtbuild.repository.server import TritonServer

    hostile = tmp_path / "hostile"
    hostile.mkdir()
    markers = plant_hostile_modules(hostile, tmp_path / "markers")
    repo = tmp_path / "repo"
    shutil.copytree(built.out / "cpu", repo, symlinks=True)
    # The stubs run in the repository directory: "" or "." on PYTHONPATH would import from there.
    markers += plant_hostile_modules(repo / "repository", tmp_path / "markers-repo")
    monkeypatch.chdir(hostile)
    monkeypatch.setenv("PYTHONPATH", ":.")
    monkeypatch.setenv("PATH", f".::{os.environ.get('PATH', '')}")
    server = TritonServer(repo / "repository")
    env = server.environment()
    assert "PYTHONPATH" not in env and all(os.path.isabs(p) for p in env["PATH"].split(os.pathsep))
    try:
        server.start(timeout=600)  # a shared 2-core machine can be slow to load five Python models
        assert server.ready()
    finally:
        server.stop()
    assert _imported(markers) == []


def test_server_cwd_is_empty_and_keeps_the_relative_engine_path(built: Project) -> None:
    """For an engine repository the C++ backend reads gpt_model_path ../engine against the cwd: the
    private cwd has a sibling link to the artifact's engine, and nothing else."""
    from trtbuild.repository.server import TritonInstall, TritonServer

    server = TritonServer(built.out / "h100-sxm" / "repository", install=TritonInstall(binary=Path("/bin/false")))
    try:
        cwd = server.working_directory()
        assert list(cwd.iterdir()) == []
        assert (cwd / "../engine").resolve() == (built.out / "h100-sxm" / "engine").resolve()
        assert (cwd / "../engine" / "rank0.engine").is_file()
    finally:
        server.stop()
