"""Start and stop a real `tritonserver` on a generated repository (serve, smoke, tests, benchmarks).

For the CPU reference, the server is the one shipped inside the `nvidia-pytriton` wheel: its binary,
its libraries (`nvidia_pytriton.libs` on LD_LIBRARY_PATH) and a PRIVATE copy of its backends dir with
the Python-backend stub of this interpreter's Python version; this venv's `bin` goes first on PATH so
the stub imports this venv's packages (numpy < 2, torch, transformers). For engine repositories,
`tritonserver` (and `mpirun` for tp x pp > 1) come from the system, e.g. NVIDIA's container.

Servers listen on 127.0.0.1 only, on free ports unless told otherwise, in their own process group;
`stop()` ends the whole group (SIGTERM, then SIGKILL) and removes the private files.

A plain Triton model repository (model folders with config.pbtxt, no trtbuild manifest; e.g. NVIDIA's
filled templates) is served too: world size 1, the tritonserver on PATH if there is one, else
nvidia-pytriton's (`preferred_install`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.errors import RepositoryError, UsageError
from trtbuild.repository.launch import command_line, private_cwd, rank_arguments
from trtbuild.repository.manifest import MANIFEST_NAME, MODELS_DIR, RepositoryManifest, read_manifest
from trtbuild.repository.python_env import PythonEnv

DEFAULT_TRITONSERVER = "/opt/tritonserver/bin/tritonserver"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class TritonInstall:
    binary: Path
    lib_dir: Path | None = None
    backends: Path | None = None
    """Backends dir to copy privately (pytriton); None: the server's own default."""
    stub: Path | None = None


def pytriton_install(python_version: str | None = None) -> TritonInstall:
    """The tritonserver inside the nvidia-pytriton wheel (found without importing pytriton).

    ``python_version`` (major.minor) picks the Python-backend stub; default: this interpreter's."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise RepositoryError("nvidia-pytriton is not installed: `pip install 'trtbuild[serve]'` (it ships the "
                              "tritonserver that serves CPU reference repositories)")
    root = Path(next(iter(spec.submodule_search_locations)))
    server = root / "tritonserver"
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    install = TritonInstall(binary=server / "bin" / "tritonserver", lib_dir=root.parent / "nvidia_pytriton.libs",
                            backends=server / "backends", stub=server / "python_backend_stubs" / version /
                            "triton_python_backend_stub")
    for path in (install.binary, install.backends, install.stub):
        if path is None or not path.exists():
            raise RepositoryError(f"nvidia-pytriton is incomplete: {path} is missing (Python {version} supported?)")
    return install


def system_install() -> TritonInstall:
    binary = os.environ.get("TRITONSERVER") or shutil.which("tritonserver") or DEFAULT_TRITONSERVER
    if not Path(binary).exists():
        # A missing tool is a failed serving step (exit 4), as a missing trtllm-build is a failed engine stage.
        raise RepositoryError(f"tritonserver not found (looked at $TRITONSERVER, PATH, {DEFAULT_TRITONSERVER}); "
                              "serve engine repositories inside NVIDIA's tritonserver TensorRT-LLM container")
    return TritonInstall(binary=Path(binary))


def preferred_install() -> TritonInstall:
    """The system's tritonserver ($TRITONSERVER or PATH) when there is one, else nvidia-pytriton's."""
    if os.environ.get("TRITONSERVER") or shutil.which("tritonserver"):
        return system_install()
    return pytriton_install()


def is_model_repository(path: Path) -> bool:
    """A plain Triton model repository: at least one model folder with a config.pbtxt."""
    return Path(path).is_dir() and any(p.is_file() for p in Path(path).glob("*/config.pbtxt"))


class TritonServer:
    """One tritonserver (or one mpirun of world-size ranks) on a repository."""

    def __init__(self, repo: Path, *, http_port: int | None = None, grpc_port: int | None = None,
                 metrics_port: int | None = None, install: TritonInstall | None = None,
                 log_path: Path | None = None, env: dict[str, str] | None = None, log_verbose: int = 0,
                 python_env: Path | None = None):
        self.repo = Path(repo).resolve()
        self._manifest: RepositoryManifest | None = None
        if (self.repo / MANIFEST_NAME).is_file() or not is_model_repository(self.repo):
            self._manifest = read_manifest(self.repo)
        self.models_dir = self.repo / MODELS_DIR if self._manifest is not None else self.repo
        self.world_size = self._manifest.world_size if self._manifest is not None else 1
        # The Python environment the Python models run in (e.g. .venv-vllm); default: this one.
        self.python_env = PythonEnv.probe(python_env) if python_env is not None else None
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        if install is None:
            if self._manifest is None:
                install = preferred_install()
            elif self._manifest.reference or self._manifest.target == "cpu":
                install = pytriton_install(self.python_env.version if self.python_env else None)
            else:
                install = system_install()
        self.install = install
        self.extra_env = dict(env or {})
        self.log_verbose = log_verbose
        self._tmp = Path(tempfile.mkdtemp(prefix="trtbuild-triton-"))
        self.log_path = Path(log_path) if log_path else self._tmp / "tritonserver.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def manifest(self) -> RepositoryManifest:
        """The trtbuild manifest (a plain model repository has none)."""
        if self._manifest is None:
            raise UsageError(f"{self.repo} is a plain Triton model repository (no {MANIFEST_NAME})")
        return self._manifest

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    # ------------------------------------------------------------------------------------ command
    def _backends_dir(self) -> Path | None:
        inst = self.install
        if inst.backends is None:
            return None
        private = self._tmp / "backends"
        shutil.copytree(inst.backends, private, ignore=shutil.ignore_patterns("__pycache__"))
        if inst.stub is not None:
            shutil.copy2(inst.stub, private / "python" / "triton_python_backend_stub")
        return private

    def argv(self) -> list[str]:
        extra = ["--http-address=127.0.0.1", "--grpc-address=127.0.0.1", "--metrics-address=127.0.0.1",
                 "--exit-timeout-secs=5", f"--log-verbose={self.log_verbose}", "--allow-gpu-metrics=false"]
        backends = self._backends_dir()
        if backends is not None:
            extra.append(f"--backend-directory={backends}")
        ranks = rank_arguments(self.world_size, tritonserver=str(self.install.binary),
                               models_dir=str(self.models_dir), http_port=str(self.http_port),
                               grpc_port=str(self.grpc_port), metrics_port=str(self.metrics_port),
                               shm_prefix=f"trtbuild{uuid.uuid4().hex[:8]}r", extra=extra)
        return command_line(ranks, mpirun=os.environ.get("MPIRUN", "mpirun"))

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if self.install.lib_dir is not None:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(self.install.lib_dir),
                                                                 env.get("LD_LIBRARY_PATH", "")) if p)
        if self.python_env is not None:
            self.python_env.apply(env)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        env.update(self.extra_env)
        # The Python stubs import from PYTHONPATH and find programs on PATH: an empty or relative entry
        # would resolve in the repository directory (the server's cwd), so only absolute ones are kept.
        from trtbuild.toolchain.process import child_environment

        return child_environment(env)

    def working_directory(self) -> Path:
        """The server's cwd: an empty private directory. Triton's Python stubs put their cwd first on
        sys.path, so a json.py or numpy.py lying there would be imported by every Python model. A relative
        engine path (``../engine`` in a compiled artifact, read by the C++ backend against the cwd) is
        reproduced by a symlink beside it, so it resolves as it does from the repository directory."""
        engine = self._manifest.engine.path if self._manifest is not None and not self._manifest.reference else None
        cwd_rel, link_rel = private_cwd(engine)
        cwd = self._tmp / cwd_rel
        if engine and link_rel:
            link = self._tmp / link_rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if not os.path.lexists(link):
                link.symlink_to((self.repo / engine).resolve(), target_is_directory=True)
        cwd.mkdir(parents=True, exist_ok=True)
        return cwd

    # -------------------------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 180.0) -> TritonServer:
        argv = self.argv()
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child, closed in stop()
        self._log: Any = log
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.environment(),
                                        start_new_session=True, cwd=self.working_directory())
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return bool(r.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                failed = "".join(f"\n  model {name!r} failed to load: {why}" for name, why in self.failed_models())
                raise RepositoryError(f"tritonserver exited with status {self.process.returncode} while loading "
                                      f"{self.repo}{failed}", log_tail=self.log_tail())
            if self.ready():
                return
            time.sleep(0.25)
        raise RepositoryError(f"tritonserver did not become ready within {timeout:.0f}s", log_tail=self.log_tail())

    def loading_status(self) -> str:
        """'2/5 models loaded (loading: tensorrt_llm)', read from the server log: Triton answers HTTP only
        once every model is loaded, and logs each model as it loads."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        loaded = set(re.findall(r"successfully loaded '([^']+)'", text))
        failed = set(re.findall(r"failed to load '([^']+)'", text))
        models = list(self._manifest.models if self._manifest is not None else ()) or sorted(loaded | failed)
        waiting = [m for m in models if m not in loaded and m not in failed]
        out = f"{len(loaded)}/{len(models)} models loaded"
        if failed:
            out += f", FAILED: {', '.join(sorted(failed))}"
        return out + (f" (loading: {', '.join(waiting)})" if waiting else "")

    def failed_models(self) -> list[tuple[str, str]]:
        """(model, first line of the reason) for every model the log says failed to load."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        out: dict[str, str] = {}
        for m in re.finditer(r"failed to load '([^']+)' version \d+: ([^\n]*)", text):
            out.setdefault(m.group(1), m.group(2).split("\\n")[0].rstrip('"'))
        return sorted(out.items())

    def log_tail(self, lines: int = 40) -> str:
        """The log's last ``lines`` lines, preceded by any earlier line that says why a model failed to load
        (Triton prints the reason once, long before its shutdown messages)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        all_lines = text.splitlines()
        tail = all_lines[-lines:]
        markers = ("failed to load", "UNAVAILABLE:", "Traceback", "Error:", "error:")
        reasons = [ln for ln in all_lines[:-lines] if any(m in ln for m in markers)][-10:]
        return "\n".join(reasons + (["..."] if reasons else []) + tail)

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # stubs left behind by a crashed server
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.log_path.parent == self._tmp and self._keep_log():
            return
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _keep_log(self) -> bool:
        return os.environ.get("TRTBUILD_KEEP_SERVER_LOG") == "1"

    def __enter__(self) -> TritonServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
