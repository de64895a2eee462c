"""Issue 11, finding 8: interrupted uploads resume; CI can pull by digest end to end.

Against a real registry (Debian's docker-registry): the registry is killed in the middle of a chunk of a
large blob and restarted, the network fails on a chunk, the registry forgets the upload session. Each time
the blob ends up complete and verified, and a retry (in the same run or a later one) sends only what the
registry does not have. Then compile --publish, status --registry and pull by the pinned digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from trtbuild.errors import PublishError
from trtbuild.registry import RegistryClient, publish_artifact

from .faultlib import TRTBUILD, Project

pytestmark = pytest.mark.slow
MIB = 1024 * 1024
REPO = "ci/tiny"


class _Body:
    """A request body that calls ``hook`` once ``after`` bytes of it were sent."""

    def __init__(self, inner: Any, after: int, hook: Callable[[], None]):
        self.inner, self.after, self.hook, self.n = inner, after, hook, 0

    def __len__(self) -> int:
        return len(self.inner)

    def read(self, k: int = -1) -> bytes:
        data = self.inner.read(k)
        self.n += len(data)
        if self.n > self.after and self.hook is not None:
            hook, self.hook = self.hook, None  # type: ignore[assignment]
            hook()
        return data


class FaultySession(requests.Session):
    """Counts the bytes of every PATCH; on PATCH number ``at``, runs ``fault(kwargs)`` (kill, raise, ...)."""

    def __init__(self, at: int = 0, fault: Callable[[dict[str, Any]], None] | None = None):
        super().__init__()
        self.at, self.fault, self.patches, self.patch_bytes = at, fault, 0, 0
        self.hosts: list[tuple[str, bool]] = []

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.hosts.append((url.split("/")[2], "Authorization" in (kwargs.get("headers") or {})))
        if method == "PATCH":
            self.patches += 1
            if self.patches == self.at and self.fault is not None:
                self.fault(kwargs)
            self.patch_bytes += len(kwargs["data"])
        return super().request(method, url, *args, **kwargs)


def _blob(tmp_path: Path, size: int = 8 * MIB) -> tuple[Path, str]:
    path = tmp_path / "blob.engine"
    path.write_bytes(os.urandom(size))
    return path, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def _client(registry, session: requests.Session, **kw: Any) -> RegistryClient:  # type: ignore[no-untyped-def]
    return RegistryClient(registry.host, plain_http=True, session=session, chunk_bytes=MIB, **kw)


def test_registry_restarted_mid_upload_the_retry_resumes(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The registry dies between two chunks and is back when the client retries: only the rest is sent."""
    blob, digest = _blob(tmp_path)
    session = FaultySession(at=3, fault=lambda kw: registry.kill())
    restarted: list[float] = []

    def sleep(seconds: float) -> None:  # the client's backoff: the registry comes back meanwhile
        registry.start()
        restarted.append(seconds)

    sent = _client(registry, session, sleep=sleep, retries=2).upload_blob(REPO, digest, blob.stat().st_size, blob)
    assert restarted == [0.5] and sent == blob.stat().st_size  # each byte sent once
    assert hashlib.sha256(registry.blob_file(digest).read_bytes()).hexdigest() == digest.split(":")[1]


def test_registry_killed_inside_a_chunk_ends_complete(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Killed while a chunk streams in: the registry keeps part of it. Either it resumes from what it holds,
    or (docker-registry 2.8 refuses a session whose data went past the last acknowledged offset) the upload
    starts over, once; either way the blob is complete and verified."""
    blob, digest = _blob(tmp_path)
    session = FaultySession(at=3, fault=lambda kw: kw.update(data=_Body(kw["data"], 300_000, registry.kill)))

    def sleep(seconds: float) -> None:
        if registry.proc is None:
            registry.start()

    sent = _client(registry, session, sleep=sleep, retries=2).upload_blob(REPO, digest, blob.stat().st_size, blob)
    assert sent in (blob.stat().st_size, blob.stat().st_size + 2 * MIB)
    assert hashlib.sha256(registry.blob_file(digest).read_bytes()).hexdigest() == digest.split(":")[1]


def test_a_later_run_resumes_the_saved_session(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob, digest = _blob(tmp_path)
    state = tmp_path / "cache" / "uploads"
    first = FaultySession(at=5, fault=lambda kw: registry.kill())  # dies after four chunks
    with pytest.raises(PublishError, match="unreachable"):
        _client(registry, first, retries=0, upload_state_dir=state).upload_blob(REPO, digest, blob.stat().st_size, blob)
    [saved] = list(state.iterdir())
    assert saved.stat().st_mode & 0o777 == 0o600 and digest in saved.read_text()
    registry.start()  # same storage, port and upload secret
    second = FaultySession()
    sent = _client(registry, second, upload_state_dir=state).upload_blob(REPO, digest, blob.stat().st_size, blob)
    assert second.patch_bytes == sent <= blob.stat().st_size - 4 * MIB  # four chunks were there already
    assert list(state.iterdir()) == [] and _client(registry, second).blob_exists(REPO, digest)


def test_network_failure_on_a_chunk_sends_each_byte_once(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob, digest = _blob(tmp_path)

    def drop(kwargs: dict[str, Any]) -> None:
        raise requests.ConnectionError("Connection reset by peer (injected)")

    session = FaultySession(at=4, fault=drop)
    sent = _client(registry, session, sleep=lambda s: None).upload_blob(REPO, digest, blob.stat().st_size, blob)
    assert sent == session.patch_bytes == blob.stat().st_size


def test_forgotten_session_starts_over(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blob, digest = _blob(tmp_path)

    def forget(kwargs: dict[str, Any]) -> None:
        shutil.rmtree(registry.storage / "docker/registry/v2/repositories" / REPO / "_uploads")
        raise requests.ConnectionError("Connection reset by peer (injected)")

    session = FaultySession(at=3, fault=forget)
    sent = _client(registry, session, sleep=lambda s: None).upload_blob(REPO, digest, blob.stat().st_size, blob)
    assert sent == blob.stat().st_size + 2 * MIB  # two chunks lost with the session, then all of it
    assert _client(registry, session).blob_exists(REPO, digest)


def test_upload_location_on_another_host_is_refused(tmp_path: Path) -> None:
    """A registry answer pointing the upload elsewhere gets neither the data nor the credentials."""
    from trtbuild.registry.auth import Credentials

    class Redirecting(requests.Session):
        seen: list[tuple[str, bool]] = []

        def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            self.seen.append((url, "Authorization" in (kwargs.get("headers") or {})))
            resp = requests.Response()
            resp.status_code, resp.url = 202, url
            resp.headers["Location"] = "http://evil.example:9/v2/upload/123"
            return resp

    blob, digest = _blob(tmp_path, 3 * MIB)
    client = RegistryClient("127.0.0.1:5999", plain_http=True, session=Redirecting(), chunk_bytes=MIB,
                            credentials=Credentials("u", "secret", source="test"))
    client._basic = True  # the registry asked for Basic auth before
    with pytest.raises(PublishError, match="another host"):
        client.upload_blob(REPO, digest, blob.stat().st_size, blob)
    assert all("evil.example" not in url for url, _ in Redirecting.seen)
    assert client.same_origin("http://127.0.0.1:5999/v2/x") and not client.same_origin("http://evil.example:9/v2/x")


def test_ci_pulls_by_digest_end_to_end(project: Project, registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """compile --publish prints digests; status --registry finds them; pull by the pinned digest gets exactly
    the artifact even after the tag was moved to something else."""
    base = registry.ref(REPO)
    r = project.compile("--publish", base, "--plain-http", gpus=("h100",))
    assert r.returncode == 0, r.stderr[-3000:]
    target = json.loads(r.stdout)["targets"][0]
    [pub] = target["publications"]
    assert pub["pinned"] == f"oci://{registry.host}/{REPO}@{pub['digest']}" and target["published"] == [pub["pinned"]]
    assert pub["ref"] == f"{base}:tiny-h100-sxm" and pub["tags"] == ["tiny-h100-sxm", "fp-" + target["fingerprint"]]

    def status(*extra: str) -> Any:
        s = subprocess.run([str(TRTBUILD), "status", str(project.dir / "recipe.yaml"), "--gpu", "h100", "--executor",
                            "fake", "--cache-dir", str(project.cache), "--registry", base, "--plain-http", *extra],
                           env=project.env, capture_output=True, text=True, timeout=120)
        assert s.returncode == 0, s.stderr
        return json.loads(s.stdout) if extra else s.stdout

    [row] = status("--json")["targets"]
    assert (row["state"], row["digest"], row["pinned"]) == ("fresh", pub["digest"], pub["pinned"])
    assert status("--github-matrix") == {"include": []}
    assert pub["pinned"] in status()
    # Move the tag to another artifact: the pinned digest still pulls exactly what was built.
    other = tmp_path / "other"
    shutil.copytree(project.out / "h100-sxm", other)
    (other / "extra.txt").write_text("not the build\n")
    publish_artifact(other, pub["ref"], client=RegistryClient(registry.host, plain_http=True))
    pulled = tmp_path / "pulled"
    p = subprocess.run([str(TRTBUILD), "pull", pub["pinned"], str(pulled), "--plain-http", "--json"], env=project.env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["digest"] == pub["digest"] and not (pulled / "extra.txt").exists()
    for f in (project.out / "h100-sxm").rglob("*"):
        if f.is_file():
            assert (pulled / f.relative_to(project.out / "h100-sxm")).read_bytes() == f.read_bytes()
    # A changed recipe is stale: the matrix names the target with the fingerprint and where it will go.
    recipe = project.dir / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("max_batch_size: 4", "max_batch_size: 8"))
    [entry] = status("--github-matrix")["include"]
    assert entry["gpu"] == "h100-sxm" and entry["ref"] == pub["ref"] and entry["fingerprint"] != target["fingerprint"]
