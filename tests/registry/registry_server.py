"""Test helpers around a real OCI registry process (Debian's ``docker-registry serve``).

``RegistryServer`` runs one registry on 127.0.0.1:<free port> over a storage directory; it can be killed
and restarted on the same storage and port. ``CountingSession`` is the injected transport that records
every request. ``make_artifact_dir`` writes a build output shaped like compile's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import requests

from trtbuild.repository.server import free_port

BINARY = shutil.which("docker-registry") or shutil.which("registry")
SKOPEO = shutil.which("skopeo")


class RegistryServer:
    """One registry process over one storage directory; restartable on the same port."""

    def __init__(self, root: Path, *, htpasswd: Path | None = None):
        self.root = root
        self.storage = root / "storage"
        self.config = root / "config.yml"
        self.log = root / "registry.log"
        self.port = free_port()
        self.htpasswd = htpasswd
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def ref(self, repo_tag: str) -> str:
        return f"oci://{self.host}/{repo_tag}"

    def _write_config(self) -> None:
        auth = ""
        if self.htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: trtbuild-test\n    path: {self.htpasswd}\n"
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: info\n  accesslog:\n    disabled: false\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            # A fixed secret: upload sessions stay valid across a restart (as behind a load balancer)
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: trtbuild-test-upload-secret\n" + auth)

    def start(self, timeout: float = 20.0) -> None:
        assert BINARY is not None
        self.storage.mkdir(parents=True, exist_ok=True)
        self._write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([BINARY, "serve", str(self.config)], stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/v2/", timeout=1).status_code in (200, 401):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.host}:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def blob_file(self, digest: str) -> Path:
        algo, hexdigest = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algo / hexdigest[:2] / hexdigest / "data"

    def tags(self, repo: str) -> list[str]:
        r = requests.get(f"{self.url}/v2/{repo}/tags/list", timeout=5)
        if r.status_code == 404:
            return []
        r.raise_for_status()
        return sorted(r.json().get("tags") or [])


class CountingSession(requests.Session):
    """A requests session that records every request (method, URL): the injected transport."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.calls.append((method.upper(), url))
        return super().request(method, url, *args, **kwargs)

    def count(self, method: str, fragment: str) -> int:
        return sum(1 for m, u in self.calls if m == method and fragment in u)

    @property
    def blob_uploads(self) -> int:
        """Completed-upload PUTs (one per blob uploaded)."""
        return self.count("PUT", "/blobs/uploads/")

    @property
    def manifest_puts(self) -> int:
        return self.count("PUT", "/manifests/")


def make_artifact_dir(d: Path) -> Path:
    """A build output directory shaped like compile's: engine files, a Triton repository, the info file."""
    (d / "engine").mkdir(parents=True)
    (d / "engine" / "rank0.engine").write_bytes(os.urandom(256 * 1024))
    (d / "engine" / "config.json").write_text('{"version": "1.2.0", "pretrained_config": {}}\n')
    repo = d / "triton_repository"
    for model in ("preprocessing", "tensorrt_llm", "postprocessing", "ensemble"):
        (repo / model / "1").mkdir(parents=True)
        (repo / model / "config.pbtxt").write_text(f'name: "{model}"\nbackend: "python"\n')
    (repo / "preprocessing" / "1" / "model.py").write_text("def initialize(args):\n    pass\n")
    launch = repo / "launch.sh"
    launch.write_text("#!/bin/sh\nexec tritonserver --model-repository=\"$(dirname \"$0\")\"\n")
    launch.chmod(0o755)
    (repo / "postprocessing" / "1" / "tokenizer.json").symlink_to("../../preprocessing/1/model.py")
    (d / "trtbuild-artifact.json").write_text(
        '{"name": "tiny-demo", "fingerprint": "' + "ab" * 32 + '", "gpu": "h100", "sm": 90, '
        '"versions": {"tensorrt_llm": "1.2.0", "trtbuild": "0.1.0"}, "recipe_digest": "' + "cd" * 32 + '"}\n')
    return d
