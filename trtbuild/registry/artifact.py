"""What a published trtbuild artifact is: its layers, annotations and OCI manifest.

A build output directory (DIR) becomes one OCI image manifest (``artifactType`` below, the empty config):

- each top-level file (``trtbuild-artifact.json`` included) → one layer, its title the file name;
- each file under ``engine/`` → one layer titled ``engine/<path>`` (engines are large: single-file
  layers are hashed through the stat cache and deduplicated by the registry);
- every other top-level directory (the Triton repository) → one deterministic tar layer titled with the
  directory name.

Top-level symlinks are followed (DIR may link into the cache store). Annotations come from
``trtbuild-artifact.json`` (``ArtifactInfo``) and then from the caller (recipe ``publish.annotations``,
``--annotation k=v``), later ones winning. The manifest JSON is canonical (sorted keys, no spaces) so
the same content always has the same digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from trtbuild.cache.digests import iter_tree_files
from trtbuild.errors import PublishError, UsageError
from trtbuild.fsutil import read_regular_file
from trtbuild.registry.client import OCI_MANIFEST
from trtbuild.registry.layers import TAR_MEDIA_TYPE, safe_relpath

ARTIFACT_INFO_NAME = "trtbuild-artifact.json"
ARTIFACT_TYPE = "application/vnd.trtbuild.artifact.v1"
INFO_MEDIA_TYPE = "application/vnd.trtbuild.artifact.info.v1+json"
ENGINE_MEDIA_TYPE = "application/vnd.trtbuild.engine.v1"
FILE_MEDIA_TYPE = "application/octet-stream"
EMPTY_CONFIG = b"{}"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
TITLE = "org.opencontainers.image.title"
FILE_LAYER_DIRS = ("engine",)
PREFIX = "dev.trtbuild."
_FINGERPRINT = re.compile(r"^[A-Za-z0-9_.-]{1,120}$")


class ArtifactInfo(BaseModel):
    """``trtbuild-artifact.json`` as far as publishing reads it (other fields are kept, not read)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    name: str | None = None
    """Recipe name."""
    fingerprint: str | None = None
    """Content fingerprint of the build (the final stage key); the artifact is also tagged by it."""
    gpu: str | None = None
    """Target GPU key (h100, l4, ...)."""
    sm: int | str | None = None
    """Target SM (90, 89, ...)."""
    versions: dict[str, str] = {}
    """Toolchain versions (tensorrt_llm, tensorrt, trtbuild, ...)."""
    recipe_digest: str | None = None
    """sha256 of the recipe as it applies to this target."""

    def annotations(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for field, key in (("name", "name"), ("fingerprint", "fingerprint"), ("gpu", "gpu"),
                           ("sm", "sm"), ("recipe_digest", "recipe-digest")):
            value = getattr(self, field)
            if value is not None:
                out[PREFIX + key] = str(value)
        if self.versions:
            out[PREFIX + "versions"] = json.dumps(self.versions, sort_keys=True, separators=(",", ":"))
            for tool, version in sorted(self.versions.items()):
                out[f"{PREFIX}version.{tool}"] = str(version)
        return out


def read_artifact_info(src_dir: Path) -> ArtifactInfo | None:
    path = Path(src_dir) / ARTIFACT_INFO_NAME
    if not path.exists():
        return None
    try:
        return ArtifactInfo.model_validate_json(read_regular_file(path, 16 * 1024 * 1024))
    except (ValidationError, ValueError, OSError) as exc:
        raise PublishError(f"{path}: not a valid {ARTIFACT_INFO_NAME}: {exc}") from None


def fingerprint_tag(fingerprint: str) -> str:
    """The tag an artifact gets from its fingerprint: ``fp-<fingerprint>`` (at most 128 chars)."""
    if not _FINGERPRINT.match(fingerprint):
        raise PublishError(f"fingerprint {fingerprint!r} cannot be used in a tag")
    return f"fp-{fingerprint}"


@dataclass(frozen=True)
class LayerSource:
    """One layer to publish: a file as is, or a directory as a tar."""

    title: str
    path: Path
    kind: str
    """``file`` or ``tar``."""
    media_type: str


def plan_layers(src_dir: Path) -> list[LayerSource]:
    """The layers of ``src_dir`` in a fixed order (by title)."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise PublishError(f"{src_dir}: not a directory")
    layers: list[LayerSource] = []
    for top in sorted(src_dir.iterdir(), key=lambda p: p.name):
        title = safe_relpath(top.name, what="file name")
        if top.is_file():
            media = INFO_MEDIA_TYPE if top.name == ARTIFACT_INFO_NAME else FILE_MEDIA_TYPE
            layers.append(LayerSource(title, top, "file", media))
        elif top.is_dir() and top.name in FILE_LAYER_DIRS:
            for rel, p in iter_tree_files(top):
                media = ENGINE_MEDIA_TYPE if rel.endswith(".engine") else FILE_MEDIA_TYPE
                layers.append(LayerSource(f"{title}/{rel}", p, "file", media))
        elif top.is_dir():
            layers.append(LayerSource(title, top, "tar", TAR_MEDIA_TYPE))
        else:
            raise PublishError(f"{top}: not a file or directory (a dangling symlink?); cannot publish it")
    if not layers:
        raise PublishError(f"{src_dir}: nothing to publish (empty directory)")
    return sorted(layers, key=lambda layer: layer.title)


def descriptor(media_type: str, digest: str, size: int, annotations: Mapping[str, str] | None = None
               ) -> dict[str, Any]:
    d: dict[str, Any] = {"mediaType": media_type, "digest": digest, "size": size}
    if annotations:
        d["annotations"] = dict(annotations)
    return d


def build_manifest(layers: list[dict[str, Any]], config: dict[str, Any],
                   annotations: Mapping[str, str]) -> bytes:
    """Canonical OCI image manifest bytes for an artifact."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": layers,
    }
    if annotations:
        manifest["annotations"] = dict(annotations)
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def parse_annotations(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` (from ``--annotation``) → dict; the key must be non-empty."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"invalid annotation {pair!r}: expected key=value")
        out[key.strip()] = value
    return out
