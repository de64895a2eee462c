"""A small OCI distribution client on ``requests``: HEAD/POST/PATCH/PUT blobs, PUT/GET manifests, tags.

Why not oras' Python API (0.2.x): its ``put_upload`` reads a whole blob into memory (engines are many
GB), ``download_blob`` does not verify digests, and every request failure is retried with sleeps of
2 + 3^n seconds. This client streams uploads from files, uploads large blobs in resumable chunks
(:mod:`trtbuild.registry.upload`: an interrupted upload resumes where the registry stopped), hashes
downloads as they arrive, and fails fast with a ``PublishError`` that names the registry and the
operation, never a credential. Credentials are only ever sent to the registry's own origin, never to a
host an answer points at.

Auth: anonymous first; on 401 it answers a ``Basic`` challenge with the credentials, or fetches a
``Bearer`` token from the challenge's realm (per repository scope, cached). The ``session`` is injected
(tests pass one that counts requests or kills the registry mid-push).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import requests

from trtbuild.errors import PublishError
from trtbuild.registry.auth import Credentials
from trtbuild.registry.upload import DEFAULT_CHUNK_BYTES, ChunkedUpload

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT_MANIFESTS = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST])
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


class RegistryUnreachable(PublishError):
    """The registry did not answer (connection refused or reset, timeout)."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class RegistryClient:
    """One registry (``host[:port]``). Methods take the repository (``ns/name``) they act on."""

    def __init__(self, registry: str, *, plain_http: bool = False, verify_tls: bool = True,
                 credentials: Credentials | None = None, session: requests.Session | None = None,
                 timeout: float = 300.0, retries: int = 2, backoff_s: float = 0.5,
                 sleep: Callable[[float], None] = time.sleep, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 upload_state_dir: Path | None = None):
        self.registry = registry
        self.base_url = f"{'http' if plain_http else 'https'}://{registry}"
        self.credentials = credentials
        self._session = session if session is not None else requests.Session()
        self._verify = verify_tls
        self._timeout = (min(timeout, 15.0), timeout)
        self._retries = retries
        self._backoff = backoff_s
        self._sleep = sleep
        self._tokens: dict[str, str] = {}
        self._basic = False
        self.chunk_bytes = chunk_bytes
        """Blobs from files larger than this are uploaded in chunks of this size (resumable)."""
        self.upload_state_dir = upload_state_dir
        """Where upload sessions are remembered so a later run resumes them (None: this run only)."""

    @property
    def retries(self) -> int:
        return self._retries

    def backoff(self, attempt: int) -> None:
        """Sleep before retry number ``attempt`` (1, 2, ...)."""
        self._sleep(self._backoff * 2 ** (attempt - 1))

    def same_origin(self, url: str) -> bool:
        """Whether ``url`` is this registry (scheme, host and port): only there do credentials go."""
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}".lower() == self.base_url.lower()

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    # -- transport ------------------------------------------------------------------------------
    def _authorization(self, scope: str) -> str | None:
        repo = scope.rsplit(":", 1)[0]
        for s in (scope, f"{repo}:pull,push"):
            if s in self._tokens:
                return self._tokens[s]
        if self._basic and self.credentials is not None:
            return self.credentials.basic_header()
        return None

    def _authenticate(self, resp: requests.Response, scope: str) -> bool:
        challenge = resp.headers.get("WWW-Authenticate", "")
        kind = challenge.split(" ", 1)[0].lower()
        creds = self.credentials
        if kind == "basic":
            if creds is None or self._basic or creds.is_identity_token:
                return False
            self._basic = True
            return True
        if kind != "bearer":
            return False
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.get("realm")
        if not realm:
            return False
        want = params.get("scope") or scope
        query = {"service": params.get("service", ""), "scope": want}
        try:
            if creds is not None and creds.is_identity_token:
                r = self._session.post(realm, data={**query, "grant_type": "refresh_token",
                                                    "refresh_token": creds.secret, "client_id": "trtbuild"},
                                       timeout=self._timeout, verify=self._verify)
            else:
                auth = (creds.username, creds.secret) if creds is not None else None
                r = self._session.get(realm, params=query, auth=auth, timeout=self._timeout,
                                      verify=self._verify)
        except requests.RequestException as exc:
            raise RegistryUnreachable(f"registry {self.registry}: token service unreachable "
                                      f"({type(exc).__name__})") from None
        if r.status_code != 200:
            how = f" with {creds.source} credentials" if creds else " anonymously (no credentials found)"
            raise PublishError(f"registry {self.registry}: authentication{how} refused ({r.status_code})")
        body = r.json() if r.content else {}
        token = body.get("token") or body.get("access_token")
        if not token:
            return False
        self._tokens[scope] = f"Bearer {token}"
        return True

    def _send(self, method: str, path: str, *, repo: str = "", push: bool = False,
              headers: dict[str, str] | None = None, body: Any = None,
              stream: bool = False, retry: bool = True) -> requests.Response:
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        trusted = self.same_origin(url)  # never send a credential to another host
        scope = f"repository:{repo}:{'pull,push' if push else 'pull'}" if repo else "registry:catalog:*"
        attempts = self._retries + 1 if retry else 1
        authed = False
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            auth = self._authorization(scope) if trusted else None
            if auth:
                hdrs["Authorization"] = auth
            try:
                if isinstance(body, Path):
                    with open(body, "rb") as f:
                        resp = self._session.request(method, url, headers=hdrs, data=f, stream=stream,
                                                     timeout=self._timeout, verify=self._verify)
                else:
                    resp = self._session.request(method, url, headers=hdrs, data=body, stream=stream,
                                                 timeout=self._timeout, verify=self._verify)
            except (requests.ConnectionError, requests.Timeout) as exc:
                attempt += 1
                if attempt < attempts:
                    self._sleep(self._backoff * 2 ** (attempt - 1))
                    continue
                raise RegistryUnreachable(f"registry {self.registry} unreachable during {method} "
                                          f"{_short(url)}: {_reason(exc)}{_tls_hint(exc, self)}") from None
            if resp.status_code == 401 and trusted and not authed and self._authenticate(resp, scope):
                authed = True
                continue
            if resp.status_code in (502, 503, 504) and attempt + 1 < attempts:
                attempt += 1
                self._sleep(self._backoff * 2 ** (attempt - 1))
                continue
            return resp

    def _fail(self, resp: requests.Response, what: str) -> NoReturn:
        detail = ""
        try:
            errs = resp.json().get("errors") or []
            detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errs if isinstance(e, dict))
        except ValueError:
            pass
        hint = ""
        if resp.status_code in (401, 403):
            hint = (f" (using {self.credentials.source} credentials)" if self.credentials else
                    " (no credentials: set TRTBUILD_REGISTRY_USERNAME/TRTBUILD_REGISTRY_PASSWORD or docker login)")
        raise PublishError(f"{what}: registry {self.registry} answered {resp.status_code}"
                           + (f" ({detail})" if detail else "") + hint)

    # -- API ----------------------------------------------------------------------------------------
    def ping(self) -> None:
        resp = self._send("GET", "/v2/")
        if resp.status_code != 200:
            self._fail(resp, "checking the registry API (/v2/)")

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self._send("HEAD", f"/v2/{repo}/blobs/{digest}", repo=repo)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        self._fail(resp, f"checking blob {digest} in {repo}")

    send = _send  # for trtbuild.registry.upload
    fail = _fail

    def upload_blob(self, repo: str, digest: str, size: int, source: bytes | Path) -> int:
        """Upload a blob; returns the bytes sent. A file larger than ``chunk_bytes`` goes in resumable
        chunks (:class:`trtbuild.registry.upload.ChunkedUpload`); anything else is one POST + PUT."""
        if isinstance(source, Path) and size > self.chunk_bytes:
            return ChunkedUpload(self, repo, digest, size, source, chunk_bytes=self.chunk_bytes,
                                 state_dir=self.upload_state_dir).run()
        what = f"uploading blob {digest} to {repo}"
        for attempt in range(self._retries + 1):
            try:
                start = self._send("POST", f"/v2/{repo}/blobs/uploads/", repo=repo, push=True,
                                   headers={"Content-Length": "0"}, retry=False)
                if start.status_code != 202 or not start.headers.get("Location"):
                    self._fail(start, what)
                loc = urljoin(self.base_url + "/", start.headers["Location"])
                if not self.same_origin(loc):
                    raise PublishError(f"{what}: registry {self.registry} sent the upload to another host "
                                       f"({loc.split('/')[2]}); refusing it")
                loc += ("&" if "?" in loc else "?") + f"digest={digest}"
                done = self._send("PUT", loc, repo=repo, push=True, body=source, retry=False,
                                  headers={"Content-Type": "application/octet-stream",
                                           "Content-Length": str(size)})
                if done.status_code not in (201, 204):
                    self._fail(done, what)
                return size
            except RegistryUnreachable:
                if attempt == self._retries:
                    raise
                self._sleep(self._backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def manifest_digest(self, repo: str, reference: str) -> str | None:
        """The digest a tag (or digest) resolves to, or None if it does not exist."""
        resp = self._send("HEAD", f"/v2/{repo}/manifests/{reference}", repo=repo,
                          headers={"Accept": ACCEPT_MANIFESTS})
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            self._fail(resp, f"resolving {repo}:{reference}")
        got = resp.headers.get("Docker-Content-Digest")
        if got:
            return got
        body, _ = self.get_manifest(repo, reference)
        return sha256_digest(body)

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST) -> str:
        digest = sha256_digest(body)
        resp = self._send("PUT", f"/v2/{repo}/manifests/{reference}", repo=repo, push=True, body=body,
                          headers={"Content-Type": media_type})
        if resp.status_code not in (200, 201):
            self._fail(resp, f"putting the manifest {repo}:{reference}")
        echoed = resp.headers.get("Docker-Content-Digest")
        if echoed and echoed != digest:
            raise PublishError(f"registry {self.registry} stored manifest {repo}:{reference} as {echoed}, "
                               f"expected {digest}")
        return digest

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """(body, media type). A reference that is a digest is verified against the body."""
        resp = self._send("GET", f"/v2/{repo}/manifests/{reference}", repo=repo,
                          headers={"Accept": ACCEPT_MANIFESTS}, stream=True)
        if resp.status_code == 404:
            raise PublishError(f"{self.registry}/{repo}:{reference} not found")
        if resp.status_code != 200:
            self._fail(resp, f"getting the manifest {repo}:{reference}")
        body = resp.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
        resp.close()
        if len(body) > MAX_MANIFEST_BYTES:
            raise PublishError(f"manifest {repo}:{reference} is larger than 4 MiB; refusing it")
        if reference.startswith("sha256:") and sha256_digest(body) != reference:
            raise PublishError(f"manifest {repo}@{reference} does not match its digest "
                               f"(got {sha256_digest(body)})")
        return body, resp.headers.get("Content-Type", "").split(";")[0].strip()

    def download_blob(self, repo: str, digest: str, dest: Path, size: int | None = None) -> None:
        """Stream a blob into a new file ``dest``, hashing as it arrives; refuse a mismatch."""
        resp = self._send("GET", f"/v2/{repo}/blobs/{digest}", repo=repo, stream=True)
        if resp.status_code != 200:
            self._fail(resp, f"downloading blob {digest} from {repo}")
        h, n = hashlib.sha256(), 0
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in resp.iter_content(chunk_size=1 << 20):
                    n += len(chunk)
                    if size is not None and n > size:
                        raise PublishError(f"blob {digest} from {self.registry}/{repo} is larger than "
                                           f"its descriptor says ({size} bytes); refusing it")
                    h.update(chunk)
                    f.write(chunk)
        except requests.RequestException as exc:
            dest.unlink(missing_ok=True)
            raise RegistryUnreachable(f"registry {self.registry}: download of {digest} failed: "
                                      f"{_reason(exc)}") from None
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        finally:
            resp.close()
        got = "sha256:" + h.hexdigest()
        if got != digest or (size is not None and n != size):
            dest.unlink(missing_ok=True)
            raise PublishError(f"blob {digest} from {self.registry}/{repo} failed verification: its "
                               f"content hashes to {got} ({n} bytes); the registry copy is corrupt or "
                               "was tampered with. Nothing was extracted.")

    def tags(self, repo: str) -> list[str]:
        resp = self._send("GET", f"/v2/{repo}/tags/list", repo=repo)
        if resp.status_code == 404:
            return []
        if resp.status_code != 200:
            self._fail(resp, f"listing tags of {repo}")
        data: dict[str, Any] = resp.json()
        return sorted(data.get("tags") or [])


def _short(url: str) -> str:
    path = url.split("://", 1)[-1]
    path = path[path.find("/"):] if "/" in path else path
    return path.split("?", 1)[0]


def _tls_hint(exc: Exception, client: RegistryClient) -> str:
    """A TLS handshake with a server that speaks plain HTTP (a local `docker-registry`, `registry:2`) fails
    with a bare SSL error: say what it means and what to pass."""
    if not isinstance(exc, requests.exceptions.SSLError) or client.base_url.startswith("http://"):
        return ""
    text = str(exc)
    if any(m in text for m in ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
                               "unknown protocol", "http request")):
        return (f" — {client.registry} answered plain HTTP to a TLS handshake: for a local registry without TLS, "
                "pass --plain-http (allowed for localhost / 127.0.0.1 / ::1 only)")
    return " — TLS failed; for a registry with a self-signed certificate pass --insecure"


def _reason(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed (SSLError)"
    for marker in ("Connection refused", "Connection reset", "Connection aborted", "timed out",
                   "Name or service not known", "Remote end closed connection"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__
