"""Lint rules of an LLM-API repository (run by trtbuild.repository.lint when `1/model.yaml` is there).

    llmapi.model_yaml      models/tensorrt_llm_bls/1/model.yaml parses as a mapping with `model` and `tokenizer`
    llmapi.llm_args        every LLM key is an argument LLM(...) accepts with the PyTorch backend, with a value of
                           the type / choice / range TensorRT-LLM's pydantic args take (the llmapi_args fixture)
    llmapi.triton_config   `triton_config` has only the keys NVIDIA's llmapi model reads, and agrees with
                           config.pbtxt (max_batch_size, decoupled)
    llmapi.max_num_tokens  (warning) without chunked prefill, prompts up to max_input_len must fit
                           max_num_tokens: the LLM API refuses longer ones
    llmapi.paths           a relative `model` / `tokenizer` path names files in the repository
"""

from __future__ import annotations

from typing import Any

import yaml

from trtbuild.contracts.llmapi import check_llm_kwargs, triton_model
from trtbuild.repository.lint import Finding, RepoView
from trtbuild.repository.manifest import MODELS_DIR

MODEL = "tensorrt_llm_bls"
MODEL_YAML = f"{MODELS_DIR}/{MODEL}/1/model.yaml"
EXTRA_TRITON_KEYS = ("cancellation_check_period_ms",)
"""Read by NVIDIA's model.py (default 100) although its 1.2 model.yaml does not list it."""


def _load(view: RepoView, out: list[Finding]) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(view.texts[MODEL_YAML])
    except yaml.YAMLError as exc:
        out.append(Finding("llmapi.model_yaml", MODEL_YAML, f"not YAML: {exc}"))
        return None
    if not isinstance(data, dict):
        out.append(Finding("llmapi.model_yaml", MODEL_YAML, "must be a mapping of LLM(...) arguments"))
        return None
    for key in ("model", "tokenizer"):
        if not isinstance(data.get(key), str) or not data[key]:
            out.append(Finding("llmapi.model_yaml", MODEL_YAML, f"{key}: a path is required"))
    return data


def llmapi_lint(view: RepoView, configs: dict[str, Any]) -> list[Finding]:
    """The llmapi.* rules; ``configs`` are the parsed config.pbtxt files (model name → ModelConfig)."""
    out: list[Finding] = []
    if MODEL_YAML not in view.texts:
        return out
    data = _load(view, out)
    if data is None:
        return out
    llm = {k: v for k, v in data.items() if k != "triton_config"}
    for problem in check_llm_kwargs(llm):
        out.append(Finding("llmapi.llm_args", MODEL_YAML, f"LLM(...) would refuse {problem}"))
    known = set(triton_model()["model_yaml"]["triton_config_keys"]) | set(EXTRA_TRITON_KEYS)
    triton = data.get("triton_config") or {}
    if not isinstance(triton, dict):
        out.append(Finding("llmapi.triton_config", MODEL_YAML, "triton_config must be a mapping"))
        triton = {}
    for key in sorted(set(triton) - known):
        out.append(Finding("llmapi.triton_config", MODEL_YAML, f"triton_config.{key}: NVIDIA's llmapi model reads "
                           f"only {', '.join(sorted(known))}"))
    cfg = configs.get(MODEL)
    if cfg is not None:
        decoupled = bool(cfg.model_transaction_policy.decoupled)
        if "max_batch_size" in triton and triton["max_batch_size"] != cfg.max_batch_size:
            out.append(Finding("llmapi.triton_config", MODEL_YAML, f"triton_config.max_batch_size "
                               f"{triton['max_batch_size']} but config.pbtxt says {cfg.max_batch_size}"))
        if "decoupled" in triton and bool(triton["decoupled"]) != decoupled:
            out.append(Finding("llmapi.triton_config", MODEL_YAML, f"triton_config.decoupled {triton['decoupled']} "
                               f"but config.pbtxt says {str(decoupled).lower()}"))
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        max_input = params.get("max_input_len", "")
        tokens = llm.get("max_num_tokens")
        if max_input.isdigit() and isinstance(tokens, int) and not llm.get("enable_chunked_prefill") \
                and int(max_input) > tokens:
            out.append(Finding("llmapi.max_num_tokens", MODEL_YAML, f"max_input_len {max_input} > max_num_tokens "
                               f"{tokens} without enable_chunked_prefill: the LLM API refuses prompts longer than "
                               "max_num_tokens", "warning"))
    for key in ("model", "tokenizer"):
        path = llm.get(key)
        if isinstance(path, str) and path.startswith("../../"):
            target = path[len("../../"):].rstrip("/") + "/"
            if not any(p.startswith(target) for p in view.present):
                out.append(Finding("llmapi.paths", MODEL_YAML, f"{key} {path} has no files in the repository"))
    return out
