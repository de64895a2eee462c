"""Which TensorRT-LLM, TensorRT and GPUs the engine stage would use, found without importing them.

A small probe script runs in a child Python (the interpreter of ``trtllm-build``, or ``python3`` inside the
container): versions come from ``importlib.metadata``, GPUs from NVML (``pynvml``) or else
``nvidia-smi --query-gpu``. The parent only parses its JSON, so trtbuild never imports tensorrt or
tensorrt_llm. :func:`check_toolchain` turns what was found into a clear ToolchainError.

The supported TensorRT-LLM range is declared here and nowhere else: :data:`SUPPORTED_TRTLLM`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trtbuild.errors import ToolchainError
from trtbuild.toolchain.process import run_child
from trtbuild.toolchain.process import which as which_absolute

if TYPE_CHECKING:
    from trtbuild.plan.planner import BuildPlan


@dataclass(frozen=True)
class VersionRange:
    """``minimum <= version < below`` on release numbers; pre-releases of ``minimum`` are outside."""

    minimum: tuple[int, ...]
    below: tuple[int, ...]
    label: str

    def contains(self, version: str) -> bool:
        release, pre = parse_version(version)
        if release < self.minimum or (release == self.minimum and pre):
            return False
        return release < self.below


SUPPORTED_TRTLLM = VersionRange(minimum=(1, 2, 0), below=(1, 3, 0), label="1.2.x")
"""The one declaration of the TensorRT-LLM versions trtbuild builds engines with (the last `trtllm-build` line)."""

CONTAINER_IMAGE_HINT = "nvcr.io/nvidia/tritonserver:<yy.mm>-trtllm-python-py3@sha256:<digest>"
CONTAINER_HINT = (
    "run the engine stage in NVIDIA's Triton TensorRT-LLM container instead: set "
    f"`toolchain: {{executor: container, image: {CONTAINER_IMAGE_HINT}}}` in the recipe (a release whose "
    f"TensorRT-LLM is {SUPPORTED_TRTLLM.label}, pinned by tag and digest) or pass `--executor container`")

_VERSION = re.compile(r"^\s*v?(\d+(?:\.\d+)*)(.*)$")


def parse_version(text: str) -> tuple[tuple[int, ...], bool]:
    """'1.2.1' → ((1, 2, 1), False); '1.2.0rc5' → ((1, 2, 0), True); '1.2.1.post1' → ((1, 2, 1, 0), False)."""
    m = _VERSION.match(text or "")
    if not m:
        raise ValueError(f"not a version: {text!r}")
    nums = [int(x) for x in m.group(1).split(".")]
    while len(nums) < 3:
        nums.append(0)
    rest = m.group(2).lower().lstrip(".-_+")
    pre = bool(re.match(r"(a|b|c|rc|alpha|beta|pre|preview|dev)\d*", rest))
    if rest.startswith("post"):
        nums.append(0)
    return tuple(nums), pre


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    sm: int
    """Compute capability as an integer: 9.0 → 90."""
    memory_bytes: int | None = None


@dataclass(frozen=True)
class ToolchainInfo:
    """What a probe found: versions, the build program, and the visible GPUs."""

    executor: str
    """local | container | fake"""
    trtllm_version: str | None
    tensorrt_version: str | None
    gpus: tuple[GpuInfo, ...] = ()
    trtllm_build: str | None = None
    """Path of the trtllm-build program (local), or its name inside the container."""
    python: str | None = None
    gpu_source: str | None = None
    """nvml | nvidia-smi | None (no GPU found); gpu_error says why."""
    gpu_error: str | None = None
    image: str | None = None
    """Container image, pinned as name:tag@sha256:digest (container executor)."""
    fake: bool = False

    @property
    def image_digest(self) -> str | None:
        if self.image and "@" in self.image:
            return self.image.rsplit("@", 1)[1]
        return None

    def to_json(self) -> dict[str, Any]:
        return {"executor": self.executor, "trtllm_version": self.trtllm_version,
                "tensorrt_version": self.tensorrt_version, "trtllm_build": self.trtllm_build,
                "python": self.python, "image": self.image, "image_digest": self.image_digest,
                "gpus": [{"index": g.index, "name": g.name, "sm": g.sm, "memory_bytes": g.memory_bytes}
                         for g in self.gpus],
                "gpu_source": self.gpu_source, "gpu_error": self.gpu_error, "fake": self.fake}


# Runs in a child interpreter (Python >= 3.8, nothing but the standard library and maybe pynvml).
PROBE_SCRIPT = r'''
import json, os, shutil, subprocess, sys
from importlib import metadata
def ver(*names):
    for n in names:
        try:
            return metadata.version(n)
        except Exception:
            pass
    return None
out = {"python": sys.executable, "tensorrt_llm": ver("tensorrt_llm", "tensorrt-llm"),
       "tensorrt": ver("tensorrt", "tensorrt-cu13", "tensorrt_cu13", "tensorrt-cu12", "tensorrt_cu12"),
       "trtllm_build": shutil.which("trtllm-build"), "gpus": [], "gpu_source": None, "gpu_error": None}
errors = []
try:
    import pynvml
    pynvml.nvmlInit()
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(h)
            name = name.decode() if isinstance(name, bytes) else name
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
            mem = int(pynvml.nvmlDeviceGetMemoryInfo(h).total)
            out["gpus"].append({"index": i, "name": name, "sm": major * 10 + minor, "memory_bytes": mem})
    finally:
        pynvml.nvmlShutdown()
    out["gpu_source"] = "nvml"
except Exception as e:
    errors.append("NVML: %s" % (e,))
    out["gpus"] = []
if out["gpu_source"] is None:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        errors.append("nvidia-smi: not found on PATH")
    else:
        try:
            r = subprocess.run([smi, "--query-gpu=index,name,compute_cap", "--format=csv,noheader"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            if r.returncode != 0:
                raise RuntimeError("exit %d: %s" % (r.returncode, r.stderr.decode(errors="replace").strip()))
            for line in r.stdout.decode(errors="replace").splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) >= 3 and parts[0].isdigit():
                    major, _, minor = parts[-1].partition(".")
                    out["gpus"].append({"index": int(parts[0]), "name": ",".join(parts[1:-1]),
                                        "sm": int(major) * 10 + int(minor or 0), "memory_bytes": None})
            out["gpu_source"] = "nvidia-smi"
        except Exception as e:
            errors.append("nvidia-smi: %s" % (e,))
visible = os.environ.get("CUDA_VISIBLE_DEVICES")
if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
    order = [int(v) for v in visible.split(",") if v.strip()]
    by_index = {g["index"]: g for g in out["gpus"]}
    out["gpus"] = [dict(by_index[i], index=n) for n, i in enumerate(order) if i in by_index]
if not out["gpus"]:
    out["gpu_error"] = "; ".join(errors) or "no GPU listed"
print(json.dumps(out))
'''

Run = Callable[..., "subprocess.CompletedProcess[str]"]


def run_probe(argv_prefix: Sequence[str], *, run: Run = run_child, timeout: float = 300) -> dict[str, Any]:
    """Run the probe with ``argv_prefix`` (an interpreter, or ``docker run ... python3``) and parse its JSON."""
    import tempfile

    argv = [*argv_prefix, "-c", PROBE_SCRIPT]
    try:
        # `python -c` puts its working directory first on sys.path: run it in an empty one, so a json.py or
        # pynvml.py where trtbuild was started is never imported.
        with tempfile.TemporaryDirectory(prefix="trtbuild-probe-") as empty:
            proc = run(argv, capture_output=True, text=True, timeout=timeout, cwd=empty)
    except FileNotFoundError as exc:
        raise ToolchainError(f"cannot run the toolchain probe: {exc}", command=argv[:-2] + ["-c", "<probe>"]) from None
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"the toolchain probe did not answer within {timeout:.0f}s",
                             command=argv[:-2] + ["-c", "<probe>"]) from None
    lines = [ln for ln in (proc.stdout or "").splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise ToolchainError(f"the toolchain probe failed (exit status {proc.returncode})",
                             command=argv[:-2] + ["-c", "<probe>"],
                             log_tail="\n".join(((proc.stderr or "") + (proc.stdout or "")).splitlines()[-20:]))
    data: dict[str, Any] = json.loads(lines[-1])
    return data


def info_from_probe(data: dict[str, Any], *, executor: str, image: str | None = None) -> ToolchainInfo:
    gpus = tuple(GpuInfo(index=int(g["index"]), name=str(g["name"]), sm=int(g["sm"]),
                         memory_bytes=g.get("memory_bytes")) for g in data.get("gpus") or [])
    return ToolchainInfo(executor=executor, trtllm_version=data.get("tensorrt_llm"),
                         tensorrt_version=data.get("tensorrt"), gpus=gpus, trtllm_build=data.get("trtllm_build"),
                         python=data.get("python"), gpu_source=data.get("gpu_source"),
                         gpu_error=data.get("gpu_error"), image=image)


def script_interpreter(program: str | None) -> str | None:
    """The interpreter of a Python console script (its ``#!`` line), if it names an existing file."""
    if not program:
        return None
    try:
        with open(program, "rb") as f:
            first = f.readline(512).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    parts = first[2:].split()
    if not parts:
        return None
    if Path(parts[0]).name == "env" and len(parts) > 1:
        return which_absolute(parts[1])
    return parts[0] if Path(parts[0]).is_file() else None


def detect_local_toolchain(*, which: Callable[[str], str | None] = which_absolute, run: Run = run_child,
                           python: str | None = None) -> ToolchainInfo:
    """Probe this machine: the Python behind ``trtllm-build`` (else ``python``/this interpreter) and its GPUs."""
    program = which("trtllm-build")
    interpreter = python or script_interpreter(program) or sys.executable
    info = info_from_probe(run_probe([interpreter], run=run), executor="local")
    return info if program is None else replace(info, trtllm_build=program)


def check_toolchain(info: ToolchainInfo, plan: BuildPlan, *, workers: int | None = None) -> None:
    """Raise ToolchainError unless ``info`` can build ``plan``'s engine: version in range, GPU SM = target SM."""
    where = {"local": "on this machine", "container": f"in {info.image}", "fake": "in the fake toolchain"}
    here = where.get(info.executor, "")
    hint = "" if info.executor == "container" else "; " + CONTAINER_HINT
    if not info.trtllm_version:
        raise ToolchainError(f"TensorRT-LLM is not installed {here} (no tensorrt_llm distribution for "
                             f"{info.python or 'the probed Python'}){hint}")
    try:
        ok = SUPPORTED_TRTLLM.contains(info.trtllm_version)
    except ValueError:
        ok = False
    if not ok:
        raise ToolchainError(f"TensorRT-LLM {info.trtllm_version} {here} is outside the supported range "
                             f"{SUPPORTED_TRTLLM.label} (the last line with trtllm-build and the Triton C++ "
                             f"backend){hint}")
    if info.executor == "local" and not info.trtllm_build:
        raise ToolchainError(f"TensorRT-LLM {info.trtllm_version} is installed for {info.python} but "
                             f"`trtllm-build` is not on PATH (activate that environment){hint}")
    target = plan.target
    if not info.gpus:
        raise ToolchainError(f"no NVIDIA GPU is visible {here} ({info.gpu_error or 'none listed'}); the engine "
                             f"for {target['name']} must be built on an SM {target['sm']} GPU")
    used = info.gpus[: max(1, workers or 1)]
    for g in used:
        if g.sm != target["sm"]:
            raise ToolchainError(
                f"GPU {g.index} is {g.name} (SM {g.sm}) but the plan targets {target['name']} (SM {target['sm']}): "
                f"a TensorRT engine only runs on the SM it was built for. Build on an SM {target['sm']} GPU, "
                f"or plan for this GPU (`--gpu {g.name}`); select GPUs with CUDA_VISIBLE_DEVICES")
