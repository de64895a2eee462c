"""OCI references: ``oci://host[:port]/namespace/name[:tag][@sha256:...]``.

The grammar follows the OCI distribution spec (repository path components, tag and digest patterns).
Credentials are never accepted inside a reference (``user:pass@host``): they come from the environment or
the docker config, and an error about such a reference never repeats its text.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace

from trtbuild.errors import UsageError

SCHEME = "oci://"
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG.match(tag))


def is_valid_digest(digest: str) -> bool:
    return bool(_DIGEST.match(digest))


@dataclass(frozen=True)
class OciRef:
    """A parsed reference. At least one of ``tag`` and ``digest`` is set once a tag is applied."""

    registry: str
    """``host[:port]`` as written (``localhost:5000``, ``ghcr.io``, ``[::1]:5000``)."""
    repository: str
    """``namespace/name`` (lowercase path components)."""
    tag: str | None = None
    digest: str | None = None

    @property
    def host(self) -> str:
        h = self.registry
        if h.startswith("["):
            return h[1:h.index("]")]
        return h.rsplit(":", 1)[0] if ":" in h else h

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        if self.digest:
            return self.digest
        if self.tag:
            return self.tag
        raise UsageError(f"{self}: no tag or digest")

    @property
    def is_loopback(self) -> bool:
        host = self.host
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def with_tag(self, tag: str) -> OciRef:
        if not is_valid_tag(tag):
            raise UsageError(f"invalid tag {tag!r}: letters, digits, '_', '.', '-'; at most 128; "
                             "not starting with '.' or '-'")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> OciRef:
        return replace(self, digest=digest)

    def __str__(self) -> str:
        s = f"{SCHEME}{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse_ref(text: str, *, require_tag: bool = False) -> OciRef:
    """Parse ``oci://host[:port]/ns/name[:tag][@digest]`` (the ``oci://`` prefix may be omitted)."""
    raw = text.strip()
    rest = raw[len(SCHEME):] if raw.startswith(SCHEME) else raw
    if "://" in rest:
        raise UsageError(f"unsupported scheme in {raw!r}; expected oci://host[:port]/namespace/name:tag")
    host, sep, path = rest.partition("/")
    if "@" in host:
        # Never repeat the text: it may hold a password.
        raise UsageError("credentials inside an OCI reference are not accepted; set "
                         "TRTBUILD_REGISTRY_USERNAME/TRTBUILD_REGISTRY_PASSWORD or use the docker config")
    if not sep or not path or not _HOST.match(host):
        raise UsageError(f"invalid OCI reference {raw!r}; expected oci://host[:port]/namespace/name:tag")
    digest = None
    if "@" in path:
        path, digest = path.split("@", 1)
        if not is_valid_digest(digest):
            raise UsageError(f"invalid digest in {raw!r}; expected sha256:<64 hex>")
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not is_valid_tag(tag):
            raise UsageError(f"invalid tag {tag!r} in {raw!r}")
    if not _REPOSITORY.match(path):
        raise UsageError(f"invalid repository {path!r} in {raw!r}: lowercase letters, digits and "
                         "separators ('.', '_', '-') in '/'-separated components")
    if require_tag and tag is None and digest is None:
        raise UsageError(f"{raw!r} needs a tag: oci://host/namespace/name:tag")
    return OciRef(registry=host, repository=path, tag=tag, digest=digest)
