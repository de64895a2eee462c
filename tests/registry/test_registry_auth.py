"""Credentials: resolution from the environment and the docker config, and a real htpasswd registry.

The secret must never appear in output, in the pulled artifact, or in the cache.
"""

from __future__ import annotations

import base64
import json
import warnings
from pathlib import Path

import pytest
from registry_server import BINARY, RegistryServer

from trtbuild.registry.auth import resolve_credentials

SECRET = "s3cr3t-Pa55-for-trtbuild-tests"


def _docker_config(tmp_path: Path, obj: dict) -> Path:
    path = tmp_path / "docker" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def test_environment_wins_and_secret_is_hidden(tmp_path: Path) -> None:
    env = {"TRTBUILD_REGISTRY_USERNAME": "alice", "TRTBUILD_REGISTRY_PASSWORD": SECRET,
           "DOCKER_CONFIG": str(tmp_path / "docker")}
    _docker_config(tmp_path, {"auths": {"r.example": {"auth": base64.b64encode(b"bob:other").decode()}}})
    creds = resolve_credentials("r.example", env=env)
    assert creds is not None and creds.username == "alice" and creds.source == "environment"
    assert SECRET not in repr(creds) and SECRET not in str(creds)
    assert creds.basic_header() == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()


def test_docker_config_auths_helpers_and_tokens(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
    _docker_config(tmp_path, {
        "auths": {"https://r.example/v1/": {"auth": base64.b64encode(f"bob:{SECRET}".encode()).decode()},
                  "plain.example": {"username": "carol", "password": SECRET},
                  "tok.example": {"identitytoken": SECRET}},
        "credHelpers": {"helped.example": "fake"},
        "credsStore": "store",
    })
    asked: list[tuple[str, str]] = []

    def helper(name: str, server: str) -> str | None:
        asked.append((name, server))
        return json.dumps({"Username": f"from-{name}", "Secret": SECRET}) if name == "fake" else None

    bob = resolve_credentials("r.example", env=env, run_helper=helper)
    assert bob is not None and (bob.username, bob.secret, bob.source) == ("bob", SECRET, "docker config auths")
    carol = resolve_credentials("plain.example", env=env, run_helper=helper)
    assert carol is not None and carol.username == "carol"
    tok = resolve_credentials("tok.example", env=env, run_helper=helper)
    assert tok is not None and tok.is_identity_token
    helped = resolve_credentials("helped.example", env=env, run_helper=helper)
    assert helped is not None and helped.username == "from-fake"
    assert resolve_credentials("unknown.example", env=env, run_helper=helper) is None
    assert ("store", "unknown.example") in asked  # credsStore is the last resort
    assert resolve_credentials("x", env={"DOCKER_CONFIG": str(tmp_path / "none")}) is None


def _htpasswd(path: Path, user: str, password: str) -> Path | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt
        except ImportError:
            return None
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))  # cost 4: fast
    if not hashed or not hashed.startswith("$2"):
        return None
    path.write_text(f"{user}:{hashed}\n")
    return path


def _grep_tree(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def test_real_registry_with_htpasswd(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    if BINARY is None:
        pytest.skip("docker-registry is not installed (`make system-deps` installs Debian's docker-registry)")
    htpasswd = _htpasswd(tmp_path / "htpasswd", "alice", SECRET)
    if htpasswd is None:
        pytest.skip("no bcrypt available to write an htpasswd file (Python's crypt module)")
    from registry_server import make_artifact_dir

    art = make_artifact_dir(tmp_path / "artifact")
    server = RegistryServer(tmp_path / "registry", htpasswd=htpasswd)
    server.start()
    try:
        ref = server.ref("models/secure:v1")
        base = {"TRTBUILD_CACHE_DIR": str(tmp_path / "cache"), "DOCKER_CONFIG": str(tmp_path / "docker"),
                "TRTBUILD_REGISTRY_USERNAME": "", "TRTBUILD_REGISTRY_PASSWORD": ""}

        anon = cli("publish", str(art), ref, "--plain-http", env=base)
        assert anon.returncode == 5 and "401" in anon.stderr and "no credentials" in anon.stderr

        wrong = cli("publish", str(art), ref, "--plain-http",
                    env={**base, "TRTBUILD_REGISTRY_USERNAME": "alice", "TRTBUILD_REGISTRY_PASSWORD": "nope"})
        assert wrong.returncode == 5 and "environment credentials" in wrong.stderr

        good_env = {**base, "TRTBUILD_REGISTRY_USERNAME": "alice", "TRTBUILD_REGISTRY_PASSWORD": SECRET}
        good = cli("publish", str(art), ref, "--plain-http", "--json", env=good_env)
        assert good.returncode == 0, good.stderr
        assert SECRET not in good.stdout + good.stderr
        assert json.loads(good.stdout)["uploaded"]

        _docker_config(tmp_path, {"auths": {server.host: {
            "auth": base64.b64encode(f"alice:{SECRET}".encode()).decode()}}})
        pulled = cli("pull", ref, str(tmp_path / "pulled"), "--plain-http", "--json", env=base)
        assert pulled.returncode == 0, pulled.stderr
        assert SECRET not in pulled.stdout + pulled.stderr
        assert _grep_tree(tmp_path / "pulled", SECRET.encode()) == []
        assert _grep_tree(tmp_path / "cache", SECRET.encode()) == []
        assert _grep_tree(server.storage, SECRET.encode()) == []
    finally:
        server.stop()
