"""`trtbuild lint REPO`, `trtbuild serve REPO`, `trtbuild smoke REPO --prompt TEXT`: the Triton repository."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args
from trtbuild.errors import RepositoryError, UsageError


def _repo(path: str) -> Path:
    repo = Path(path)
    if not repo.is_dir():
        raise UsageError(f"{repo}: no such directory")
    return repo


# ---------------------------------------------------------------------------------------------- lint
def cmd_lint(args: Args) -> int:
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


def cmd_serve(args: Args) -> int:
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
def _prompt(repo: Path, manifest: Any, args: Args) -> tuple[str, str | None, bool]:
    """(text_input, system_prompt input, chat template used)."""
    from trtbuild.chat_template import chat_prompt

    if not args.raw:
        templated = chat_prompt(repo / manifest.tokenizer.path, args.prompt, args.system_prompt)
        if templated is not None:
            return templated, None, True
    return args.prompt, args.system_prompt, False


def cmd_smoke(args: Args) -> int:
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
