"""Serving helpers of the LLM-API tests (a module name no other test directory uses)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from vllm_helpers import serve

FAKE_TRTLLM = Path(__file__).resolve().parent / "fake_trtllm"


def double_env(root: Path) -> Path:
    """A virtual environment for the Python stub: this one's packages plus the fake `tensorrt_llm`.

    Triton's stub ignores PYTHONPATH and imports from the first `python` on PATH (trtbuild.repository.
    python_env), so the double goes in through a .pth file of a small environment of its own."""
    import subprocess
    import sysconfig

    env = root / "double-env"
    if not (env / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))
    here = sysconfig.get_path("purelib")
    (site / "trtbuild_test_double.pth").write_text(f"import site; site.addsitedir({here!r})\n{FAKE_TRTLLM}\n")
    return env


def serve_with_double(repo: Path, env: Path) -> Iterator[object]:
    """tritonserver (nvidia-pytriton) on ``repo`` with the fake `tensorrt_llm` importable by the Python stub."""
    from trtbuild.repository.server import pytriton_install

    yield from serve(repo, install=pytriton_install(), python_env=env)
