"""Deterministic tar layers, safe extraction, OCI references and the artifact's layer plan (no registry)."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from registry_server import make_artifact_dir

from trtbuild.errors import PublishError, UsageError
from trtbuild.registry.artifact import ArtifactInfo, fingerprint_tag, parse_annotations, plan_layers
from trtbuild.registry.layers import extract_tar, safe_relpath, write_tar
from trtbuild.registry.reference import parse_ref


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tar_is_deterministic_across_copies_mtimes_and_modes(tmp_path: Path) -> None:
    a = make_artifact_dir(tmp_path / "a") / "triton_repository"
    b = tmp_path / "b"
    shutil.copytree(a, b, symlinks=True)
    for p in b.rglob("*"):
        if not p.is_symlink():
            os.utime(p, (12345, 12345))
    (b / "ensemble" / "config.pbtxt").chmod(0o600)  # not executable: normalised to 0644 anyway
    write_tar(a, tmp_path / "a.tar", arcname="triton_repository")
    write_tar(b, tmp_path / "b.tar", arcname="triton_repository")
    assert _sha(tmp_path / "a.tar") == _sha(tmp_path / "b.tar")
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "triton_repository"
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
    assert next(m for m in members if m.name.endswith("launch.sh")).mode == 0o755


def test_tar_changes_with_content(tmp_path: Path) -> None:
    d = make_artifact_dir(tmp_path / "a") / "triton_repository"
    write_tar(d, tmp_path / "1.tar", arcname="triton_repository")
    (d / "ensemble" / "config.pbtxt").write_text("changed")
    write_tar(d, tmp_path / "2.tar", arcname="triton_repository")
    assert _sha(tmp_path / "1.tar") != _sha(tmp_path / "2.tar")


def test_publishing_refuses_symlinks_leaving_the_artifact(tmp_path: Path) -> None:
    d = make_artifact_dir(tmp_path / "a") / "triton_repository"
    (d / "escape").symlink_to("../../../etc/passwd")
    with pytest.raises(PublishError, match="points outside the artifact"):
        write_tar(d, tmp_path / "x.tar", arcname="triton_repository")
    (d / "escape").unlink()
    (d / "abs").symlink_to("/etc/passwd")
    with pytest.raises(PublishError, match="points outside the artifact"):
        write_tar(d, tmp_path / "x.tar", arcname="triton_repository")


def test_extract_roundtrip_and_refusals(tmp_path: Path) -> None:
    src = make_artifact_dir(tmp_path / "a") / "triton_repository"
    write_tar(src, tmp_path / "ok.tar", arcname="triton_repository")
    out = tmp_path / "out"
    out.mkdir()
    names = extract_tar(tmp_path / "ok.tar", out, prefix="triton_repository")
    assert "triton_repository/ensemble/config.pbtxt" in names
    assert (out / "triton_repository/postprocessing/1/tokenizer.json").read_text().startswith("def initialize")

    def hostile(build) -> Path:  # type: ignore[no-untyped-def]
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            build(tar)
        path = tmp_path / "hostile.tar"
        path.write_bytes(buf.getvalue())
        return path

    def hardlink(tar: tarfile.TarFile) -> None:
        ti = tarfile.TarInfo("r/h")
        ti.type, ti.linkname = tarfile.LNKTYPE, "/etc/passwd"
        tar.addfile(ti)

    def device(tar: tarfile.TarFile) -> None:
        ti = tarfile.TarInfo("r/dev")
        ti.type = tarfile.CHRTYPE
        tar.addfile(ti)

    def twice(tar: tarfile.TarFile) -> None:
        for _ in range(2):
            ti = tarfile.TarInfo("r/f")
            ti.size = 1
            tar.addfile(ti, io.BytesIO(b"x"))

    for build, message in ((hardlink, "hard links"), (device, "devices"), (twice, "twice")):
        target = tmp_path / f"t-{build.__name__}"
        target.mkdir()
        with pytest.raises(PublishError, match=message):
            extract_tar(hostile(build), target, prefix="r")
    (tmp_path / "garbage.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(PublishError, match="not a valid tar"):
        extract_tar(tmp_path / "garbage.tar", out, prefix="x")


@given(st.lists(st.sampled_from(["a", "..", ".", "", "b.c", "/", "x\\y"]), min_size=1, max_size=6))
def test_safe_relpath_never_escapes(parts: list[str]) -> None:
    name = "/".join(parts)
    try:
        rel = safe_relpath(name)
    except PublishError:
        return
    assert not rel.startswith("/") and ".." not in rel.split("/") and rel
    assert os.path.normpath(os.path.join("/root", rel)).startswith("/root/")


def test_parse_ref() -> None:
    r = parse_ref("oci://127.0.0.1:5000/models/llama-3.1-8b:h100-fp8")
    assert (r.registry, r.repository, r.tag, r.digest) == ("127.0.0.1:5000", "models/llama-3.1-8b", "h100-fp8", None)
    assert r.is_loopback and str(r) == "oci://127.0.0.1:5000/models/llama-3.1-8b:h100-fp8"
    d = parse_ref("ghcr.io/org/name@sha256:" + "a" * 64)
    assert d.tag is None and d.reference == "sha256:" + "a" * 64 and not d.is_loopback
    assert parse_ref("oci://localhost/ns/x").tag is None
    assert parse_ref("oci://[::1]:5000/ns/x:t").is_loopback
    for bad in ("oci://host", "oci://host/UPPER/x:t", "https://host/ns/x:t", "oci://host/ns/x:-bad",
                "oci://host/ns/x@sha256:zz"):
        with pytest.raises(UsageError):
            parse_ref(bad)
    with pytest.raises(UsageError) as err:
        parse_ref("oci://alice:hunter2@registry.example.com/ns/x:t")
    assert "hunter2" not in str(err.value)
    with pytest.raises(UsageError, match="needs a tag"):
        parse_ref("oci://host/ns/x", require_tag=True)


def test_artifact_info_annotations_and_layer_plan(tmp_path: Path) -> None:
    d = make_artifact_dir(tmp_path / "a")
    info = ArtifactInfo.model_validate_json((d / "trtbuild-artifact.json").read_bytes())
    ann = info.annotations()
    assert ann["dev.trtbuild.fingerprint"] == "ab" * 32 and ann["dev.trtbuild.version.trtbuild"] == "0.1.0"
    assert fingerprint_tag("ab" * 32) == "fp-" + "ab" * 32
    with pytest.raises(PublishError):
        fingerprint_tag("no spaces allowed")
    layers = plan_layers(d)
    assert [(x.title, x.kind) for x in layers] == [
        ("engine/config.json", "file"), ("engine/rank0.engine", "file"), ("triton_repository", "tar"),
        ("trtbuild-artifact.json", "file")]
    assert parse_annotations(["a=b", "c=d=e"]) == {"a": "b", "c": "d=e"}
    with pytest.raises(UsageError):
        parse_annotations(["novalue"])
    # DIR may link into the cache store: top-level symlinks are followed
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "engine").symlink_to(d / "engine")
    assert [x.title for x in plan_layers(linked)] == ["engine/config.json", "engine/rank0.engine"]
