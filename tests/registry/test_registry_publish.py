"""Publish and pull against a real registry (Debian's docker-registry), checked from outside with skopeo."""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from registry_server import SKOPEO, CountingSession, RegistryServer

from trtbuild.errors import PublishError, UsageError
from trtbuild.registry import (
    RegistryClient,
    adopt_published,
    client_for,
    parse_ref,
    publish_artifact,
    published_digest,
    pull_artifact,
)
from trtbuild.registry.artifact import ARTIFACT_TYPE, TITLE

FP = "ab" * 32


def _client(registry: RegistryServer, session: requests.Session | None = None) -> RegistryClient:
    return RegistryClient(registry.host, plain_http=True, session=session, retries=0)


def _same_tree(a: Path, b: Path) -> None:
    cmp = filecmp.dircmp(a, b)
    assert not cmp.left_only and not cmp.right_only and not cmp.diff_files and not cmp.funny_files, cmp.report()
    for sub in cmp.common_dirs:
        _same_tree(a / sub, b / sub)


def test_publish_pull_roundtrip(registry: RegistryServer, artifact_dir: Path, tmp_path: Path) -> None:
    session = CountingSession()
    ref = parse_ref(registry.ref("models/tiny-demo:h100"))
    result = publish_artifact(artifact_dir, ref, client=_client(registry, session))

    # config + 2 engine files + triton repo tar + info file
    assert len(result.uploaded) == 5 and session.blob_uploads == 5 and not result.skipped
    assert result.tags == ("h100", f"fp-{FP}") and result.tags_changed == result.tags
    assert registry.tags("models/tiny-demo") == sorted(["h100", f"fp-{FP}"])

    out = tmp_path / "pulled"
    pulled = pull_artifact(ref, out, client=_client(registry))
    assert pulled.digest == result.digest
    _same_tree(artifact_dir, out)
    assert os.readlink(out / "triton_repository/postprocessing/1/tokenizer.json") == \
        "../../preprocessing/1/model.py"
    assert os.access(out / "triton_repository/launch.sh", os.X_OK)
    assert pulled.annotations["dev.trtbuild.fingerprint"] == FP
    assert pulled.annotations["dev.trtbuild.gpu"] == "h100"
    assert pulled.annotations["dev.trtbuild.sm"] == "90"
    assert pulled.annotations["dev.trtbuild.recipe-digest"] == "cd" * 32
    assert json.loads(pulled.annotations["dev.trtbuild.versions"])["tensorrt_llm"] == "1.2.0"

    # pinned by digest works too, and the fingerprint tag names the same manifest
    again = pull_artifact(f"oci://{registry.host}/models/tiny-demo@{result.digest}", tmp_path / "by-digest",
                          client=_client(registry))
    assert again.digest == result.digest
    assert published_digest(ref, fingerprint=FP, client=_client(registry)) == result.digest
    assert published_digest(ref, fingerprint="0" * 64, client=_client(registry)) is None


def test_republish_uploads_nothing(registry: RegistryServer, artifact_dir: Path, tmp_path: Path) -> None:
    ref = registry.ref("models/tiny-demo:h100")
    first = publish_artifact(artifact_dir, ref, client=_client(registry))

    # Same content in a fresh copy: new mtimes, inode numbers, directory order.
    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy, symlinks=True)
    os.utime(copy / "engine" / "rank0.engine", (1, 1))
    session = CountingSession()
    second = publish_artifact(copy, ref, client=_client(registry, session))

    assert second.digest == first.digest
    assert second.uploaded == () and session.blob_uploads == 0 and session.count("POST", "/blobs/") == 0
    assert second.tags_changed == () and session.manifest_puts == 0
    assert len(second.skipped) == 5


def test_changed_layer_uploads_only_that_blob(registry: RegistryServer, artifact_dir: Path) -> None:
    ref = registry.ref("models/tiny-demo:h100")
    first = publish_artifact(artifact_dir, ref, client=_client(registry))
    (artifact_dir / "triton_repository" / "ensemble" / "config.pbtxt").write_text('name: "ensemble"\n# v2\n')
    session = CountingSession()
    second = publish_artifact(artifact_dir, ref, client=_client(registry, session))
    assert second.digest != first.digest
    assert session.blob_uploads == 1 and len(second.uploaded) == 1
    assert set(second.tags_changed) == {"h100", f"fp-{FP}"}


def test_adopt_published_moves_the_tag_without_uploading(registry: RegistryServer, artifact_dir: Path) -> None:
    ref = parse_ref(registry.ref("models/tiny-demo:h100"))
    old = publish_artifact(artifact_dir, ref, client=_client(registry))
    info = artifact_dir / "trtbuild-artifact.json"
    info.write_text(info.read_text().replace("ab" * 32, "ef" * 32))
    new = publish_artifact(artifact_dir, ref, client=_client(registry))
    assert registry.tags("models/tiny-demo") == sorted(["h100", f"fp-{FP}", "fp-" + "ef" * 32])

    session = CountingSession()
    assert adopt_published(ref, FP, client=_client(registry, session)) == old.digest
    assert session.blob_uploads == 0 and session.manifest_puts == 1
    assert published_digest(ref, client=_client(registry)) == old.digest  # h100 names the old build again
    assert adopt_published(ref, "ef" * 32, client=_client(registry)) == new.digest
    assert adopt_published(ref, "0" * 64, client=_client(registry)) is None
    assert published_digest(ref, client=_client(registry)) == new.digest


def test_manifest_seen_from_outside(registry: RegistryServer, artifact_dir: Path) -> None:
    ref = registry.ref("models/tiny-demo:h100")
    result = publish_artifact(artifact_dir, ref, client=_client(registry),
                              annotations={"org.example.team": "inference"})

    raw = requests.get(f"{registry.url}/v2/models/tiny-demo/manifests/h100", timeout=5,
                       headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert raw.status_code == 200
    assert "sha256:" + hashlib.sha256(raw.content).hexdigest() == result.digest
    assert raw.headers["Docker-Content-Digest"] == result.digest
    manifest = raw.json()
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["annotations"]["org.example.team"] == "inference"
    titles = [layer["annotations"][TITLE] for layer in manifest["layers"]]
    assert titles == ["engine/config.json", "engine/rank0.engine", "triton_repository", "trtbuild-artifact.json"]

    if SKOPEO is None:
        pytest.skip("skopeo is not installed (`make system-deps` installs it)")
    done = subprocess.run([SKOPEO, "inspect", "--tls-verify=false", "--raw",
                           f"docker://{registry.host}/models/tiny-demo:h100"],
                          capture_output=True, timeout=60, check=True)
    assert "sha256:" + hashlib.sha256(done.stdout).hexdigest() == result.digest
    assert json.loads(done.stdout)["annotations"]["dev.trtbuild.fingerprint"] == FP


def test_no_fingerprint_tag_and_info_optional(registry: RegistryServer, artifact_dir: Path) -> None:
    (artifact_dir / "trtbuild-artifact.json").unlink()
    result = publish_artifact(artifact_dir, registry.ref("models/plain:v1"), client=_client(registry))
    assert result.tags == ("v1",)
    assert registry.tags("models/plain") == ["v1"]


def test_pull_refuses_non_empty_target_and_missing_tag(registry: RegistryServer, artifact_dir: Path,
                                                        tmp_path: Path) -> None:
    ref = registry.ref("models/tiny-demo:h100")
    publish_artifact(artifact_dir, ref, client=_client(registry))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        pull_artifact(ref, busy, client=_client(registry))
    assert (busy / "keep.txt").read_text() == "mine"
    pull_artifact(ref, busy, client=_client(registry), force=True)
    assert not (busy / "keep.txt").exists() and (busy / "engine" / "rank0.engine").exists()
    with pytest.raises(PublishError, match="not found"):
        pull_artifact(registry.ref("models/tiny-demo:nope"), tmp_path / "x", client=_client(registry))
    assert not (tmp_path / "x").exists()


def test_plain_http_only_for_loopback() -> None:
    with pytest.raises(UsageError, match="loopback"):
        client_for(parse_ref("oci://registry.example.com/ns/name:tag"), plain_http=True, env={})
    assert client_for(parse_ref("oci://localhost:5000/ns/name:tag"), plain_http=True, env={}) \
        .base_url == "http://localhost:5000"


def test_cli_publish_and_pull(registry: RegistryServer, artifact_dir: Path, tmp_path: Path, cli) -> None:
    ref = registry.ref("models/tiny-demo:h100")
    env = {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache")}
    done = cli("publish", str(artifact_dir), ref, "--plain-http", "--json", "-a", "org.example.k=v", env=env)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["tags"] == ["h100", f"fp-{FP}"] and out["annotations"]["org.example.k"] == "v"
    assert "uploaded" in done.stderr

    again = cli("publish", str(artifact_dir), ref, "--plain-http", "-a", "org.example.k=v", env=env)
    assert again.returncode == 0 and "nothing uploaded" in again.stdout, again.stdout + again.stderr

    target = tmp_path / "pulled"
    done = cli("pull", ref, str(target), "--plain-http", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["digest"] == out["digest"]
    _same_tree(artifact_dir, target)

    missing = cli("pull", registry.ref("models/tiny-demo:absent"), str(tmp_path / "none"), "--plain-http")
    assert missing.returncode == 5 and "not found" in missing.stderr
    bad = cli("publish", str(artifact_dir), "oci://example.com/ns/name:tag", "--plain-http")
    assert bad.returncode == 2 and "loopback" in bad.stderr
    down = cli("publish", str(artifact_dir), "oci://127.0.0.1:1/ns/name:tag", "--plain-http", env=env)
    assert down.returncode == 5 and "unreachable" in down.stderr
