"""Registry credentials, from the environment or the docker config. Never printed, never written.

Order: ``TRTBUILD_REGISTRY_USERNAME`` + ``TRTBUILD_REGISTRY_PASSWORD``; else the docker config
(``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``): ``credHelpers[host]``, ``auths[host]``
(``auth`` = base64 ``user:password``, or ``username``/``password``, or ``identitytoken``), then
``credsStore``. Credential helpers are run as ``docker-credential-<name> get`` (the docker protocol).

``Credentials`` hides the secret from ``repr``/``str``; its ``source`` says where it came from (safe to
print). Nothing here logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from trtbuild.fsutil import read_regular_file

ENV_USERNAME = "TRTBUILD_REGISTRY_USERNAME"
ENV_PASSWORD = "TRTBUILD_REGISTRY_PASSWORD"
TOKEN_USERNAME = "<token>"  # docker's marker for an identity (refresh) token

HelperRunner = Callable[[str, str], "str | None"]
"""(helper name, server) → the helper's JSON answer, or None."""


@dataclass(frozen=True)
class Credentials:
    """A username and secret for one registry. ``repr`` never shows the secret."""

    username: str
    secret: str = field(repr=False)
    source: str = "environment"
    """Where these came from, e.g. ``environment`` or ``docker config auths``; safe to print."""

    @property
    def is_identity_token(self) -> bool:
        """The secret is an OAuth2 refresh token (docker ``identitytoken``), not a password."""
        return self.username == TOKEN_USERNAME

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __str__(self) -> str:
        return f"credentials for {self.username!r} from {self.source}"


def docker_config_path(env: Mapping[str, str]) -> Path:
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base).expanduser() / "config.json"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def _normalize_server(server: str) -> str:
    s = server.strip().lower()
    for prefix in ("https://", "http://"):
        if s.startswith(prefix):
            s = s[len(prefix):]
    return s.split("/", 1)[0]


def run_credential_helper(helper: str, server: str) -> str | None:
    """Run ``docker-credential-<helper> get``; its stdout, or None if absent or failing."""
    from trtbuild.toolchain.process import run_child, which

    exe = which(f"docker-credential-{helper}")  # absolute PATH entries only: never one in the current directory
    if exe is None:
        return None
    try:
        done = run_child([exe, "get"], input=server, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _from_helper(helper: str, server: str, run: HelperRunner) -> Credentials | None:
    out = run(helper, server)
    if not out:
        return None
    try:
        data = json.loads(out)
        user, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        return None
    return Credentials(user, secret, source=f"docker credential helper {helper}") if secret else None


def _from_auth_entry(entry: Mapping[str, object]) -> Credentials | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(TOKEN_USERNAME, token, source="docker config identitytoken")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, _, secret = base64.b64decode(auth).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return Credentials(user, secret, source="docker config auths") if user else None
    name, password = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(password, str) and name:
        return Credentials(name, password, source="docker config auths")
    return None


def resolve_credentials(registry: str, *, env: Mapping[str, str] | None = None,
                        docker_config: Path | None = None,
                        run_helper: HelperRunner = run_credential_helper) -> Credentials | None:
    """Credentials for ``registry`` (``host[:port]``), or None for anonymous access."""
    env = os.environ if env is None else env
    user, secret = env.get(ENV_USERNAME), env.get(ENV_PASSWORD)
    if user and secret is not None:
        return Credentials(user, secret, source="environment")
    path = docker_config or docker_config_path(env)
    try:
        config = json.loads(read_regular_file(path, 16 * 1024 * 1024))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    server = _normalize_server(registry)
    helpers = config.get("credHelpers") or {}
    if isinstance(helpers, dict):
        for host, helper in helpers.items():
            if _normalize_server(host) == server and isinstance(helper, str):
                found = _from_helper(helper, registry, run_helper)
                if found:
                    return found
    auths = config.get("auths") or {}
    if isinstance(auths, dict):
        for host, entry in auths.items():
            if _normalize_server(host) == server and isinstance(entry, dict):
                found = _from_auth_entry(entry)
                if found:
                    return found
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        return _from_helper(store, registry, run_helper)
    return None
