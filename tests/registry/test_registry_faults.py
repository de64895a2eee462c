"""Faults against a real registry: killed mid-push, tampered blobs, hostile archives and titles."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import requests
from registry_server import CountingSession, RegistryServer

from trtbuild.errors import PublishError
from trtbuild.registry import PublishEvent, RegistryClient, parse_ref, publish_artifact, pull_artifact
from trtbuild.registry.artifact import EMPTY_CONFIG, EMPTY_MEDIA_TYPE, TITLE, build_manifest, descriptor
from trtbuild.registry.client import sha256_digest
from trtbuild.registry.layers import TAR_MEDIA_TYPE

REPO = "models/tiny-demo"


def _client(registry: RegistryServer, session: requests.Session | None = None) -> RegistryClient:
    return RegistryClient(registry.host, plain_http=True, session=session, retries=0)


def test_registry_killed_mid_push_leaves_no_tag_then_retry_succeeds(registry: RegistryServer,
                                                                     artifact_dir: Path,
                                                                     tmp_path: Path) -> None:
    ref = parse_ref(registry.ref(f"{REPO}:h100"))
    done: list[str] = []

    def kill_after_first_blob(event: PublishEvent) -> None:
        if event.kind == "blob-uploaded":
            done.append(event.digest)
            if len(done) == 1:
                registry.kill()

    with pytest.raises(PublishError, match="unreachable"):
        publish_artifact(artifact_dir, ref, client=_client(registry), on_event=kill_after_first_blob)
    assert len(done) == 1

    registry.start()  # same storage, same port: what the registry kept is what a crash leaves
    assert registry.tags(REPO) == []
    assert requests.get(f"{registry.url}/v2/{REPO}/manifests/h100", timeout=5).status_code == 404
    assert registry.blob_file(done[0]).exists()

    session = CountingSession()
    result = publish_artifact(artifact_dir, ref, client=_client(registry, session))
    assert done[0] in result.skipped
    assert session.blob_uploads == len(result.uploaded) == 4
    assert registry.tags(REPO) == sorted(["h100", "fp-" + "ab" * 32])
    pulled = pull_artifact(ref, tmp_path / "pulled", client=_client(registry))
    assert pulled.digest == result.digest
    assert (tmp_path / "pulled" / "engine" / "rank0.engine").read_bytes() == \
        (artifact_dir / "engine" / "rank0.engine").read_bytes()


def test_client_retries_then_reports_unreachable(tmp_path: Path) -> None:
    sleeps: list[float] = []
    client = RegistryClient("127.0.0.1:1", plain_http=True, retries=2, backoff_s=0.25, sleep=sleeps.append)
    with pytest.raises(PublishError, match=r"127\.0\.0\.1:1 unreachable"):
        client.blob_exists("ns/name", "sha256:" + "0" * 64)
    assert sleeps == [0.25, 0.5]


def test_tampered_blob_is_refused_on_pull(registry: RegistryServer, artifact_dir: Path, tmp_path: Path) -> None:
    ref = registry.ref(f"{REPO}:h100")
    result = publish_artifact(artifact_dir, ref, client=_client(registry))
    manifest = requests.get(f"{registry.url}/v2/{REPO}/manifests/{result.digest}", timeout=5,
                            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).json()
    engine = next(layer for layer in manifest["layers"] if layer["annotations"][TITLE] == "engine/rank0.engine")
    blob = registry.blob_file(engine["digest"])
    data = bytearray(blob.read_bytes())
    data[1000] ^= 0xFF  # same size, one byte flipped
    blob.write_bytes(bytes(data))

    target = tmp_path / "pulled"
    with pytest.raises(PublishError, match=rf"blob {engine['digest']} .* failed verification"):
        pull_artifact(ref, target, client=_client(registry))
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pulled")] == []


def _push_raw(registry: RegistryServer, tag: str, layers: list[tuple[str, str, bytes]]) -> str:
    """Push hand-made layers (title, media type, bytes) as an artifact, bypassing publish's checks."""
    client = _client(registry)
    descs = []
    config = descriptor(EMPTY_MEDIA_TYPE, sha256_digest(EMPTY_CONFIG), len(EMPTY_CONFIG))
    client.upload_blob(REPO, config["digest"], config["size"], EMPTY_CONFIG)
    for title, media, data in layers:
        d = descriptor(media, sha256_digest(data), len(data), {TITLE: title})
        client.upload_blob(REPO, d["digest"], d["size"], data)
        descs.append(d)
    client.put_manifest(REPO, tag, build_manifest(descs, config, {}))
    return registry.ref(f"{REPO}:{tag}")


def _tar(*members: tuple[str, bytes | str]) -> bytes:
    """Members: (name, bytes) is a file; (name, "->target") is a symlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in members:
            ti = tarfile.TarInfo(name)
            if isinstance(content, str):
                ti.type, ti.linkname = tarfile.SYMTYPE, content[2:]
                tar.addfile(ti)
            else:
                ti.size = len(content)
                tar.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


@pytest.mark.parametrize("members, message", [
    ([("repo/ok.txt", b"fine"), ("repo/../../escape.txt", b"evil")], "leaves the target"),
    ([("/tmp/trtbuild-absolute.txt", b"evil")], "absolute"),
    ([("repo/link", "->../../.."), ("repo/ok.txt", b"x")], "points outside"),
    ([("repo/a", "->."), ("repo/b", "->a/../..")], "points outside"),
    ([("other/file.txt", b"x")], "outside its layer"),
], ids=["dotdot", "absolute", "symlink-out", "symlink-chain"  , "other-prefix"])
def test_hostile_tar_is_refused(registry: RegistryServer, tmp_path: Path, members: list, message: str) -> None:
    ref = _push_raw(registry, "hostile", [("repo", TAR_MEDIA_TYPE, _tar(*members))])
    target = tmp_path / "deep" / "pulled"
    with pytest.raises(PublishError, match=message):
        pull_artifact(ref, target, client=_client(registry))
    assert not target.exists()
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "deep" / "escape.txt").exists()
    assert not Path("/tmp/trtbuild-absolute.txt").exists()


@pytest.mark.parametrize("title", ["../evil.txt", "/etc/evil.txt", "engine/../../evil.txt"])
def test_hostile_layer_title_is_refused(registry: RegistryServer, tmp_path: Path, title: str) -> None:
    ref = _push_raw(registry, "titles", [(title, "application/octet-stream", b"evil")])
    with pytest.raises(PublishError, match="refusing layer title"):
        pull_artifact(ref, tmp_path / "pulled", client=_client(registry))
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "pulled").exists()


def test_index_or_foreign_manifest_is_refused(registry: RegistryServer, tmp_path: Path) -> None:
    client = _client(registry)
    index = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    client.put_manifest(REPO, "index", index, "application/vnd.oci.image.index.v1+json")
    with pytest.raises(PublishError, match="not an OCI image manifest"):
        pull_artifact(registry.ref(f"{REPO}:index"), tmp_path / "pulled", client=client)
