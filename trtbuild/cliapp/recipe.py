"""Commands that read recipes: validate, plan, schema, gpus, init, status, lock."""

from __future__ import annotations

from typing import Annotated

import typer

from trtbuild.cliapp import CACHE_DIR_HELP, QUIET_HELP, Executor
from trtbuild.commands.common import Args

app = typer.Typer(rich_markup_mode="rich")

Gpus = Annotated[list[str] | None, typer.Option(
    "--gpu", metavar="GPU", help="target GPU (repeatable; default: the recipe's gpus:); see `trtbuild gpus`")]
Json = Annotated[bool, typer.Option("--json", help="machine-readable result")]


@app.command("validate", help="check recipe files; exit 0 when all are valid, 3 when not, 2 for a missing file")
def validate(files: Annotated[list[str], typer.Argument(metavar="FILE")], as_json: Json = False) -> int:
    from trtbuild.commands.planning import cmd_validate

    return cmd_validate(files, as_json=as_json)


@app.command("plan", help="show what would be built for a GPU, whether it fits, and why")
def plan(
    file: Annotated[str, typer.Argument(metavar="FILE")],
    gpu: Gpus = None,
    as_json: Annotated[bool, typer.Option("--json", help='machine-readable: {"plans": \\[...], "feasible": ...}')] = False,
    status: Annotated[bool, typer.Option("--status", help="also show each stage's cache key, cached / to build, "
                                         "and why (stat-caches model digests)")] = False,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", metavar="DIR",
                                                     help="with --status: the cache to look in")] = None,
    executor: Annotated[Executor | None, typer.Option("--executor", help="with --status")] = None,
) -> int:
    from trtbuild.commands.planning import cmd_plan

    return cmd_plan(file, gpus=gpu, as_json=as_json, status=status, cache_dir=cache_dir, executor=executor)


@app.command("schema", help="print the recipe JSON Schema")
def schema() -> int:
    from trtbuild.commands.planning import cmd_schema

    return cmd_schema()


@app.command("gpus", help="list the GPU catalog")
def gpus(as_json: Json = False) -> int:
    from trtbuild.commands.planning import cmd_gpus

    return cmd_gpus(as_json=as_json)


@app.command("init", help="write a recipe for a model that plans on each --gpu (and its config.json)")
def init(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="hf://org/name\\[@revision] or a local model directory")],
    gpu: Annotated[list[str], typer.Option("--gpu", metavar="GPU", help="target GPU (repeatable)")],
    out: Annotated[str | None, typer.Option("--out", metavar="FILE",
                                               help="recipe to write (default: ./<name>.yaml)")] = None,
    name: Annotated[str | None, typer.Option("--name", help="recipe name (default: from the model's name)")] = None,
    config: Annotated[str | None, typer.Option("--config", metavar="PATH", help="the model's config.json "
                                                  "(or a directory holding it): no network")] = None,
    max_seq_len: Annotated[int, typer.Option("--max-seq-len", metavar="N", help="longest prompt + output to build "
                                             "for (default 8192, at most the model's context)")] = 8192,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing recipe")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print what was written as JSON")] = False,
) -> int:
    from trtbuild.commands.init import cmd_init

    return cmd_init(Args(source=source, gpu=gpu, out=out, name=name, config=config, max_seq_len=max_seq_len,
                         force=force, json=as_json))


@app.command("status", help="fresh / stale / missing for each recipe × GPU (CI mode)")
def status(
    files: Annotated[list[str], typer.Argument(metavar="RECIPE")],
    gpu: Annotated[list[str] | None, typer.Option("--gpu", metavar="GPU",
                                                     help="GPUs to check (default: each recipe's gpus:)")] = None,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)] = None,
    registry: Annotated[str | None, typer.Option("--registry", metavar="REF", help="oci://host/ns/name: "
                                                    "fresh = published with this fingerprint")] = None,
    executor: Annotated[Executor | None, typer.Option("--executor")] = None,
    plain_http: Annotated[bool, typer.Option("--plain-http", help="registry over HTTP (loopback only)")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="do not verify the registry's TLS certificate")] = False,
    as_json: Json = False,
    github_matrix: Annotated[bool, typer.Option(
        "--github-matrix", help='print {"include": \\[{"recipe": ..., "gpu": ...}]} of the targets that need a '
        "build; invalid or infeasible targets are left out and listed on stderr (exit 0, so one bad target "
        "does not stop the others)")] = False,
) -> int:
    from trtbuild.commands.status import cmd_status
    from trtbuild.errors import UsageError

    if as_json and github_matrix:
        raise UsageError("trtbuild status: --json and --github-matrix cannot be combined")
    return cmd_status(Args(files=files, gpu=gpu, cache_dir=cache_dir, registry=registry, executor=executor,
                           plain_http=plain_http, insecure=insecure, json=as_json, github_matrix=github_matrix))


@app.command("lock", help="pin the model revision, file digests, calibration data and toolchain")
def lock(
    file: Annotated[str, typer.Argument(metavar="FILE")],
    gpu: Annotated[list[str] | None, typer.Option("--gpu", metavar="GPU", help="targets whose toolchain to "
                                                     "record (default: the recipe's gpus:)")] = None,
    out: Annotated[str | None, typer.Option("--out", metavar="LOCK", help="lockfile path (default: "
                                               "FILE's stem + .lock.json)")] = None,
    plain_http: Annotated[bool, typer.Option("--plain-http", help="resolve a loopback image registry over HTTP")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="do not verify the image registry's TLS "
                                           "certificate")] = False,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", metavar="DIR", help=CACHE_DIR_HELP)] = None,
    executor: Annotated[Executor | None, typer.Option("--executor")] = None,
    as_json: Json = False,
    quiet: Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)] = False,
) -> int:
    from trtbuild.commands.lock import cmd_lock

    return cmd_lock(Args(file=file, gpu=gpu, out=out, plain_http=plain_http, insecure=insecure,
                         cache_dir=cache_dir, executor=executor, json=as_json, quiet=quiet))
