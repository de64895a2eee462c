"""Helpers of the fault-injection tests: a project (recipe + tiny model + its own cache), the CLI as a user
runs it, and hostile modules that record being imported."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

RECIPE = """\
recipe: 1
name: tiny
model: {source: model}
build: {max_seq_len: 256, max_input_len: 128, max_batch_size: 4, max_num_tokens: 512}
"""
GPUS = ("h100", "cpu")
HOSTILE_MODULES = ("numpy", "concurrent", "sitecustomize", "json", "yaml", "pynvml")
BIN = Path(sys.executable).parent
TRTBUILD = BIN / "trtbuild"


@dataclass(frozen=True)
class Project:
    dir: Path
    cache: Path
    out: Path
    env: dict[str, str]

    def compile(self, *extra: str, cwd: Path | None = None, gpus: tuple[str, ...] = GPUS,
                env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``trtbuild compile recipe.yaml`` as a user runs it (the console script), in ``cwd`` (the project)."""
        args = [str(TRTBUILD), "compile", str(self.dir / "recipe.yaml"), "--executor", "fake", "--quiet",
                "--out", str(self.out), "--cache-dir", str(self.cache), "--json"]
        for gpu in gpus:
            args += ["--gpu", gpu]
        return subprocess.run([*args, *extra], cwd=cwd or self.dir, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def trtbuild(self, *args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(TRTBUILD), *args], cwd=cwd or self.dir, env=self.env, capture_output=True,
                              text=True, timeout=timeout)


def base_env() -> dict[str, str]:
    return {"TRTBUILD_ALLOW_FAKE_TOOLCHAIN": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}", "HOME": os.environ.get("HOME", "/tmp"),
            "TOKENIZERS_PARALLELISM": "false"}


def make_project(root: Path, model: Path, cache: Path | None = None) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "model").symlink_to(model, target_is_directory=True)
    (root / "recipe.yaml").write_text(textwrap.dedent(RECIPE))
    return Project(root, cache or root / "cache", root / "out", base_env())


def plant_hostile_modules(directory: Path, markers: Path) -> list[Path]:
    """A ``<name>.py`` per HOSTILE_MODULES in ``directory`` that, if ever imported, leaves ``markers/<name>``."""
    markers.mkdir(parents=True, exist_ok=True)
    for name in HOSTILE_MODULES:
        (directory / f"{name}.py").write_text(
            f"import pathlib\npathlib.Path({str(markers / name)!r}).write_text('imported')\n"
            f"raise ImportError('hostile {name}.py from the working directory was imported')\n")
    return [markers / n for n in HOSTILE_MODULES]
