"""A fake Hugging Face Hub on 127.0.0.1: the few HTTP endpoints huggingface_hub 0.x calls for model info and
file downloads, so the real client (tokens, errors, cache layout) runs against it with ``HF_ENDPOINT``.

Repositories are dicts of files; ``gated`` ones answer 401 with ``X-Error-Code: GatedRepo`` unless the
request carries ``Authorization: Bearer <token>``. Every request's Authorization header is recorded.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class FakeRepo:
    files: dict[str, bytes]
    commit: str = COMMIT
    gated: bool = False
    lfs: tuple[str, ...] = ("*.safetensors",)

    def is_lfs(self, name: str) -> bool:
        import fnmatch

        return any(fnmatch.fnmatchcase(name, p) for p in self.lfs)


@dataclass
class FakeHub:
    repos: dict[str, FakeRepo]
    token: str = "hf_fake_token_for_tests"
    seen_auth: list[str | None] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                hub.handle(self, body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                hub.handle(self, body=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    # ---------------------------------------------------------------------------------------- routes
    def handle(self, req: BaseHTTPRequestHandler, *, body: bool) -> None:
        auth = req.headers.get("Authorization")
        self.seen_auth.append(auth)
        path = unquote(urlparse(req.path).path)
        if path.startswith("/api/models/"):
            rest = path[len("/api/models/"):]
            repo_id, _, rev = rest.partition("/revision/")
            return self._info(req, repo_id, rev or "main", auth, body)
        parts = path.strip("/").split("/")
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, rev, name = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
            return self._file(req, repo_id, rev, name, auth, body)
        self._send(req, 404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"}, body)

    def _repo(self, req: BaseHTTPRequestHandler, repo_id: str, rev: str, auth: str | None,
              body: bool) -> FakeRepo | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            self._send(req, 401, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"}, body)
            return None
        if repo.gated and auth != f"Bearer {self.token}":
            self._send(req, 401, b'{"error": "Access to this model is restricted"}',
                       {"X-Error-Code": "GatedRepo"}, body)
            return None
        if rev not in ("main", repo.commit):
            self._send(req, 404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"}, body)
            return None
        return repo

    def _info(self, req: BaseHTTPRequestHandler, repo_id: str, rev: str, auth: str | None, body: bool) -> None:
        repo = self._repo(req, repo_id, rev, auth, body)
        if repo is None:
            return
        siblings = []
        for name, data in sorted(repo.files.items()):
            entry: dict[str, Any] = {"rfilename": name, "size": len(data),
                                     "blobId": hashlib.sha1(data).hexdigest()}
            if repo.is_lfs(name):
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        doc = {"id": repo_id, "modelId": repo_id, "sha": repo.commit, "private": False, "gated": repo.gated,
               "siblings": siblings, "tags": [], "downloads": 0, "likes": 0}
        self._send(req, 200, json.dumps(doc).encode(), {"Content-Type": "application/json"}, body)

    def _file(self, req: BaseHTTPRequestHandler, repo_id: str, rev: str, name: str, auth: str | None,
              body: bool) -> None:
        repo = self._repo(req, repo_id, rev, auth, body)
        if repo is None:
            return
        data = repo.files.get(name)
        if data is None:
            self._send(req, 404, b'{"error": "Entry not found"}', {"X-Error-Code": "EntryNotFound"}, body)
            return
        etag = hashlib.sha256(data).hexdigest() if repo.is_lfs(name) else hashlib.sha1(data).hexdigest()
        headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
        if repo.is_lfs(name):
            headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(len(data))})
        self._send(req, 200, data, headers, body)

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
        req.send_response(status)
        for k, v in headers.items():
            req.send_header(k, v)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if body:
            req.wfile.write(data)
