"""A Python environment for Triton's Python-backend stub, other than the one trtbuild runs in.

The vLLM backend runs in its own virtual environment (vLLM needs transformers >= 5.16, ModelOpt in
trtbuild's needs < 5). For the stub of Triton 2.51 (nvidia-pytriton) to run models there:
- the environment's ``bin`` goes first on PATH (the stub imports from the first python it finds);
- the interpreter's ``sysconfig`` LIBDIR goes on LD_LIBRARY_PATH (the stub links libpython);
- ``LC_ALL=C.UTF-8``: the stub's embedded interpreter starts in the C locale whatever the environment
  says (PYTHONUTF8 is ignored too), so files open as ASCII; the served model calls
  ``setlocale(LC_CTYPE, "")``, which takes this (repo_templates/vllm/model.py);
- the stub must be the one built for that interpreter's Python version.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trtbuild.errors import UsageError

_PROBE = ("import json, sys, sysconfig; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
          "'libdir': sysconfig.get_config_var('LIBDIR') or ''}))")


@dataclass(frozen=True)
class PythonEnv:
    root: Path
    python: Path
    version: str
    """major.minor of the interpreter, e.g. 3.11 (selects the Python-backend stub)."""
    libdir: str

    @classmethod
    def probe(cls, root: Path) -> PythonEnv:
        """Ask the environment's interpreter for its version and LIBDIR. Raises UsageError."""
        root = Path(root).resolve()
        python = root / "bin" / "python"
        if not python.exists():
            raise UsageError(f"{root} is not a Python environment (no bin/python); for vLLM: `make vllm-venv`")
        try:
            out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True)
            data = json.loads(out.stdout)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            raise UsageError(f"cannot run {python}: {exc}") from None
        return cls(root=root, python=python, version=str(data["version"]), libdir=str(data["libdir"]))

    def apply(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with this environment in front (PATH, LD_LIBRARY_PATH, LC_ALL, VIRTUAL_ENV)."""
        env["PATH"] = os.pathsep.join(p for p in (str(self.root / "bin"), env.get("PATH", "")) if p)
        if self.libdir:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (env.get("LD_LIBRARY_PATH", ""), self.libdir) if p)
        env["LC_ALL"] = "C.UTF-8"
        env["VIRTUAL_ENV"] = str(self.root)
        return env
