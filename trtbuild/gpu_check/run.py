"""`python -m trtbuild.gpu_check` (`make gpu-check`): what only a machine with TensorRT-LLM can check.

1. The environment first (environment.py): GPU, `trtllm-build` + TensorRT-LLM 1.2.x, tritonserver with the
   tensorrtllm and python backends. Anything missing: the list, exit 4, nothing else runs.
2. For each backend (engine, llmapi) and each build (streaming, unary): the demo model compiled with the REAL
   toolchain (engine) or the LLM-API repository rendered (llmapi), linted, served by the real tritonserver on
   127.0.0.1 free ports, every model READY and the loaded config checked against the contract fixtures, the
   client-contract suite (tests/client_contract) run against it; the server stopped.
3. The `gpu`-marked tests (GPU_TESTS: checkpoint calibration on CUDA, the tiny engine, the LLM-API checks).
4. build/gpu-check/report.json + report.md; exit 0 only when nothing failed (exit 4 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trtbuild.errors import TrtbuildError, UsageError

from .environment import BACKENDS, Environment, probe_environment
from .report import Report, Step, write_report
from .steps import (
    ROOT,
    build_engine_repository,
    check_loaded,
    lint,
    render_llmapi,
    run_pytest,
    timed,
    write_recipe,
)

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 4
GPU_TESTS = {"engine": ("tests/checkpoint/test_checkpoint_gpu.py", "tests/engine/test_engine_gpu.py"),
             "llmapi": ("tests/llmapi/test_llmapi_gpu.py",)}
"""Every `gpu`-marked test file, by the backend it checks (tests/gpu_check keeps this list complete)."""
CONTRACT_SUITE = "tests/client_contract"
MODEL_TESTS = {f"{CONTRACT_SUITE}/test_contract.py::test_preprocessing_and_postprocessing_called_directly":
               ("preprocessing", "postprocessing")}
"""Contract tests that call models only the engine layout has (the LLM-API layout is tensorrt_llm_bls +
ensemble): deselected, with the reason in the report, where the served repository lacks them."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trtbuild.gpu_check",
        description="Build the demo model with the real TensorRT-LLM, serve it with the real tritonserver and "
                    "run the client-contract and gpu tests against it; report under --out.")
    p.add_argument("--backend", choices=["all", *BACKENDS], default="all",
                   help="engine (trtllm-build + C++ tensorrtllm backend), llmapi (PyTorch backend), or all")
    p.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2",
                   help="SmolLM2-135M-Instruct (real tokenizer, default) or the tiny random Llama")
    p.add_argument("--gpu", metavar="GPU", help="catalog GPU to plan for (default: GPU 0's own entry; same SM)")
    p.add_argument("--out", metavar="DIR", default="build/gpu-check", help="report and work folder")
    p.add_argument("--only-streaming", action="store_true", help="skip the unary (non-decoupled) builds")
    p.add_argument("--check-env", action="store_true", help="only check the environment, then stop")
    p.add_argument("--load-timeout", type=float, default=900, metavar="S", help="seconds for a server to load")
    p.add_argument("--timeout", type=float, default=3600, metavar="S", help="seconds for one build or pytest run")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    return p


def say(text: str) -> None:
    print(f"[gpu-check] {text}", file=sys.stderr, flush=True)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def missing_message(env: Environment, backends: Sequence[str]) -> str:
    seen: dict[str, Any] = {}
    for b in backends:
        for c in env.missing_for(b):
            seen.setdefault(c.id, c)
    lines = ["the GPU check cannot run here; missing:"]
    lines += [f"  - {c.label} (needed by {', '.join(x for x in c.needed_by if x in backends)}): {c.missing}"
              for c in seen.values()]
    others = [b for b in BACKENDS if b in backends and not env.missing_for(b)]
    if others:
        lines.append(f"  only {', '.join(others)} could run: pass --backend {others[0]}")
    return "\n".join(lines)


def prepare_model(kind: str, work: Path) -> Path:
    if kind == "tiny":
        from trtbuild.demo.tiny_model import make_tiny_model

        return make_tiny_model(work / "tiny-llama", family="llama")
    from trtbuild.demo.smollm2 import smollm2_checkpoint

    return smollm2_checkpoint()


class Check:
    """One run of the GPU check (the steps it took so far are what the report shows if it is interrupted)."""

    def __init__(self, args: argparse.Namespace, env: Environment, out: Path):
        self.args, self.env, self.out = args, env, out
        self.logs = out / "logs"
        self.steps: list[Step] = []

    def add(self, step: Step) -> Step:
        self.steps.append(step)
        say(f"{step.backend or '-'}: {step.name}: {step.status.upper()} ({step.seconds:.1f}s)"
            + (f" {step.detail[:300]}" if step.detail and step.status != "passed" else ""))
        return step

    def step(self, name: str, backend: str, fn: Callable[[], Any]) -> Step:
        say(f"{backend}: {name} ...")
        return self.add(timed(name, backend, fn))

    def skip(self, name: str, backend: str, why: str) -> None:
        self.add(Step(name=name, backend=backend, status="skipped", detail=why))

    def run(self, backends: Sequence[str]) -> None:
        model = self.step("demo model", "all", lambda: ("passed", "", {"model": str(self._model())}))
        if model.status != "passed":
            return
        model_dir = Path(model.data["model"])
        for backend in backends:
            for streaming in (True,) if self.args.only_streaming else (True, False):
                self.variant(backend, streaming, model_dir)
        tests = [t for b in backends for t in GPU_TESTS[b] if (ROOT / t).is_file()]
        if not tests:
            self.skip("gpu-marked tests", "all", "this checkout has no gpu test files")
            return
        say("all: gpu-marked tests ...")
        env = dict(os.environ, TRITONSERVER=self.env.tritonserver or "")
        result = timed("gpu-marked tests", "all", lambda: run_pytest(
            ["-m", "gpu", *tests], self.out / "junit-gpu.xml", self.logs / "pytest-gpu.log",
            timeout=self.args.timeout, env=env, strict_skips=True))
        self.add(result.model_copy(update={"name": "gpu-marked tests", "backend": "all"}))

    def _model(self) -> Path:
        return prepare_model(self.args.model, self.out / "work")

    def variant(self, backend: str, streaming: bool, model_dir: Path) -> None:
        label = f"{backend}/{'stream' if streaming else 'unary'}"
        name = label.replace("/", "-")
        work = self.out / "work" / name
        recipe = write_recipe(work / "recipe", model_dir, streaming=streaming)
        gpu = self.env.gpu_key or ""
        if backend == "engine":
            say(f"{label}: building the engine with the real trtllm-build (minutes); log {self.logs / f'compile-{name}.log'}")
            built = self.step("compile (real trtllm-build)", label, lambda: build_engine_repository(
                recipe, gpu, work / "out", self.logs / f"compile-{name}.log", cache=self.out / "cache",
                timeout=self.args.timeout))
        else:
            built = self.step("render LLM-API repository", label, lambda: render_llmapi(
                recipe, gpu, work / "repository", model_dir))
        if built.status != "passed":
            self.skip("serve + client contract", label, f"nothing to serve: {built.name} failed")
            return
        repo = Path(built.data["repository"])
        self.step("lint", label, lambda: lint(repo, self.logs / f"lint-{name}.log"))
        self.serve(label, repo, engine=backend == "engine")

    def serve(self, label: str, repo: Path, *, engine: bool) -> None:
        from trtbuild.repository.server import TritonInstall, TritonServer

        log = self.logs / f"tritonserver-{label.replace('/', '-')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        servers: list[Any] = []

        def start() -> tuple[str, str, dict[str, Any]]:
            servers.append(TritonServer(repo, install=TritonInstall(binary=Path(self.env.tritonserver or "")),
                                        log_path=log))
            return self._start(servers[0], log)

        try:
            started = self.step("serve (real tritonserver)", label, start)
            server = servers[0] if servers else None
            if started.status != "passed" or server is None:
                self.skip("client-contract suite", label, "the server did not start")
                return
            models_dir = repo / "models" if (repo / "models").is_dir() else repo
            models = sorted(p.parent.name for p in models_dir.glob("*/config.pbtxt"))
            self.step("loaded models and config", label, lambda: check_loaded(server.http_url, models, engine=engine))
            if not (ROOT / CONTRACT_SUITE).is_dir():
                self.skip("client-contract suite", label, f"this checkout has no {CONTRACT_SUITE}")
                return
            name = label.replace("/", "-")
            say(f"{label}: client-contract suite ... (log {self.logs / f'pytest-contract-{name}.log'})")
            args = [CONTRACT_SUITE, f"--contract-url=grpc={server.grpc_url},http={server.http_url}",
                    f"--contract-tokenizer={repo / 'tokenizer'}"]
            deselected = {test: f"the repository has no {' / '.join(sorted(set(needs) - set(models)))} model"
                          for test, needs in MODEL_TESTS.items() if not set(needs) <= set(models)}
            args += [f"--deselect={test}" for test in deselected]
            result = timed("client-contract suite", label, lambda: run_pytest(
                args, self.out / f"junit-contract-{name}.xml", self.logs / f"pytest-contract-{name}.log",
                timeout=self.args.timeout))
            self.add(result.model_copy(update={"name": "client-contract suite", "backend": label,
                                               "data": {"deselected": deselected}}))
        finally:
            for running in servers:
                running.stop()

    def _start(self, server: Any, log: Path) -> tuple[str, str, dict[str, Any]]:
        try:
            server.start(timeout=self.args.load_timeout)
        except TrtbuildError as exc:
            tail = getattr(exc, "log_tail", "") or ""
            return "failed", f"{exc} {tail[-600:]}", {"log": str(log)}
        return "passed", f"grpc {server.grpc_url}, http {server.http_url}", {"log": str(log)}


def main(argv: Sequence[str] | None = None, *, probe: Callable[..., Environment] = probe_environment) -> int:
    args = parser().parse_args(argv)
    try:
        if args.gpu:
            from trtbuild.catalog.gpus import get_gpu

            args.gpu = get_gpu(args.gpu).key
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    out = Path(args.out).absolute()
    started = _now()
    say("checking the environment (GPU, TensorRT-LLM, tritonserver and its backends) ...")
    env = probe(requested_gpu=args.gpu)
    for c in env.checks:
        say(f"  {'ok     ' if c.ok else 'MISSING'} {c.label}: {c.found if c.ok else c.missing}")
    message = ""
    check = Check(args, env, out)
    if any(env.missing_for(b) for b in backends):
        message = missing_message(env, backends)
        for b in backends:
            check.skip("everything", b, "environment incomplete: " + "; ".join(c.label for c in env.missing_for(b)))
    elif args.check_env:
        message = "environment complete (--check-env: nothing was built or served)"
    else:
        try:
            check.run(backends)
        except KeyboardInterrupt:
            message = "interrupted: the report lists the steps that ran"
    report = Report(started=started, finished=_now(), gpu=env.gpu_key, model=args.model, backends=backends,
                    environment=env, steps=tuple(check.steps), message=message)
    env_ok = not any(env.missing_for(b) for b in backends)
    ok = env_ok if args.check_env else report.ok
    json_path, md_path = write_report(report, out)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    if message:
        print(message, file=sys.stderr)
    failed = [s for s in report.steps if s.status == "failed"]
    if not env_ok:
        outcome = "NOT RUN (exit 4): the environment is incomplete"
    elif ok:
        outcome = f"PASSED: {len(report.steps)} steps, none failed"
    else:
        outcome = f"FAILED (exit 4): {len(failed)} of {len(report.steps)} steps failed"
    say(f"{outcome}; report {md_path} (JSON: {json_path})")
    return EXIT_OK if ok else EXIT_FAILED
