"""What the GPU check needs, found before anything runs: GPU, TensorRT-LLM, tritonserver and its backends.

Every probe is a child process or a file look-up; nothing imports tensorrt_llm. ``which``, ``run`` and the
Triton locations are arguments, so tests point them at test doubles (a ``trtllm-build`` script that prints
a version, a PATH without ``tritonserver``).

Sources of the facts used here:
* ``import tensorrt_llm`` prints ``[TensorRT-LLM] TensorRT-LLM version: X`` (``tensorrt_llm/__init__.py``
  of NVIDIA/TensorRT-LLM), so ``trtllm-build --help`` names the version of the package it runs.
* Triton loads backends from ``--backend-directory`` (default ``/opt/tritonserver/backends``), one folder per
  backend: ``tensorrtllm/libtriton_tensorrtllm.so`` (where triton-inference-server/tensorrtllm_backend
  ``inflight_batcher_llm/scripts/build.sh`` @c2e65b88 installs it), ``python/libtriton_python.so`` (+ its
  stub), as laid out in NVIDIA's ``tritonserver:<yy.mm>-trtllm-python-py3`` container.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from trtbuild.toolchain.detect import SUPPORTED_TRTLLM, GpuInfo, parse_version, script_interpreter

BACKENDS = ("engine", "llmapi")
DEFAULT_TRITONSERVER = Path("/opt/tritonserver/bin/tritonserver")
DEFAULT_BACKENDS_DIR = Path("/opt/tritonserver/backends")
CONTAINER = "NVIDIA's container nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3 with TensorRT-LLM 1.2.x"
_VERSION_LINE = re.compile(r"TensorRT-LLM version:\s*(\S+)")

Run = Callable[..., "subprocess.CompletedProcess[str]"]


class Check(BaseModel):
    """One requirement: whether it is met, what was found, and what to do when it is not."""

    model_config = ConfigDict(frozen=True)

    id: str
    label: str
    ok: bool
    found: str = ""
    missing: str = ""
    needed_by: tuple[str, ...] = BACKENDS


class Environment(BaseModel):
    """Everything the probes found; ``missing_for(backend)`` lists the unmet requirements of a backend."""

    model_config = ConfigDict(frozen=True)

    checks: tuple[Check, ...]
    gpus: tuple[GpuInfo, ...] = ()
    gpu_key: str | None = None
    trtllm_version: str | None = None
    tritonserver: str | None = None
    triton_version: str | None = None
    backends_dir: str | None = None

    def missing_for(self, backend: str) -> list[Check]:
        return [c for c in self.checks if not c.ok and backend in c.needed_by]

    def versions(self) -> dict[str, Any]:
        return {"gpus": [{"index": g.index, "name": g.name, "sm": g.sm, "memory_bytes": g.memory_bytes}
                         for g in self.gpus], "gpu_target": self.gpu_key,
                "tensorrt_llm": self.trtllm_version, "tritonserver": self.tritonserver,
                "triton_version": self.triton_version, "backends_dir": self.backends_dir}


def _run(run: Run, argv: Sequence[str], timeout: float) -> tuple[int, str]:
    """(exit status, stdout+stderr) of a child; (-1, why) when it cannot start or times out."""
    try:
        proc = run(list(argv), capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError as exc:
        return -1, f"cannot run: {exc}"
    except PermissionError as exc:
        return -1, f"cannot run: {exc}"
    except subprocess.TimeoutExpired:
        return -1, f"no answer within {timeout:.0f}s"
    return proc.returncode, (proc.stdout or "") + (proc.stderr or "")


def probe_gpus(which: Callable[[str], str | None], run: Run) -> tuple[Check, tuple[GpuInfo, ...]]:
    smi = which("nvidia-smi")
    label = "NVIDIA GPU (nvidia-smi)"
    if smi is None:
        return Check(id="nvidia-smi", label=label, ok=False,
                     missing="nvidia-smi is not on PATH: no NVIDIA driver here (in a container: start it with "
                             "`--gpus all`)"), ()
    status, text = _run(run, [smi, "--query-gpu=index,name,compute_cap,memory.total",
                              "--format=csv,noheader,nounits"], 60)
    if status != 0:
        tail = " ".join(text.strip().splitlines()[-2:])
        return Check(id="nvidia-smi", label=label, ok=False,
                     missing=f"`nvidia-smi` failed (exit status {status}): {tail or 'no output'}"), ()
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4 or not parts[0].isdigit():
            continue
        major, _, minor = parts[2].partition(".")
        if not major.isdigit():
            continue
        memory = int(parts[3]) * 2**20 if parts[3].isdigit() else None  # nounits: MiB
        gpus.append(GpuInfo(index=int(parts[0]), name=parts[1], sm=int(major) * 10 + int(minor or 0),
                            memory_bytes=memory))
    if not gpus:
        return Check(id="nvidia-smi", label=label, ok=False, missing="`nvidia-smi` lists no GPU"), ()
    found = "; ".join(f"GPU {g.index}: {g.name} (SM {g.sm})" for g in gpus)
    return Check(id="nvidia-smi", label=label, ok=True, found=found), tuple(gpus)


def match_catalog(gpus: Sequence[GpuInfo], requested: str | None) -> tuple[Check, str | None]:
    """The catalog target the check plans for: ``requested`` (must have GPU 0's SM) or GPU 0's own entry."""
    from trtbuild.catalog.gpus import find_gpu, get_gpu

    label = "GPU in trtbuild's catalog"
    if not gpus:
        return Check(id="gpu-target", label=label, ok=False, missing="no GPU to plan for (see nvidia-smi)"), None
    first = gpus[0]
    if requested:
        spec = get_gpu(requested)  # an unknown name is a usage error (exit 2) with suggestions
        if spec.sm != first.sm:
            return Check(id="gpu-target", label=label, ok=False,
                         missing=f"--gpu {requested} is SM {spec.sm} but GPU 0 is {first.name} (SM {first.sm}): an "
                                 "engine only runs on the SM it was built for"), None
    else:
        found = find_gpu(first.name)
        if found is None or found.sm != first.sm:
            return Check(id="gpu-target", label=label, ok=False,
                         missing=f"{first.name} (SM {first.sm}) is not in trtbuild's catalog: pass --gpu with a "
                                 f"catalog GPU of SM {first.sm} (`trtbuild gpus` lists them)"), None
        spec = found
    return Check(id="gpu-target", label=label, ok=True, found=f"{spec.key} (SM {spec.sm})"), spec.key


def probe_trtllm(which: Callable[[str], str | None], run: Run) -> tuple[list[Check], str | None]:
    """`trtllm-build` on PATH and the TensorRT-LLM version it runs (from its own start-up line)."""
    program = which("trtllm-build")
    version: str | None = None
    if program is None:
        build = Check(id="trtllm-build", label="trtllm-build", ok=False, needed_by=("engine",),
                      missing="`trtllm-build` is not on PATH: `pip install tensorrt_llm==1.2.*` (its environment "
                              f"active), or run inside {CONTAINER}")
        python = which("python3")
        source = f"`{python} -c 'import tensorrt_llm'`" if python else ""
        if python:
            status, text = _run(run, [python, "-c", "import tensorrt_llm"], 600)
            m = _VERSION_LINE.search(text)
            version = m.group(1) if status == 0 and m else None
    else:
        status, text = _run(run, [program, "--help"], 600)
        m = _VERSION_LINE.search(text)
        version = m.group(1) if m else None
        source = f"`{program} --help`"
        if status != 0 or version is None:
            tail = " ".join(text.strip().splitlines()[-3:]) or "no output"
            build = Check(id="trtllm-build", label="trtllm-build", ok=False, needed_by=("engine",),
                          missing=f"`{program} --help` failed (exit status {status}, no TensorRT-LLM version line): "
                                  f"{tail}")
        else:
            interpreter = script_interpreter(program)
            build = Check(id="trtllm-build", label="trtllm-build", ok=True, needed_by=("engine",),
                          found=program + (f" (Python {interpreter})" if interpreter else ""))
    return [build, _version_check(version, source)], version


def _version_check(version: str | None, source: str) -> Check:
    label = f"TensorRT-LLM {SUPPORTED_TRTLLM.label}"
    if version is None:
        return Check(id="tensorrt_llm", label=label, ok=False,
                     missing=f"TensorRT-LLM is not installed (no version from {source or 'python3'}): "
                             f"`pip install tensorrt_llm==1.2.*`, or run inside {CONTAINER}")
    try:
        ok = SUPPORTED_TRTLLM.contains(version)
        release, _ = parse_version(version)
    except ValueError:
        ok, release = False, ()
    if ok:
        return Check(id="tensorrt_llm", label=label, ok=True, found=f"{version} (from {source})")
    checks_llmapi = release >= (1, 0, 0)
    return Check(id="tensorrt_llm", label=label, ok=False, found=version,
                 needed_by=("engine",) if checks_llmapi else BACKENDS,
                 missing=f"TensorRT-LLM {version} is outside {SUPPORTED_TRTLLM.label} (the last line with "
                         "trtllm-build and the C++ Triton backend)"
                         + ("; the LLM-API check still runs (>= 1.0)" if checks_llmapi else ""))


def probe_triton(which: Callable[[str], str | None], environ: Mapping[str, str], backends_dir: Path,
                 default_binary: Path = DEFAULT_TRITONSERVER) -> tuple[list[Check], str | None, str | None]:
    """tritonserver ($TRITONSERVER, PATH, NVIDIA's container path) and the two backends it must load."""
    binary = environ.get("TRITONSERVER") or which("tritonserver")
    if not binary and default_binary.is_file():
        binary = str(default_binary)
    version = None
    if binary and Path(binary).is_file():
        server = Check(id="tritonserver", label="tritonserver", ok=True, found=binary)
        marker = Path(binary).resolve().parent.parent / "TRITON_VERSION"
        if marker.is_file():
            version = marker.read_text(encoding="utf-8", errors="replace").strip() or None
    else:
        looked = f"$TRITONSERVER ({binary})" if environ.get("TRITONSERVER") else f"PATH, {default_binary}"
        server = Check(id="tritonserver", label="tritonserver", ok=False,
                       missing=f"tritonserver not found (looked at {looked}): run inside {CONTAINER}, or set "
                               "$TRITONSERVER (nvidia-pytriton's server has no tensorrtllm backend)")
        binary = None
    trt = backends_dir / "tensorrtllm" / "libtriton_tensorrtllm.so"
    trt_check = Check(id="tensorrtllm-backend", label="Triton tensorrtllm backend", ok=trt.is_file(),
                      needed_by=("engine",), found=str(trt) if trt.is_file() else "",
                      missing="" if trt.is_file() else
                      f"{trt} is missing: tritonserver cannot load the engine model; run inside {CONTAINER}")
    py = backends_dir / "python" / "libtriton_python.so"
    stub = backends_dir / "python" / "triton_python_backend_stub"
    absent = [str(p) for p in (py, stub) if not p.is_file()]
    py_check = Check(id="python-backend", label="Triton python backend", ok=not absent,
                     found=str(py) if not absent else "",
                     missing=f"{' and '.join(absent)} missing: the preprocessing, postprocessing, BLS and LLM-API "
                             "models are Python models" if absent else "")
    return [server, trt_check, py_check], binary, version


def probe_environment(*, requested_gpu: str | None = None, which: Callable[[str], str | None] = shutil.which,
                      run: Run = subprocess.run, environ: Mapping[str, str] | None = None,
                      backends_dir: Path = DEFAULT_BACKENDS_DIR,
                      default_tritonserver: Path = DEFAULT_TRITONSERVER) -> Environment:
    """Run every probe (each one, even after a failure: the report lists everything that is missing)."""
    env = os.environ if environ is None else environ
    gpu_check, gpus = probe_gpus(which, run)
    target_check, key = match_catalog(gpus, requested_gpu)
    trt_checks, version = probe_trtllm(which, run)
    triton_checks, binary, triton_version = probe_triton(which, env, backends_dir, default_tritonserver)
    checks = (gpu_check, target_check, *trt_checks, *triton_checks)
    return Environment(checks=checks, gpus=gpus, gpu_key=key, trtllm_version=version, tritonserver=binary,
                       triton_version=triton_version, backends_dir=str(backends_dir))
