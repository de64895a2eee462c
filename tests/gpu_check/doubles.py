"""Test doubles of the GPU machine's programs: shell scripts on a private PATH, and a Triton backends folder."""

from __future__ import annotations

import shutil
from pathlib import Path

H100_SMI = "0, NVIDIA H100 80GB HBM3, 9.0, 81559"


def script(bin_dir: Path, name: str, body: str) -> Path:
    """An executable /bin/sh script ``bin_dir/name``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def trtllm_build(bin_dir: Path, version: str = "1.2.0") -> Path:
    """Prints what `import tensorrt_llm` prints first, then a usage line, as `trtllm-build --help` does."""
    return script(bin_dir, "trtllm-build",
                  f'echo "[TensorRT-LLM] TensorRT-LLM version: {version}"\necho "usage: trtllm-build [-h] ..."')


def nvidia_smi(bin_dir: Path, lines: str = H100_SMI, status: int = 0, stderr: str = "") -> Path:
    body = f"cat <<'OUT'\n{lines}\nOUT\n"
    if stderr:
        body += f'echo "{stderr}" >&2\n'
    return script(bin_dir, "nvidia-smi", body + f"exit {status}")


def backends(root: Path, *, tensorrtllm: bool = True, python: bool = True) -> Path:
    """A Triton backends folder with (empty) library files where asked."""
    if tensorrtllm:
        (root / "tensorrtllm").mkdir(parents=True, exist_ok=True)
        (root / "tensorrtllm" / "libtriton_tensorrtllm.so").write_bytes(b"")
    if python:
        (root / "python").mkdir(parents=True, exist_ok=True)
        (root / "python" / "libtriton_python.so").write_bytes(b"")
        (root / "python" / "triton_python_backend_stub").write_bytes(b"")
    root.mkdir(parents=True, exist_ok=True)
    return root


def which_in(bin_dir: Path):
    """shutil.which restricted to ``bin_dir`` (nothing of the real PATH leaks in)."""
    return lambda name: shutil.which(name, path=str(bin_dir))
