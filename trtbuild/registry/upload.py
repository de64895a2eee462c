"""Blob uploads that survive interruptions: the OCI distribution API's chunked upload.

``POST /v2/<repo>/blobs/uploads/`` opens an upload session (its ``Location``); each chunk is a ``PATCH`` with
``Content-Range: <start>-<end>`` whose answer moves the ``Location`` and says (``Range: 0-<end>``) how much
the registry holds; ``PUT <location>?digest=<digest>`` closes it, and the registry checks the digest over
everything it received. When a request fails, ``GET <location>`` asks the registry how much it holds and the
upload goes on from there: a retry sends what is missing, never the whole blob again.

The session's location is kept in ``state_dir`` (one small file per blob, mode 0600, removed when the blob is
complete), so a later run resumes too, after trtbuild, the network or the registry died. A session the
registry no longer knows (404, 416) or a final digest it refuses starts over from zero, once: docker-registry
2.8, killed while a chunk streamed in, refuses the session (its data went past the last acknowledged
offset), so only a failure between chunks resumes there. Registries
that sign their upload state (distribution's ``http.secret``) keep sessions across their restarts only if
that secret is fixed; otherwise the session is unknown after a restart and the upload starts over.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from trtbuild.errors import PublishError
from trtbuild.fsutil import read_regular_file, write_atomic

if TYPE_CHECKING:
    from trtbuild.registry.client import RegistryClient

DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024
_RANGE = re.compile(r"^(?:bytes=)?0-(\d+)$")


class _FileRange:
    """``length`` bytes of a file from ``offset``, read as the request body is sent (never all in memory)."""

    def __init__(self, path: Path, offset: int, length: int):
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close(), after the request
        self._f.seek(offset)
        self._left = length
        self._length = length

    def __len__(self) -> int:
        return self._length

    def read(self, n: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        want = self._left if n is None or n < 0 else min(n, self._left)
        data = self._f.read(want)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._f.close()


class _SessionGone(Exception):
    """The registry no longer knows the upload session (or refused its content): start over."""


class ChunkedUpload:
    """One blob from a file to ``repo``, in chunks, resumable (see the module docstring)."""

    def __init__(self, client: RegistryClient, repo: str, digest: str, size: int, path: Path, *,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, state_dir: Path | None = None):
        self.client, self.repo, self.digest, self.size, self.path = client, repo, digest, size, Path(path)
        self.chunk = max(1, int(chunk_bytes))
        self.state_file = None if state_dir is None else Path(state_dir) / (hashlib.sha256(
            f"{client.registry}\0{repo}\0{digest}".encode()).hexdigest()[:40] + ".json")
        self.sent = 0
        """Bytes sent by this run (less than ``size`` when it resumed a session)."""
        self.what = f"uploading blob {digest} to {repo}"

    # -- the saved session ---------------------------------------------------------------------
    def _load(self) -> str | None:
        if self.state_file is None:
            return None
        try:
            data = json.loads(read_regular_file(self.state_file, 64 * 1024))
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        loc = data.get("location")
        same = (data.get("registry"), data.get("repository"), data.get("digest"), data.get("size")) == (
            self.client.registry, self.repo, self.digest, self.size)
        return loc if same and isinstance(loc, str) and self.client.same_origin(loc) else None

    def _save(self, location: str) -> None:
        if self.state_file is None:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.state_file, json.dumps({"registry": self.client.registry, "repository": self.repo,
                                                  "digest": self.digest, "size": self.size, "location": location}))
        os.chmod(self.state_file, 0o600)

    def _forget(self) -> None:
        if self.state_file is not None:
            self.state_file.unlink(missing_ok=True)

    # -- requests ------------------------------------------------------------------------------
    def _location(self, resp: Any) -> str:
        loc = str(resp.headers.get("Location") or "")
        if not loc:
            self.client.fail(resp, self.what + " (no Location in the answer)")
        url = urljoin(self.client.base_url + "/", loc)
        if not self.client.same_origin(url):
            raise PublishError(f"{self.what}: registry {self.client.registry} sent the upload to another host "
                               f"({url.split('/')[2]}); refusing it")
        return url

    def _start(self) -> str:
        resp = self.client.send("POST", f"/v2/{self.repo}/blobs/uploads/", repo=self.repo, push=True,
                                headers={"Content-Length": "0"}, retry=False)
        if resp.status_code != 202:
            self.client.fail(resp, self.what)
        return self._location(resp)

    def _held(self, resp: Any) -> int:
        m = _RANGE.match(resp.headers.get("Range", "").strip())
        end = int(m.group(1)) if m else -1
        return 0 if end <= 0 else end + 1  # "0-0" is ambiguous (0 or 1 byte): take 0, the digest check decides

    def _status(self, loc: str) -> int:
        resp = self.client.send("GET", loc, repo=self.repo, push=True, retry=False)
        if resp.status_code in (404, 400, 416):
            raise _SessionGone()
        if resp.status_code not in (200, 204):
            self.client.fail(resp, self.what)
        return self._held(resp)

    def _patch(self, loc: str, offset: int) -> tuple[str, int]:
        n = min(self.chunk, self.size - offset)
        body = _FileRange(self.path, offset, n)
        try:
            resp = self.client.send("PATCH", loc, repo=self.repo, push=True, body=body, retry=False, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(n),
                "Content-Range": f"{offset}-{offset + n - 1}"})
        finally:
            body.close()
        if resp.status_code in (404, 416):
            raise _SessionGone()
        if resp.status_code != 202:
            self.client.fail(resp, self.what)
        self.sent += n
        return self._location(resp), self._held(resp)

    def _finish(self, loc: str) -> None:
        url = loc + ("&" if "?" in loc else "?") + f"digest={self.digest}"
        resp = self.client.send("PUT", url, repo=self.repo, push=True, retry=False,
                                headers={"Content-Length": "0", "Content-Type": "application/octet-stream"})
        if resp.status_code in (400, 404, 416):
            raise _SessionGone()
        if resp.status_code not in (201, 204):
            self.client.fail(resp, self.what)

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        """Upload (or finish uploading) the blob; returns the bytes this run sent."""
        from trtbuild.registry.client import RegistryUnreachable

        loc = self._load()
        failures = restarts = 0
        offset: int | None = None  # unknown: ask the registry
        while True:
            try:
                if loc is None:
                    loc, offset = self._start(), 0
                    self._save(loc)
                if offset is None:
                    offset = self._status(loc)
                while offset < self.size:
                    loc, held = self._patch(loc, offset)
                    self._save(loc)
                    offset = held if held == offset + min(self.chunk, self.size - offset) else None
                    if offset is None:
                        break  # the registry holds something else than expected: ask again
                else:
                    self._finish(loc)
                    self._forget()
                    return self.sent
            except _SessionGone:
                self._forget()
                restarts += 1
                if restarts > 1:
                    raise PublishError(f"{self.what}: registry {self.client.registry} refused the uploaded content "
                                       "twice (digest or offsets do not match)") from None
                loc, offset = None, None
            except RegistryUnreachable:
                failures += 1
                if failures > self.client.retries:
                    raise  # the session stays saved: the next run resumes it
                self.client.backoff(failures)
                offset = None
