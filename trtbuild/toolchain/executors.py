"""Where ``trtllm-build`` runs: here (:class:`LocalExecutor`) or in NVIDIA's Triton TensorRT-LLM container
(:class:`ContainerExecutor`). The fake toolchain (:mod:`trtbuild.toolchain.fake`) has the same interface.

An executor maps host paths to the paths the tool sees, turns a :class:`BuildJob` into the exact command
lines (printed by ``--dry-run``), probes its toolchain, and runs the job as a child process through an
injected ``runner`` (tests pass fakes; nothing here is patched).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from trtbuild.errors import ToolchainError
from trtbuild.fsutil import read_regular_file
from trtbuild.toolchain.detect import (
    CONTAINER_IMAGE_HINT,
    SUPPORTED_TRTLLM,
    ToolchainInfo,
    detect_local_toolchain,
    info_from_probe,
    run_probe,
)
from trtbuild.toolchain.process import Runner, RunResult, run_child, run_logged, spawn_process
from trtbuild.toolchain.process import which as which_absolute

CONTAINER_ROOT = Path("/trtbuild")
RUNTIMES = ("docker", "podman")
PROBE_PULL_TIMEOUT_S = 3600.0
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class BuildJob:
    """One ``trtllm-build`` run: its arguments (paths as the tool sees them) and the host side of it."""

    argv: tuple[str, ...]
    """``trtllm-build ...`` with executor-visible paths (from :meth:`Executor.tool_paths`)."""
    checkpoint_dir: Path
    output_dir: Path
    timing_cache: Path | None
    log_path: Path
    work_dir: Path
    """Scratch working directory (trtllm-build drops files such as model.cache into its cwd)."""
    timeout_s: float | None
    job_id: str = "0"


class Executor(Protocol):
    kind: str

    def tool_paths(self, checkpoint_dir: Path, output_dir: Path,
                   timing_cache: Path | None) -> tuple[Path, Path, Path | None]: ...

    def command_lines(self, job: BuildJob) -> list[list[str]]: ...

    def probe(self) -> ToolchainInfo: ...

    def run(self, job: BuildJob, on_line: Callable[[str], None] | None = None) -> RunResult: ...


def workdir_timing_cache(timing_cache: Path | None) -> Path | None:
    """The timing cache as a local ``trtllm-build`` sees it: its bare file name, in the job's working directory.

    trtllm-build records the timing-cache paths in the engine's config.json; a path relative to the
    scratch working directory is the same wherever the trtbuild cache lives, so the engine's bytes are too.
    """
    return Path(Path(timing_cache).name) if timing_cache is not None else None


@contextlib.contextmanager
def timing_cache_in_workdir(job: BuildJob) -> Iterator[None]:
    """Copy the job's timing cache into its working directory for the run; copy it back after a success."""
    job.work_dir.mkdir(parents=True, exist_ok=True)
    if job.timing_cache is None:
        yield
        return
    local = job.work_dir / Path(job.timing_cache).name
    if job.timing_cache.is_file():
        shutil.copyfile(job.timing_cache, local)
    yield
    if local.is_file():
        job.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = job.timing_cache.with_name(f".{job.timing_cache.name}.tmp-{os.getpid()}")
        shutil.copyfile(local, tmp)
        os.replace(tmp, job.timing_cache)


class LocalExecutor:
    """Runs ``trtllm-build`` as a child process here (so its GPU memory is freed when it exits), in the job's
    scratch working directory, with the timing cache copied there (:func:`workdir_timing_cache`)."""

    kind = "local"

    def __init__(self, runner: Runner = spawn_process, *, program: Sequence[str] = ("trtllm-build",),
                 env: Mapping[str, str] | None = None,
                 detector: Callable[[], ToolchainInfo] = detect_local_toolchain):
        self._runner = runner
        self._program = list(program)
        self._env = env
        self._detector = detector

    def tool_paths(self, checkpoint_dir: Path, output_dir: Path,
                   timing_cache: Path | None) -> tuple[Path, Path, Path | None]:
        return Path(checkpoint_dir).absolute(), Path(output_dir).absolute(), workdir_timing_cache(timing_cache)

    def command_lines(self, job: BuildJob) -> list[list[str]]:
        return [[*self._program, *job.argv[1:]]]

    def probe(self) -> ToolchainInfo:
        return self._detector()

    def run(self, job: BuildJob, on_line: Callable[[str], None] | None = None) -> RunResult:
        with timing_cache_in_workdir(job):
            return run_logged(self.command_lines(job)[0], runner=self._runner, log_path=job.log_path,
                              timeout_s=job.timeout_s, on_line=on_line, cwd=job.work_dir, env=self._env)


class ContainerExecutor:
    """Runs ``trtllm-build`` in NVIDIA's ``tritonserver:<yy.mm>-trtllm-python-py3`` image with docker or podman."""

    kind = "container"

    def __init__(self, image: str, runtime: str, *, runner: Runner = spawn_process,
                 run: Callable[..., Any] = run_child, uid_gid: tuple[int, int] | None = None,
                 shm_size: str | None = None):
        if runtime not in RUNTIMES:
            raise ToolchainError(f"unknown container runtime {runtime!r}; expected docker or podman")
        self.image = require_pinned(image)
        self.runtime = runtime
        self._runner = runner
        self._run = run
        self._uid_gid = uid_gid if uid_gid is not None else (os.getuid(), os.getgid())
        self._shm_size = shm_size

    def _gpu_flags(self) -> list[str]:
        return ["--gpus", "all"] if self.runtime == "docker" else ["--device", "nvidia.com/gpu=all"]

    def _user_flags(self) -> list[str]:
        uid, gid = self._uid_gid
        flags = ["--user", f"{uid}:{gid}", "-e", "HOME=/tmp"]
        if self.runtime == "podman" and uid != 0:
            flags.insert(0, "--userns=keep-id")
        return flags

    def _ipc_flags(self) -> list[str]:
        if self._shm_size:
            return ["--shm-size", self._shm_size]
        return ["--ipc=host"]

    def tool_paths(self, checkpoint_dir: Path, output_dir: Path,
                   timing_cache: Path | None) -> tuple[Path, Path, Path | None]:
        tc = CONTAINER_ROOT / "cache" / Path(timing_cache).name if timing_cache else None
        return CONTAINER_ROOT / "checkpoint", CONTAINER_ROOT / "output", tc

    def container_name(self, job: BuildJob) -> str:
        return f"trtbuild-engine-{job.job_id}"

    def command_lines(self, job: BuildJob) -> list[list[str]]:
        mounts = ["-v", f"{Path(job.checkpoint_dir).absolute()}:{CONTAINER_ROOT / 'checkpoint'}:ro",
                  "-v", f"{Path(job.output_dir).absolute()}:{CONTAINER_ROOT / 'output'}:rw"]
        if job.timing_cache is not None:
            mounts += ["-v", f"{Path(job.timing_cache).absolute().parent}:{CONTAINER_ROOT / 'cache'}:rw"]
        return [[self.runtime, "run", "--rm", "--name", self.container_name(job), *self._gpu_flags(),
                 *self._ipc_flags(), "--ulimit", "memlock=-1", "--ulimit", "stack=67108864",
                 *self._user_flags(), "--workdir", "/tmp", *mounts, self.image, *job.argv]]

    def probe(self) -> ToolchainInfo:
        prefix = [self.runtime, "run", "--rm", *self._gpu_flags(), *self._user_flags(), self.image, "python3"]
        # the first run may pull the image (tens of GB): allow for it
        return info_from_probe(run_probe(prefix, run=self._run, timeout=PROBE_PULL_TIMEOUT_S),
                               executor="container", image=self.image)

    def run(self, job: BuildJob, on_line: Callable[[str], None] | None = None) -> RunResult:
        if job.timing_cache is not None:
            job.timing_cache.parent.mkdir(parents=True, exist_ok=True)
        name = self.container_name(job)

        def stop_container() -> None:  # killing the CLI does not stop the container
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self._run([self.runtime, "kill", name], capture_output=True, text=True, timeout=60)

        return run_logged(self.command_lines(job)[0], runner=self._runner, log_path=job.log_path,
                          timeout_s=job.timeout_s, on_line=on_line, cwd=job.work_dir, on_kill=stop_container)


# ---------------------------------------------------------------------------------------- choosing
def split_image(image: str) -> tuple[str, str | None, str | None]:
    """'registry:5000/ns/name:tag@sha256:…' → ('registry:5000/ns/name', 'tag', 'sha256:…')."""
    ref, _, digest = image.partition("@")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:] or None, digest or None
    return ref, None, digest or None


def require_pinned(image: str | None, lock: Mapping[str, str] | None = None) -> str:
    """``image`` as name:tag@sha256:digest; a tag-only image takes its digest from ``lock`` (tag ref → digest)."""
    if not image:
        raise ToolchainError("the container executor needs an image pinned by tag and digest: set "
                             f"`toolchain: {{executor: container, image: {CONTAINER_IMAGE_HINT}}}` "
                             f"(a release with TensorRT-LLM {SUPPORTED_TRTLLM.label})")
    name, tag, digest = split_image(image)
    if digest is None and lock:
        digest = lock.get(f"{name}:{tag}") if tag else None
    if not tag or not digest or not _DIGEST.match(digest):
        missing = "a tag" if not tag else "a sha256 digest"
        raise ToolchainError(f"container image {image!r} is not pinned: it needs {missing} "
                             f"(name:tag@sha256:<64 hex>, e.g. {CONTAINER_IMAGE_HINT}); tags move, digests do not")
    return f"{name}:{tag}@{digest}"


def load_image_lock(path: Path) -> dict[str, str]:
    """A lockfile ``{"images": {"name:tag": "sha256:<64 hex>"}}`` (missing file → empty)."""
    try:
        data = json.loads(read_regular_file(Path(path), 16 * 1024 * 1024))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ToolchainError(f"{path}: cannot read the image lockfile: {exc}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in images.items()):
        raise ToolchainError(f'{path}: expected {{"images": {{"name:tag": "sha256:<64 hex>"}}}}')
    return dict(images)


def find_container_runtime(preferred: str | None = None, *,
                           which: Callable[[str], str | None] = which_absolute) -> str:
    """``preferred`` if it is on PATH, else the first of docker, podman; ToolchainError when there is none."""
    candidates = [preferred] if preferred else list(RUNTIMES)
    for name in candidates:
        if which(name):
            return name
    wanted = preferred or "docker or podman"
    raise ToolchainError(f"no container runtime: {wanted} is not on PATH. Install Docker with the NVIDIA "
                         "Container Toolkit (or Podman with the NVIDIA CDI spec), or run the engine stage on a "
                         f"machine with TensorRT-LLM {SUPPORTED_TRTLLM.label} (`--executor local`)")


def choose_executor_kind(requested: str, *, image: str | None,
                         which: Callable[[str], str | None] = which_absolute) -> str:
    """Resolve ``auto``: local when trtllm-build is on PATH, else container when an image is configured."""
    if requested != "auto":
        return requested
    if which("trtllm-build"):
        return "local"
    if image:
        return "container"
    raise ToolchainError("trtllm-build is not on PATH and the recipe names no container image: install "
                         f"TensorRT-LLM {SUPPORTED_TRTLLM.label} here, or set "
                         f"`toolchain: {{executor: container, image: {CONTAINER_IMAGE_HINT}}}`")
