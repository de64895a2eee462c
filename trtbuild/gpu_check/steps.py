"""The GPU check's steps, each turning into one report Step (never an exception):

* ``build_engine_repository``  `trtbuild compile RECIPE --gpu GPU --executor local` (the REAL trtllm-build)
* ``render_llmapi``            the LLM-API repository of the same recipe (TensorRT-LLM's PyTorch backend)
* ``lint``                     `trtbuild lint REPO` (parameters, model.yaml against the contract fixtures)
* ``check_loaded``             every model of the served repository READY, and the ``tensorrt_llm`` config
                               Triton loaded carries every parameter the 1.2 backend reads without a default
* ``run_pytest``               a pytest run (client-contract suite against the server, or the gpu tests)

Children write their output to a log file under the check's folder; the step names it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .report import Step, read_junit

ROOT = Path(__file__).resolve().parents[2]
"""The checkout the check runs from (its tests/ folder is what runs against the servers)."""

RECIPE = """\
recipe: 1
name: gpu-check-{variant}
model:
  source: model
build:
  max_batch_size: 8
  max_input_len: 256
  max_seq_len: 512
  max_num_tokens: 1024
runtime:
  streaming: {streaming}
  kv_cache:
    reuse: true
serving:
  instances: {{preprocessing: {n}, postprocessing: {n}, bls: {n}}}
{extra}"""


def write_recipe(directory: Path, model_dir: Path, *, streaming: bool, instances: int = 2, extra: str = "") -> Path:
    """A recipe for the demo model in ``directory`` (model.source is a link to ``model_dir``)."""
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / "model"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(model_dir).resolve(), target_is_directory=True)
    path = directory / "recipe.yaml"
    variant = "stream" if streaming else "unary"
    path.write_text(RECIPE.format(variant=variant, streaming="true" if streaming else "false", n=instances, extra=extra),
                    encoding="utf-8")
    return path


def run_logged(argv: Sequence[str], log: Path, *, timeout: float, cwd: Path = ROOT,
               env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run a child with its output in ``log``; (exit status, last lines). 124 on timeout, 127 if it cannot start."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(str(a) for a in argv) + "\n").encode())
        out.flush()
        try:
            status = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                    timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            status = 124
        except OSError as exc:
            out.write(f"cannot start: {exc}\n".encode())
            status = 127
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    return status, "\n".join(lines[-15:])


def gist(tail: str, limit: int = 900) -> str:
    """The lines of a child's output that say what went wrong (``error: ...`` and what follows), else its end."""
    lines = tail.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lower().startswith(("error", "traceback"))), None)
    text = " ".join(ln.strip() for ln in (lines[start:] if start is not None else lines[-4:]))
    return text[:limit]


def timed(name: str, backend: str, fn: Callable[[], Step | tuple[str, str, dict[str, Any]]]) -> Step:
    """Run one step; an unexpected exception becomes a failed Step with its message (never a traceback)."""
    start = time.monotonic()
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - reported as the step's failure
        result = ("failed", f"{type(exc).__name__}: {exc}", {})
    seconds = round(time.monotonic() - start, 1)
    if isinstance(result, Step):
        return result.model_copy(update={"seconds": seconds})
    status, detail, data = result
    log = data.pop("log", None)
    return Step(name=name, backend=backend, status=status, detail=detail, seconds=seconds, log=log, data=data)


def build_engine_repository(recipe: Path, gpu: str, out: Path, log: Path, *, cache: Path,
                            python: str = sys.executable, timeout: float = 3600) -> tuple[str, str, dict[str, Any]]:
    """`trtbuild compile` with the local (real) toolchain; the repository is OUT/<gpu>/repository. ``cache`` is
    shared by the streaming and unary builds: their engine is the same and is built once."""
    argv = [python, "-m", "trtbuild", "compile", str(recipe), "--gpu", gpu, "--executor", "local",
            "--out", str(out), "--cache-dir", str(cache), "--quiet"]
    status, tail = run_logged(argv, log, timeout=timeout)
    repo = out / gpu / "repository"
    if status != 0:
        return "failed", f"trtbuild compile exit {status}: {gist(tail)}", {"log": str(log)}
    if not (repo / "trtbuild-repository.json").is_file():
        return "failed", f"trtbuild compile succeeded but {repo} has no trtbuild-repository.json", {"log": str(log)}
    return "passed", f"engine and repository for {gpu} in {out / gpu}", {"log": str(log), "repository": str(repo)}


def render_llmapi(recipe: Path, gpu: str, out: Path, model_dir: Path) -> tuple[str, str, dict[str, Any]]:
    from trtbuild.backends.llmapi.render import render_llmapi_repository
    from trtbuild.plan.planner import make_plan, require_feasible
    from trtbuild.recipe.loader import load_recipe

    plan = make_plan(load_recipe(recipe), gpu)
    require_feasible(plan)
    render_llmapi_repository(plan, out_dir=out, hf_model_dir=model_dir)
    return "passed", f"LLM-API repository in {out}", {"repository": str(out)}


def lint(repo: Path, log: Path, *, python: str = sys.executable) -> tuple[str, str, dict[str, Any]]:
    status, tail = run_logged([python, "-m", "trtbuild", "lint", str(repo)], log, timeout=300)
    if status != 0:
        return "failed", f"trtbuild lint exit {status}: {gist(tail)}", {"log": str(log)}
    return "passed", "no findings", {"log": str(log)}


def _get(url: str, timeout: float = 30) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = r.read()
            return r.status, json.loads(body) if body else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def loaded_parameters(config: dict[str, Any]) -> dict[str, str]:
    """The parameters of a model config as Triton's HTTP API returns it (``{key: {string_value: v}}``)."""
    return {k: str((v or {}).get("string_value", "")) for k, v in (config.get("parameters") or {}).items()}


def engine_config_findings(parameters: dict[str, str]) -> list[str]:
    """What the 1.2 backend would refuse or ignore in a loaded ``tensorrt_llm`` config (contract fixtures)."""
    from trtbuild.contracts import trtllm

    findings = [f"missing required parameter {name!r} (the backend throws 'Cannot find parameter with name')"
                for name in trtllm.required_parameters() if name not in parameters]
    for group in trtllm.required_one_of():
        if not any(parameters.get(name, "").strip() for name in group):
            findings.append(f"none of {', '.join(group)} is set")
    known, bools = trtllm.backend_parameters(), trtllm.bool_spellings()
    for name, value in sorted(parameters.items()):
        spec = known.get(name)
        if spec is None or value == "" or value.startswith("${"):
            continue
        if spec.accepted and value not in spec.accepted:
            findings.append(f"{name}={value!r} is not one of {', '.join(spec.accepted)}")
        elif not spec.parses(value, bools):
            findings.append(f"{name}={value!r} does not parse as {spec.type}")
    return findings


def check_loaded(http: str, models: Sequence[str], *, engine: bool) -> tuple[str, str, dict[str, Any]]:
    """Every model READY; for the engine backend the loaded tensorrt_llm parameters against the fixture."""
    problems = []
    for model in models:
        status, body = _get(f"http://{http}/v2/models/{model}/ready")
        if status != 200:
            problems.append(f"model {model} not ready (HTTP {status}: {str(body)[:200]})")
    data: dict[str, Any] = {"models": list(models)}
    if engine:
        status, config = _get(f"http://{http}/v2/models/tensorrt_llm/config")
        if status != 200 or not isinstance(config, dict):
            problems.append(f"cannot read the loaded tensorrt_llm config (HTTP {status})")
        else:
            params = loaded_parameters(config)
            data["backend"] = config.get("backend")
            if config.get("backend") != "tensorrtllm":
                problems.append(f"tensorrt_llm is served by backend {config.get('backend')!r}, not tensorrtllm")
            problems += engine_config_findings(params)
    if problems:
        return "failed", "; ".join(problems), data
    return "passed", f"{len(models)} models ready" + ("; loaded config conforms" if engine else ""), data


def run_pytest(args: Sequence[str], junit: Path, log: Path, *, python: str = sys.executable, timeout: float = 3600,
               env: dict[str, str] | None = None, strict_skips: bool = False) -> Step:
    """One pytest run from the checkout; its JUnit result decides the status (see report.PytestResult)."""
    argv = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}", *args]
    status, tail = run_logged(argv, log, timeout=timeout, env=env)
    result = read_junit(junit, status)
    state = result.status
    detail = "" if status in (0, 1) else f"pytest exit {status}: {gist(tail)}"
    if result.count("passed") == 0 and not detail:
        detail = "no test passed (every one skipped, or none collected): nothing was checked"
    elif state == "passed" and strict_skips and result.count("skipped"):
        state = "failed"
        detail = "gpu tests skipped on the GPU machine (each reason is listed below)"
    return Step(name="pytest", backend="", status=state, detail=detail, log=str(log), pytest=result)
