"""Regenerate the contract fixtures from NVIDIA's sources.

    python -m trtbuild.contracts.regenerate --source ~/src/TensorRT-LLM --commit <sha>      # a checkout
    python -m trtbuild.contracts.regenerate --shelf /work/upstream/NVIDIA/TensorRT-LLM --check

``--source DIR --commit SHA``: DIR is a checkout (or any directory mirroring upstream paths) at SHA; every
fixture is rebuilt from it and records SHA. ``--shelf ROOT``: a folder of saved upstream files laid out as
``ROOT/<version>/<path>``; each file is read at the version the stored fixture records (how the shipped
fixtures were made, from files read at different commits). ``--check`` compares instead of writing and
exits 1 on any difference (the test suite runs it when a shelf is present). ``--out DIR`` writes elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trtbuild.contracts import DEFAULT_RELEASE, load_fixture, release_dir
from trtbuild.contracts.parse_backend import backend_parameters, model_tensors, request_errors, type_parsers
from trtbuild.contracts.parse_build import build_flags, plugin_sm_refusals
from trtbuild.contracts.parse_llmapi import llm_args, sampling_params, triton_model
from trtbuild.contracts.parse_quant import builder_refusals
from trtbuild.contracts.parse_retention import priority_constants, tensor_rules, validation

REPO = "NVIDIA/TensorRT-LLM"
GENERATED_BY = "python -m trtbuild.contracts.regenerate"
SRC = "triton_backend/inflight_batcher_llm/src/"
MIS, MS, UTILS = SRC + "model_instance_state.cc", SRC + "model_state.cc", SRC + "utils.cc"
PBTXT = "triton_backend/all_models/inflight_batcher_llm/tensorrt_llm/config.pbtxt"
BUILD, PLUGIN = "tensorrt_llm/commands/build.py", "tensorrt_llm/plugin/plugin.py"
BUILDER, MODE = "tensorrt_llm/builder.py", "tensorrt_llm/quantization/mode.py"
LLM_ARGS, SAMPLING = "tensorrt_llm/llmapi/llm_args.py", "tensorrt_llm/sampling_params.py"
LLMAPI_PBTXT = "triton_backend/all_models/llmapi/tensorrt_llm/config.pbtxt"
LLMAPI_YAML = "triton_backend/all_models/llmapi/tensorrt_llm/1/model.yaml"
RETENTION, EXECUTOR_H = "cpp/tensorrt_llm/executor/kvCacheRetentionConfig.cpp", "cpp/include/tensorrt_llm/executor/executor.h"

Texts = dict[str, str]


@dataclass(frozen=True)
class Spec:
    about: str
    paths: tuple[str, ...]
    make: Callable[[Texts], dict[str, Any]]


def _backend(t: Texts) -> dict[str, Any]:
    return {**backend_parameters(t[MIS], t[MS]), "type_parsers": type_parsers(t[MS])}


def _tensors(t: Texts) -> dict[str, Any]:
    return {**model_tensors(t[PBTXT]), "request_errors": request_errors(t[UTILS])}


def _flags(t: Texts) -> dict[str, Any]:
    return build_flags(t[BUILD], t[PLUGIN])


def _refusals(t: Texts) -> dict[str, Any]:
    return {**builder_refusals(t[BUILDER], t[MODE]), "plugin_sm_refusals": plugin_sm_refusals(t[PLUGIN])}


def _retention(t: Texts) -> dict[str, Any]:
    return {**validation(t[RETENTION]), "priorities": priority_constants(t[EXECUTOR_H]),
            "tensors": tensor_rules(t[UTILS])}


def _llmapi_args(t: Texts) -> dict[str, Any]:
    return llm_args(t[LLM_ARGS])


def _llmapi_sampling(t: Texts) -> dict[str, Any]:
    return sampling_params(t[SAMPLING])


def _llmapi_model(t: Texts) -> dict[str, Any]:
    return triton_model(t[LLMAPI_PBTXT], t[LLMAPI_YAML])


SPECS: dict[str, Spec] = {
    "backend_parameters": Spec(
        "Every config.pbtxt parameter the TensorRT-LLM C++ backend reads: type, required (read outside a try: a "
        "missing key fails the model load) or defaulted, the default, the values it accepts and what an invalid "
        "value does.", (MIS, MS), _backend),
    "request_tensors": Spec(
        "Inputs and outputs of the tensorrt_llm model as NVIDIA's template declares them, the parameter keys the "
        "template carries, and the request errors utils.cc throws.", (PBTXT, UTILS), _tensors),
    "trtllm_build_flags": Spec(
        "Every trtllm-build flag (commands/build.py parse_arguments + plugin/plugin.py add_plugin_argument): type, "
        "choices, aliases, deprecations; flags removed before this release; combinations main()/build_model() "
        "refuse.", (BUILD, PLUGIN), _flags),
    "builder_refusals": Spec(
        "What tensorrt_llm.builder.build() refuses per SM and quantization (QuantMode flags per QuantAlgo and the "
        "predicates, from quantization/mode.py), the gemm-plugin rewrite for NVFP4, and plugins PluginConfig."
        "validate() refuses on an exact SM.", (BUILDER, MODE, PLUGIN), _refusals),
    "kv_retention": Spec(
        "KvCacheRetentionConfig validation (sort key, checks in order, messages, priority bounds, the source's "
        "own examples) and how the backend reads the retention_* tensors.", (RETENTION, EXECUTOR_H, UTILS),
        _retention),
    "llmapi_args": Spec(
        "The keyword arguments LLM(...) accepts with the PyTorch backend (TorchLlmArgs over BaseLlmArgs: "
        "annotation, default, bounds, status), every config class (KvCacheConfig, SchedulerConfig, ...) and "
        "enum (CapacitySchedulerPolicy, ContextChunkingPolicy, ...) of llmapi/llm_args.py.", (LLM_ARGS,),
        _llmapi_args),
    "llmapi_sampling_params": Spec(
        "The keyword arguments SamplingParams(...) accepts (a kw_only dataclass), their defaults, and the "
        "checks its _validate() makes.", (SAMPLING,), _llmapi_sampling),
    "llmapi_triton_model": Spec(
        "NVIDIA's Triton model around tensorrt_llm.LLM (triton_backend/all_models/llmapi): the inputs and "
        "outputs of its config.pbtxt and the keys of its model.yaml (triton_config for Triton, the rest "
        "for LLM(...)).", (LLMAPI_PBTXT, LLMAPI_YAML), _llmapi_model),
}


class SourceTree:
    """Where to read each upstream path, and which commit/version to record for it."""

    def __init__(self, *, checkout: Path | None = None, commit: str | None = None, shelf: Path | None = None,
                 release: str = DEFAULT_RELEASE):
        self.checkout, self.commit, self.shelf, self.release = checkout, commit, shelf, release

    def stored_source(self, name: str, path: str) -> dict[str, Any]:
        try:
            fixture = load_fixture(name, self.release)
        except FileNotFoundError:
            return {}
        return next((s.model_dump(exclude_none=True) for s in fixture.sources if s.path == path), {})

    def locate(self, name: str, path: str) -> tuple[Path, dict[str, Any]]:
        if self.checkout is not None:
            return self.checkout / path, {"repo": REPO, "path": path, "commit": self.commit, "version": self.commit}
        assert self.shelf is not None
        record = self.stored_source(name, path)
        version = record.get("version") or record.get("commit")
        if not version:
            raise FileNotFoundError(f"{name}: the stored fixture records no version for {path}; use --source")
        return self.shelf / version / path, {"repo": REPO, **record, "path": path}


def regenerate(name: str, tree: SourceTree) -> dict[str, Any]:
    """The fixture ``name`` rebuilt from ``tree`` (FileNotFoundError when a source file is missing)."""
    spec = SPECS[name]
    texts: Texts = {}
    sources = []
    for path in spec.paths:
        file, record = tree.locate(name, path)
        if not file.is_file():
            raise FileNotFoundError(f"{name}: {file} is missing")
        texts[path] = file.read_text(encoding="utf-8")
        sources.append(record)
    return {"contract": name, "release": tree.release, "about": spec.about, "sources": sources,
            "generated_by": GENERATED_BY, "data": spec.make(texts)}


def dump(fixture: dict[str, Any]) -> str:
    return json.dumps(fixture, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trtbuild.contracts.regenerate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--source", type=Path, help="a checkout of NVIDIA/TensorRT-LLM (needs --commit)")
    where.add_argument("--shelf", type=Path, help="saved upstream files as SHELF/<version>/<path>")
    parser.add_argument("--commit", help="the commit --source is checked out at (recorded in every fixture)")
    parser.add_argument("--release", default=DEFAULT_RELEASE, help="fixture directory (default %(default)s)")
    parser.add_argument("--only", action="append", choices=sorted(SPECS), help="regenerate only these fixtures")
    parser.add_argument("--out", type=Path, help="write here instead of the package's release directory")
    parser.add_argument("--check", action="store_true", help="compare with the stored fixtures; write nothing")
    args = parser.parse_args(argv)
    if args.source is not None and not args.commit:
        parser.error("--source needs --commit (the fixtures record where their facts came from)")
    tree = SourceTree(checkout=args.source, commit=args.commit, shelf=args.shelf, release=args.release)
    out_dir = args.out or release_dir(args.release)
    status = 0
    for name in args.only or sorted(SPECS):
        try:
            text = dump(regenerate(name, tree))
        except (FileNotFoundError, ValueError, SyntaxError) as exc:
            print(f"{name}: cannot regenerate: {exc}", file=sys.stderr)
            status = 1
            continue
        target = out_dir / f"{name}.json"
        if args.check:
            same = target.is_file() and target.read_text(encoding="utf-8") == text
            print(f"{name}: {'matches' if same else 'DIFFERS from'} {target}")
            status |= 0 if same else 1
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".json.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)
            print(f"{name}: wrote {target}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
