"""Commands on what was built: lint, serve, smoke, cache ls|verify|gc, publish, pull."""

from __future__ import annotations

import contextlib
import sys
from typing import Annotated

import typer

from trtbuild.cliapp import CACHE_DIR_HELP, with_help
from trtbuild.commands.common import Args

app = typer.Typer(rich_markup_mode="rich")

Json = Annotated[bool, typer.Option("--json", help="machine-readable result")]
Repo = Annotated[str, typer.Argument(metavar="REPO", help="a generated repository, its models/ dir, or any Triton "
                                     "repository")]
Timeout = Annotated[float, typer.Option("--timeout", metavar="S", help="seconds to wait for the server")]
PlainHttp = Annotated[bool, typer.Option("--plain-http", help="talk HTTP instead of HTTPS (loopback registries "
                                         "only: localhost, 127.0.0.1, ::1)")]
Insecure = Annotated[bool, typer.Option("--insecure", help="do not verify the registry's TLS certificate")]
QuietLines = Annotated[bool, typer.Option("--quiet", help="no progress lines")]
SAMPLING = "Sampling (default: greedy)"


@app.command("lint", **with_help(
    "check a Triton repository; exit 0 when clean, 4 with findings",
    "Parse every config.pbtxt as Triton's ModelConfig and check the repository (placeholders, booleans, KV "
    "reuse, batch limits, decoupled mode, dtypes, ensemble wiring, world size). Each finding names the file "
    "and the rule."))
def lint(repo: Repo, as_json: Annotated[bool, typer.Option("--json", help="machine-readable findings")] = False) -> int:
    from trtbuild.commands.repository import cmd_lint

    return cmd_lint(Args(repo=repo, json=as_json))


@app.command("serve", **with_help(
    "start tritonserver on a generated repository (foreground)",
    "CPU reference repositories run on the tritonserver shipped in nvidia-pytriton; engine repositories need "
    "NVIDIA's TensorRT-LLM Triton container (mpirun for tp x pp > 1). Listens on 127.0.0.1."))
def serve(
    repo: Repo,
    http_port: Annotated[int, typer.Option("--http-port", metavar="N")] = 8000,
    grpc_port: Annotated[int, typer.Option("--grpc-port", metavar="N")] = 8001,
    metrics_port: Annotated[int, typer.Option("--metrics-port", metavar="N")] = 8002,
    log_verbose: Annotated[int, typer.Option("--log-verbose", metavar="N", help="tritonserver --log-verbose "
                                             "level")] = 0,
    timeout: Annotated[float, typer.Option("--timeout", metavar="S", help="seconds to wait for readiness")] = 600.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display while the models load")] = False,
) -> int:
    from trtbuild.commands.repository import cmd_serve

    return cmd_serve(Args(repo=repo, http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port,
                          log_verbose=log_verbose, timeout=timeout, quiet=quiet))


@app.command("smoke", **with_help(
    "send one request to a repository (starting a server if needed); print the text",
    "The prompt goes through the tokenizer's chat template when the repository's tokenizer has one (as chat "
    "clients and Triton's OpenAI frontend send it), with --system-prompt as the system turn; --raw sends it as "
    "it is. Sampling is greedy unless sampling options are given."))
def smoke(
    repo: Repo,
    prompt: Annotated[str, typer.Option("--prompt", help="the user's message (text_input)")],
    system_prompt: Annotated[str | None, typer.Option("--system-prompt", metavar="TEXT", help="system turn (chat "
                                                      "template), else the system_prompt input")] = None,
    raw: Annotated[bool, typer.Option("--raw", help="send --prompt as text_input as it is (no chat "
                                      "template)")] = False,
    max_tokens: Annotated[int, typer.Option("--max-tokens", metavar="N")] = 32,
    temperature: Annotated[float | None, typer.Option("--temperature", metavar="T", rich_help_panel=SAMPLING)] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", metavar="K", rich_help_panel=SAMPLING)] = None,
    top_p: Annotated[float | None, typer.Option("--top-p", metavar="P", rich_help_panel=SAMPLING)] = None,
    seed: Annotated[int | None, typer.Option("--seed", metavar="N", help="random seed (reproducible sampling)",
                                             rich_help_panel=SAMPLING)] = None,
    repetition_penalty: Annotated[float | None, typer.Option("--repetition-penalty", metavar="X",
                                                             rich_help_panel=SAMPLING)] = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", metavar="TEXT", help="stop string (repeatable)",
                                                   rich_help_panel=SAMPLING)] = None,
    model: Annotated[str | None, typer.Option("--model", help="ensemble or tensorrt_llm_bls (default: the first "
                                              "the repository has)")] = None,
    stream: Annotated[bool, typer.Option("--stream", help="stream (needs a decoupled repository)")] = False,
    url: Annotated[str | None, typer.Option("--url", metavar="HOST:PORT", help="gRPC address of a running server "
                                            "(default: start one)")] = None,
    timeout: Timeout = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress display while the server starts")] = False,
) -> int:
    from trtbuild.commands.repository import cmd_smoke

    return cmd_smoke(Args(repo=repo, prompt=prompt, system_prompt=system_prompt, raw=raw, max_tokens=max_tokens,
                          temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                          repetition_penalty=repetition_penalty, stop=stop or None, model=model, stream=stream,
                          url=url, timeout=timeout, json=as_json, quiet=quiet))


# ---------------------------------------------------------------------------------------------- cache
cache = typer.Typer(rich_markup_mode="rich", invoke_without_command=True, **with_help(
    "list, verify and garbage-collect the local artifact cache",
    "The cache directory is --cache-dir, else $TRTBUILD_CACHE_DIR, else the user cache directory."))
app.add_typer(cache, name="cache")
CacheDir = Annotated[str | None, typer.Option("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)]


@cache.callback()
def cache_group(ctx: typer.Context, cache_dir: CacheDir = None) -> None:
    ctx.obj = cache_dir  # `cache --cache-dir DIR ls` as well as `cache ls --cache-dir DIR`
    if ctx.invoked_subcommand is None:  # `trtbuild cache`: which actions there are, on stderr (exit 2)
        with contextlib.redirect_stdout(sys.stderr):
            typer.echo(ctx.get_help(), err=True, nl=False)
        raise typer.Exit(2)


def _cache_dir(ctx: typer.Context, own: str | None) -> str | None:
    return own if own is not None else ctx.obj


@cache.command("ls", help="list cached stage artifacts")
def cache_ls(ctx: typer.Context, cache_dir: CacheDir = None,
             as_json: Annotated[bool, typer.Option("--json", help="machine-readable list")] = False) -> int:
    from trtbuild.commands.cache import cmd_ls

    return cmd_ls(Args(cache_dir=_cache_dir(ctx, cache_dir), json=as_json))


@cache.command("verify", help="re-hash every cached file against its manifest (exit 4 if corrupt)")
def cache_verify(ctx: typer.Context, cache_dir: CacheDir = None,
                 as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
                 remove: Annotated[bool, typer.Option("--remove", help="remove corrupt entries (they will be "
                                                      "rebuilt)")] = False) -> int:
    from trtbuild.commands.cache import cmd_verify

    return cmd_verify(Args(cache_dir=_cache_dir(ctx, cache_dir), json=as_json, remove=remove))


@cache.command("gc", help="remove unused entries and leftovers of interrupted builds")
def cache_gc(
    ctx: typer.Context,
    cache_dir: CacheDir = None,
    older_than: Annotated[str | None, typer.Option("--older-than", metavar="AGE", help="remove entries not used "
                                                   "for AGE (e.g. 30d, 12h)")] = None,
    max_size: Annotated[str | None, typer.Option("--max-size", metavar="SIZE", help="then remove least recently "
                                                 "used entries until the cache holds at most SIZE (e.g. "
                                                 "100GiB)")] = None,
    keep: Annotated[list[str] | None, typer.Option("--keep", metavar="KEY", help="never remove this key (stage "
                                                   "key, or stage/key; repeatable)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only report what would be removed")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable report")] = False,
) -> int:
    from trtbuild.commands.cache import cmd_gc

    return cmd_gc(Args(cache_dir=_cache_dir(ctx, cache_dir), older_than=older_than, max_size=max_size,
                       keep=list(keep or []), dry_run=dry_run, json=as_json))


# -------------------------------------------------------------------------------------- publish / pull
@app.command("publish", **with_help(
    "push a build output directory to an OCI registry",
    "Push DIR (engine files, Triton repository, trtbuild-artifact.json) as one OCI artifact. Blobs first, the "
    "tag last; blobs the registry already has are not uploaded again."))
def publish(
    dir: Annotated[str, typer.Argument(metavar="DIR", help="build output directory")],
    ref: Annotated[str, typer.Argument(metavar="REF", help="oci://host\\[:port]/namespace/name:tag")],
    annotation: Annotated[list[str] | None, typer.Option("--annotation", "-a", metavar="KEY=VALUE",
                                                         help="extra manifest annotation (repeatable)")] = None,
    no_fingerprint_tag: Annotated[bool, typer.Option("--no-fingerprint-tag", help="do not also tag the artifact "
                                                     "fp-<fingerprint>")] = False,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", metavar="DIR", help="cache directory (stat "
                                                  "cache of file digests)")] = None,
    as_json: Json = False,
    plain_http: PlainHttp = False,
    insecure: Insecure = False,
    quiet: QuietLines = False,
) -> int:
    from trtbuild.commands.publish import cmd_publish

    return cmd_publish(Args(dir=dir, ref=ref, annotation=list(annotation or []),
                            no_fingerprint_tag=no_fingerprint_tag, cache_dir=cache_dir, json=as_json,
                            plain_http=plain_http, insecure=insecure, quiet=quiet))


@app.command("pull", **with_help(
    "pull and verify a published artifact into a directory",
    "Download every layer of REF, verify its digest, extract safely into DIR (which must be absent or empty "
    "unless --force)."))
def pull(
    ref: Annotated[str, typer.Argument(metavar="REF", help="oci://host\\[:port]/namespace/name:tag or "
                                       "...@sha256:...")],
    dir: Annotated[str, typer.Argument(metavar="DIR", help="target directory")],
    force: Annotated[bool, typer.Option("--force", help="replace DIR if it exists and is not empty")] = False,
    as_json: Json = False,
    plain_http: PlainHttp = False,
    insecure: Insecure = False,
    quiet: QuietLines = False,
) -> int:
    from trtbuild.commands.publish import cmd_pull

    return cmd_pull(Args(ref=ref, dir=dir, force=force, json=as_json, plain_http=plain_http, insecure=insecure,
                         quiet=quiet))
