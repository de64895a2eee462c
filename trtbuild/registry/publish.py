"""Publish a build output directory to an OCI registry, and pull it back, verified.

Publishing: every layer is hashed first (engine files through the stat cache, directories as
deterministic tars in a temporary directory), the canonical manifest is built, then each blob is
HEAD-checked and uploaded only if missing, and the manifest is PUT last: first under the requested tag,
then under ``fp-<fingerprint>``. A tag therefore never names a partial artifact, the fingerprint tag
implies the main tag, and re-publishing the same content uploads nothing (tags already pointing at the
same digest are not even re-PUT).

Pulling: the manifest is fetched (and checked against its digest when pinned), every blob is streamed,
hashed and refused on mismatch, tars are extracted safely (``layers.extract_tar``), and all of it happens
in a staging directory renamed into place at the end: a failed pull leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from trtbuild.cache.digests import StatCache, file_digest
from trtbuild.errors import PublishError, UsageError
from trtbuild.fsutil import sha256_file, staged_dir
from trtbuild.registry.artifact import (
    EMPTY_CONFIG,
    EMPTY_MEDIA_TYPE,
    TITLE,
    build_manifest,
    descriptor,
    fingerprint_tag,
    plan_layers,
    read_artifact_info,
)
from trtbuild.registry.auth import resolve_credentials
from trtbuild.registry.client import OCI_MANIFEST, RegistryClient, sha256_digest
from trtbuild.registry.layers import TAR_MEDIA_TYPE, extract_tar, place_file, safe_relpath, write_tar
from trtbuild.registry.reference import OciRef, is_valid_digest, parse_ref


@dataclass(frozen=True)
class PublishEvent:
    """Progress of a publish or pull, for a progress display or a test hook."""

    kind: str
    """``blob-exists``, ``blob-uploaded``, ``blob-resumed`` (an interrupted upload finished: ``size`` is what
    this run sent), ``tag-unchanged``, ``tag-set``, ``blob-downloaded``."""
    name: str
    """Layer title, ``config``, or the tag."""
    digest: str
    size: int = 0


EventSink = Callable[[PublishEvent], None]


@dataclass(frozen=True)
class PublishResult:
    ref: OciRef
    """The reference as published (registry, repository, tag)."""
    digest: str
    """Manifest digest: ``ref`` pinned is ``oci://registry/repository@digest``."""
    tags: tuple[str, ...]
    tags_changed: tuple[str, ...]
    uploaded: tuple[str, ...]
    """Digests of blobs uploaded by this publish (empty when re-publishing the same thing)."""
    skipped: tuple[str, ...]
    """Digests of blobs the registry already had."""
    bytes_uploaded: int
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def pinned(self) -> str:
        return f"oci://{self.ref.registry}/{self.ref.repository}@{self.digest}"

    def to_json(self) -> dict[str, Any]:
        return {"ref": str(self.ref), "digest": self.digest, "pinned": self.pinned, "tags": list(self.tags),
                "tags_changed": list(self.tags_changed), "uploaded": list(self.uploaded),
                "skipped": list(self.skipped), "bytes_uploaded": self.bytes_uploaded,
                "annotations": self.annotations}


@dataclass(frozen=True)
class PullResult:
    ref: OciRef
    digest: str
    dest: Path
    files: tuple[str, ...]
    """Layer titles written (files, and directories extracted from tars)."""
    annotations: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"ref": str(self.ref), "digest": self.digest, "dest": str(self.dest),
                "files": list(self.files), "annotations": self.annotations}


def client_for(ref: OciRef, *, plain_http: bool = False, insecure: bool = False,
               env: Mapping[str, str] | None = None, session: requests.Session | None = None,
               retries: int = 2, upload_state_dir: Path | None = None) -> RegistryClient:
    """A client for ``ref``'s registry with credentials from the environment / docker config;
    ``upload_state_dir`` (the cache's ``uploads/``) lets an interrupted upload resume in a later run."""
    if plain_http and not ref.is_loopback:
        raise UsageError(f"plain HTTP is only allowed for a loopback registry (localhost, 127.0.0.1, ::1), "
                         f"not {ref.registry}; use TLS")
    creds = resolve_credentials(ref.registry, env=env)
    return RegistryClient(ref.registry, plain_http=plain_http, verify_tls=not insecure, credentials=creds,
                          session=session, retries=retries, upload_state_dir=upload_state_dir)


def _as_ref(ref: OciRef | str) -> OciRef:
    return parse_ref(ref) if isinstance(ref, str) else ref


def publish_artifact(src_dir: Path, ref: OciRef | str, *, client: RegistryClient | None = None,
                     annotations: Mapping[str, str] | None = None, tag_by_fingerprint: bool = True,
                     stat_cache: StatCache | None = None, work_dir: Path | None = None,
                     on_event: EventSink | None = None) -> PublishResult:
    """Publish ``src_dir`` as ``ref`` (which needs a tag). See the module docstring for the order."""
    ref = _as_ref(ref)
    if ref.tag is None or ref.digest is not None:
        raise UsageError(f"{ref}: publish needs a tag (oci://host/namespace/name:tag) and no digest")
    client = client or client_for(ref)
    emit = on_event or (lambda e: None)
    info = read_artifact_info(Path(src_dir))
    annots = {**(info.annotations() if info else {}), **dict(annotations or {})}
    layers = plan_layers(Path(src_dir))
    repo = ref.repository
    with tempfile.TemporaryDirectory(prefix="trtbuild-publish-", dir=work_dir) as tmp:
        blobs: list[tuple[str, dict[str, Any], Path | bytes]] = []
        for i, layer in enumerate(layers):
            if layer.kind == "tar":
                path = Path(tmp) / f"layer-{i}.tar"
                write_tar(layer.path, path, arcname=layer.title)
                digest = "sha256:" + sha256_file(path)
            else:
                path = layer.path
                digest = "sha256:" + file_digest(path, stat_cache)
            desc = descriptor(layer.media_type, digest, path.stat().st_size, {TITLE: layer.title})
            blobs.append((layer.title, desc, path))
        config = descriptor(EMPTY_MEDIA_TYPE, sha256_digest(EMPTY_CONFIG), len(EMPTY_CONFIG))
        manifest = build_manifest([d for _, d, _ in blobs], config, annots)
        mdigest = sha256_digest(manifest)

        uploaded: list[str] = []
        skipped: list[str] = []
        sent = 0
        for name, desc, source in [("config", config, EMPTY_CONFIG), *blobs]:
            digest, size = desc["digest"], desc["size"]
            if digest in uploaded or digest in skipped:
                continue
            if client.blob_exists(repo, digest):
                skipped.append(digest)
                emit(PublishEvent("blob-exists", name, digest, size))
                continue
            n = client.upload_blob(repo, digest, size, source)
            uploaded.append(digest)
            sent += n
            emit(PublishEvent("blob-uploaded" if n >= size else "blob-resumed", name, digest, n))

    tags = [ref.tag]
    if tag_by_fingerprint and info is not None and info.fingerprint:
        tags.append(fingerprint_tag(info.fingerprint))
    changed: list[str] = []
    for tag in tags:  # the main tag first; the fingerprint tag last (its presence implies the main tag)
        if client.manifest_digest(repo, tag) == mdigest:
            emit(PublishEvent("tag-unchanged", tag, mdigest))
            continue
        client.put_manifest(repo, tag, manifest, OCI_MANIFEST)
        changed.append(tag)
        emit(PublishEvent("tag-set", tag, mdigest, len(manifest)))
    return PublishResult(ref=ref, digest=mdigest, tags=tuple(tags), tags_changed=tuple(changed),
                         uploaded=tuple(uploaded), skipped=tuple(skipped), bytes_uploaded=sent,
                         annotations=annots)


def published_digest(ref: OciRef | str, *, fingerprint: str | None = None,
                     client: RegistryClient | None = None) -> str | None:
    """Manifest digest of ``fp-<fingerprint>`` (or of ``ref``'s tag) in ``ref``'s repository, or None.

    ``compile --skip-published`` asks this with the build's fingerprint before building anything.
    """
    ref = _as_ref(ref)
    client = client or client_for(ref)
    reference = fingerprint_tag(fingerprint) if fingerprint else ref.reference
    return client.manifest_digest(ref.repository, reference)


def adopt_published(ref: OciRef | str, fingerprint: str, *, client: RegistryClient | None = None,
                    on_event: EventSink | None = None) -> str | None:
    """If ``fp-<fingerprint>`` exists in ``ref``'s repository, point ``ref``'s tag at it; its digest.

    What ``compile --skip-published`` does instead of building: the artifact exists, so only the tag
    (which may name an older or newer build) is moved, by PUTting the same manifest bytes. None when
    nothing with this fingerprint is published.
    """
    ref = _as_ref(ref)
    if ref.tag is None:
        raise UsageError(f"{ref}: needs a tag")
    client = client or client_for(ref)
    emit = on_event or (lambda e: None)
    fp_tag = fingerprint_tag(fingerprint)
    digest = client.manifest_digest(ref.repository, fp_tag)
    if digest is None:
        return None
    if client.manifest_digest(ref.repository, ref.tag) == digest:
        emit(PublishEvent("tag-unchanged", ref.tag, digest))
        return digest
    body, media_type = client.get_manifest(ref.repository, digest)
    client.put_manifest(ref.repository, ref.tag, body, media_type or OCI_MANIFEST)
    emit(PublishEvent("tag-set", ref.tag, digest, len(body)))
    return digest


def _layer_list(manifest: Any, ref: OciRef) -> list[tuple[str, str, int, str]]:
    """(title, digest, size, media type) of every layer, validated."""
    if not isinstance(manifest, dict):
        raise PublishError(f"{ref}: the manifest is not a JSON object")
    media = manifest.get("mediaType", OCI_MANIFEST)
    if media != OCI_MANIFEST or manifest.get("schemaVersion") != 2:
        raise PublishError(f"{ref}: is a {media}, not an OCI image manifest of a trtbuild artifact")
    out: list[tuple[str, str, int, str]] = []
    titles: set[str] = set()
    for layer in manifest.get("layers") or []:
        if not isinstance(layer, dict):
            raise PublishError(f"{ref}: malformed layer descriptor")
        digest, size, mt = layer.get("digest"), layer.get("size"), layer.get("mediaType")
        title = (layer.get("annotations") or {}).get(TITLE)
        if not (isinstance(digest, str) and is_valid_digest(digest)):
            raise PublishError(f"{ref}: layer with an unsupported digest {digest!r}")
        if not isinstance(size, int) or size < 0 or not isinstance(mt, str) or not isinstance(title, str):
            raise PublishError(f"{ref}: layer {digest} lacks a size, media type or title")
        title = safe_relpath(title, what="layer title")
        if title in titles:
            raise PublishError(f"{ref}: two layers are titled {title!r}")
        titles.add(title)
        out.append((title, digest, size, mt))
    if not out:
        raise PublishError(f"{ref}: the artifact has no layers")
    return out


def pull_artifact(ref: OciRef | str, dest_dir: Path, *, client: RegistryClient | None = None,
                  force: bool = False, on_event: EventSink | None = None) -> PullResult:
    """Pull ``ref`` into ``dest_dir`` (must be absent or empty unless ``force``), verifying every digest."""
    ref = _as_ref(ref)
    if ref.tag is None and ref.digest is None:
        raise UsageError(f"{ref}: pull needs a tag or a digest (oci://host/namespace/name:tag)")
    dest = Path(dest_dir)
    if dest.exists() and not force and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest} exists and is not empty; pass --force to replace it")
    client = client or client_for(ref)
    emit = on_event or (lambda e: None)
    body, _ = client.get_manifest(ref.repository, ref.reference)
    digest = sha256_digest(body)
    try:
        manifest = json.loads(body)
    except ValueError:
        raise PublishError(f"{ref}: the manifest is not valid JSON") from None
    layers = _layer_list(manifest, ref)
    dest.parent.mkdir(parents=True, exist_ok=True)
    downloads = dest.parent / f".{dest.name}.download-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    downloads.mkdir()
    try:
        with staged_dir(dest) as stage:
            for i, (title, blob, size, mt) in enumerate(layers):
                tmp = downloads / f"{i}-{blob.split(':', 1)[1][:16]}"
                client.download_blob(ref.repository, blob, tmp, size)
                emit(PublishEvent("blob-downloaded", title, blob, size))
                if mt == TAR_MEDIA_TYPE:
                    extract_tar(tmp, stage, prefix=title)
                    tmp.unlink()
                else:
                    place_file(stage, title, tmp)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)
    annotations = manifest.get("annotations") or {}
    return PullResult(ref=ref, digest=digest, dest=dest, files=tuple(t for t, _, _, _ in layers),
                      annotations={str(k): str(v) for k, v in annotations.items()})
