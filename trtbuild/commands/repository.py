"""`trtbuild lint REPO`, `trtbuild serve REPO`, `trtbuild smoke REPO --prompt TEXT`: the Triton repository."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from trtbuild.errors import RepositoryError, UsageError


def register(sub: Any) -> None:
    p = sub.add_parser("lint", help="check a Triton repository; exit 0 when clean, 4 with findings",
                       description="Parse every config.pbtxt as Triton's ModelConfig and check the repository "
                                   "(placeholders, booleans, KV reuse, batch limits, decoupled mode, dtypes, "
                                   "ensemble wiring, world size). Each finding names the file and the rule.")
    p.add_argument("repo", metavar="REPO", help="a generated repository, its models/ dir, or any Triton repository")
    p.add_argument("--json", action="store_true", help="machine-readable findings")
    p.set_defaults(func=cmd_lint)

    p = sub.add_parser("serve", help="start tritonserver on a generated repository (foreground)",
                       description="CPU reference repositories run on the tritonserver shipped in nvidia-pytriton; "
                                   "engine repositories need NVIDIA's TensorRT-LLM Triton container (mpirun for "
                                   "tp x pp > 1). Listens on 127.0.0.1.")
    _ports(p, defaults=(8000, 8001, 8002))
    p.add_argument("--log-verbose", type=int, default=0, metavar="N", help="tritonserver --log-verbose level")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="seconds to wait for readiness")
    p.add_argument("--quiet", action="store_true", help="no progress display while the models load")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("smoke", help="send one request to a repository (starting a server if needed); print the text",
                       description="The prompt goes through the tokenizer's chat template when the repository's "
                                   "tokenizer has one (as chat clients and Triton's OpenAI frontend send it), with "
                                   "--system-prompt as the system turn; --raw sends it as it is. Sampling is greedy "
                                   "unless sampling options are given.")
    p.add_argument("repo", metavar="REPO")
    p.add_argument("--prompt", required=True, help="the user's message (text_input)")
    p.add_argument("--system-prompt", metavar="TEXT", help="system turn (chat template), else the system_prompt input")
    p.add_argument("--raw", action="store_true", help="send --prompt as text_input as it is (no chat template)")
    p.add_argument("--max-tokens", type=int, default=32, metavar="N")
    sampling = p.add_argument_group("sampling (default: greedy)")
    sampling.add_argument("--temperature", type=float, metavar="T")
    sampling.add_argument("--top-k", type=int, metavar="K")
    sampling.add_argument("--top-p", type=float, metavar="P")
    sampling.add_argument("--seed", type=int, metavar="N", help="random seed (reproducible sampling)")
    sampling.add_argument("--repetition-penalty", type=float, metavar="X")
    sampling.add_argument("--stop", action="append", metavar="TEXT", help="stop string (repeatable)")
    p.add_argument("--model", default=None, help="ensemble or tensorrt_llm_bls (default: the first the repository has)")
    p.add_argument("--stream", action="store_true", help="stream (needs a decoupled repository)")
    p.add_argument("--url", metavar="HOST:PORT", help="gRPC address of a running server (default: start one)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="seconds to wait for the server")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress display while the server starts")
    p.set_defaults(func=cmd_smoke)


def _ports(p: argparse.ArgumentParser, defaults: tuple[int | None, int | None, int | None]) -> None:
    p.add_argument("repo", metavar="REPO")
    p.add_argument("--http-port", type=int, default=defaults[0], metavar="N")
    p.add_argument("--grpc-port", type=int, default=defaults[1], metavar="N")
    p.add_argument("--metrics-port", type=int, default=defaults[2], metavar="N")


def _repo(path: str) -> Path:
    repo = Path(path)
    if not repo.is_dir():
        raise UsageError(f"{repo}: no such directory")
    return repo


# ---------------------------------------------------------------------------------------------- lint
def cmd_lint(args: argparse.Namespace) -> int:
    from trtbuild.repository.lint import lint_repository

    findings = lint_repository(_repo(args.repo))
    errors = [f for f in findings if f.severity == "error"]
    if args.json:
        json.dump({"repo": args.repo, "clean": not errors,
                   "findings": [{"rule": f.rule, "file": f.file, "severity": f.severity, "message": f.message}
                                for f in findings]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for f in findings:
            print(f.format(), file=sys.stderr if f.severity == "error" else sys.stdout)
        print(f"{args.repo}: {len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    return 4 if errors else 0


# --------------------------------------------------------------------------------------------- serve
def _backend(manifest: Any) -> Any:
    from trtbuild.backends import backend_of_manifest

    return backend_of_manifest(manifest)


def _python_env(repo: Path) -> Path | None:
    """The Python environment the repository's backend serves in (vLLM: .venv-vllm); StageError naming the
    install command when it is missing. None for a plain Triton repository or this environment."""
    from trtbuild.repository.manifest import MANIFEST_NAME, read_manifest

    if not (repo / MANIFEST_NAME).is_file():
        return None
    env: Path | None = _backend(read_manifest(repo)).serve_env()
    return env


def start_server(server: Any, timeout: float, progress: Any) -> None:
    """Start ``server`` showing which models are ready while they load (minutes for large models); a
    model that fails to load stops it with the server log's relevant lines (RepositoryError, exit 4)."""
    kind = _backend(server.manifest).label
    with progress.waiting(f"start tritonserver ({kind}, {len(server.manifest.models)} models)",
                          status=server.loading_status):
        server.start(timeout=timeout)


def cmd_serve(args: argparse.Namespace) -> int:
    from trtbuild.progress import Progress
    from trtbuild.repository.server import TritonServer

    repo = _repo(args.repo)
    server = TritonServer(repo, http_port=args.http_port, grpc_port=args.grpc_port,
                          metrics_port=args.metrics_port, log_verbose=args.log_verbose, python_env=_python_env(repo))
    kind = "CPU REFERENCE (not an engine)" if server.manifest.reference else _backend(server.manifest).label
    print(f"starting tritonserver on {args.repo} [{kind}]; log: {server.log_path}", flush=True)
    stop = {"now": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["now"] = True

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        start_server(server, args.timeout, Progress(enabled=not args.quiet))
        print(f"ready: HTTP {server.http_url}  gRPC {server.grpc_url}  models: "
              f"{', '.join(server.manifest.client_models)}  (Ctrl-C stops)", flush=True)
        while not stop["now"]:
            if server.process is None or server.process.poll() is not None:
                raise RepositoryError("tritonserver exited", log_tail=server.log_tail())
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    return 0


# --------------------------------------------------------------------------------------------- smoke
def _prompt(repo: Path, manifest: Any, args: argparse.Namespace) -> tuple[str, str | None, bool]:
    """(text_input, system_prompt input, chat template used)."""
    from trtbuild.chat_template import chat_prompt

    if not args.raw:
        templated = chat_prompt(repo / manifest.tokenizer.path, args.prompt, args.system_prompt)
        if templated is not None:
            return templated, None, True
    return args.prompt, args.system_prompt, False


def cmd_smoke(args: argparse.Namespace) -> int:
    from trtbuild.progress import Progress
    from trtbuild.repository.client import build_inputs, generate_grpc
    from trtbuild.repository.manifest import read_manifest
    from trtbuild.repository.server import TritonServer

    repo = _repo(args.repo)
    manifest = read_manifest(repo)
    model = args.model or manifest.client_models[0]
    if model not in manifest.client_models:
        raise UsageError(f"--model {model}: the repository serves {', '.join(manifest.client_models)}")
    if args.stream and not manifest.decoupled:
        raise UsageError("--stream needs a decoupled repository (recipe runtime.streaming: true)")
    text, system, templated = _prompt(repo, manifest, args)
    sampling = {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p,
                "seed": args.seed, "repetition_penalty": args.repetition_penalty,
                "stop_words": list(args.stop) if args.stop else None}
    inputs = build_inputs(text, args.max_tokens, stream=args.stream, system_prompt=system,
                          return_num_input_tokens=True, return_num_output_tokens=True, **sampling)
    progress = Progress(enabled=not args.quiet and not args.json)
    server = None
    try:
        url = args.url
        if url is None:
            server = TritonServer(repo, python_env=_python_env(repo))
            start_server(server, args.timeout, progress)
            url = server.grpc_url
        with progress.waiting(f"{model}: generate up to {args.max_tokens} tokens"):
            result = generate_grpc(url, model, inputs, timeout=args.timeout)
    finally:
        if server is not None:
            server.stop()
    if result.error:
        raise RepositoryError(f"{model}: request failed: {result.error}")
    if args.json:
        json.dump({"model": model, "text": result.text, "chunks": len(result.chunks),
                   "num_input_tokens": result.num_input_tokens, "num_output_tokens": result.num_output_tokens,
                   "chat_template": templated, "text_input": text,
                   "reference": manifest.reference}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        print(result.text)
    return 0
