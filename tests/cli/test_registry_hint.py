"""Issue 14, item 7: a local registry without TLS, reached without --plain-http, gets a hint instead of a bare
SSL error; `status --registry` failing on the registry exits 5, as documented."""

from __future__ import annotations

from pathlib import Path


def test_http_registry_without_plain_http_suggests_it(cli, registry, tmp_path: Path) -> None:
    art = tmp_path / "art"
    art.mkdir()
    (art / "trtbuild-artifact.json").write_text("{}")
    r = cli("publish", str(art), registry.ref("demo/tiny:v1"))
    assert r.returncode == 5, r.stderr
    assert "--plain-http" in r.stderr and "plain HTTP" in r.stderr
    assert "Traceback" not in r.stderr


def test_status_registry_failure_exits_5(cli, registry, tmp_path: Path) -> None:
    from tests.cli.recipes import RECIPES

    r = cli("status", str(RECIPES / "llama-3.1-8b-fp8.yaml"), "--gpu", "h100", "--executor", "fake",
            "--registry", registry.ref("engines"), env={"TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1",
                                                        "TRTBUILD_CACHE_DIR": str(tmp_path / "c")})
    # The model is neither locked nor cached: status reports `unknown` without asking the registry (exit 0).
    assert r.returncode == 0, r.stderr
    from trtbuild.demo.tiny_model import make_tiny_model

    make_tiny_model(tmp_path / "model")
    (tmp_path / "r.yaml").write_text("recipe: 1\nname: tiny\nmodel: {source: model}\ngpus: [cpu]\n")
    r = cli("status", str(tmp_path / "r.yaml"), "--registry", registry.ref("engines"),
            env={"TRTBUILD_CACHE_DIR": str(tmp_path / "c")})  # TLS to an HTTP registry: it cannot answer
    assert r.returncode == 5, r.stderr
    assert "--plain-http" in r.stderr
