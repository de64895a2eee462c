"""TEST DOUBLE of tensorrt_llm.llmapi (see tensorrt_llm/__init__.py): argument checking from the contract
fixtures, generation by ._engine (transformers on CPU)."""

from __future__ import annotations

import enum
import os
import sys

from trtbuild.contracts.llmapi import (
    check_config,
    check_llm_kwargs,
    check_sampling_kwargs,
    enum_values,
    llm_fields,
)

from ._engine import Engine, RequestOutput

CapacitySchedulerPolicy = enum.Enum("CapacitySchedulerPolicy", enum_values("CapacitySchedulerPolicy"), type=str)
ContextChunkingPolicy = enum.Enum("ContextChunkingPolicy", enum_values("ContextChunkingPolicy"), type=str)


class _Config:
    """A pydantic-like config object of llm_args.py: known fields only, values checked by the fixture."""

    NAME = ""

    def __init__(self, **kwargs):
        plain = {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in kwargs.items()}
        problems = check_config(self.NAME, plain)
        if problems:
            raise ValueError(f"{len(problems)} validation error(s) for {self.NAME}: " + "; ".join(problems))
        self.fields = plain

    def as_dict(self):
        return dict(self.fields)


class KvCacheConfig(_Config):
    NAME = "KvCacheConfig"


class SchedulerConfig(_Config):
    NAME = "SchedulerConfig"


class SamplingParams:
    def __init__(self, **kwargs):
        unknown = [k for k in kwargs if k not in _SAMPLING_FIELDS]
        if unknown:
            raise TypeError(f"SamplingParams.__init__() got an unexpected keyword argument '{unknown[0]}'")
        tensors = {k: v for k, v in kwargs.items() if "torch.Tensor" in str(_SAMPLING_FIELDS[k].get("type"))}
        problems = check_sampling_kwargs({k: v for k, v in kwargs.items() if k not in tensors})
        problems += [f"{k}: expected a torch.Tensor, got {type(v).__name__}" for k, v in tensors.items()
                     if v is not None and type(v).__module__ != "torch" and type(v).__name__ != "Tensor"]
        if problems:
            raise ValueError("; ".join(problems))
        for name, spec in _SAMPLING_FIELDS.items():
            setattr(self, name, kwargs.get(name, spec.get("default")))
        if self.pad_id is None:
            self.pad_id = self.end_id
        self.best_of = self.best_of or self.n


_SAMPLING_FIELDS = {}


def _load_sampling_fields():
    from trtbuild.contracts.llmapi import sampling_fields

    _SAMPLING_FIELDS.update(sampling_fields())


_load_sampling_fields()


class LLM:
    def __init__(self, model, tokenizer=None, **kwargs):
        valid = set(llm_fields()) | {"_mpi_session", "backend"}
        for key in kwargs:
            if key not in valid:
                raise ValueError(f"{self.__class__.__name__} got invalid argument: {key}")
        plain = {k: (v.as_dict() if isinstance(v, _Config) else v) for k, v in kwargs.items()}
        problems = check_llm_kwargs({"model": model, "tokenizer": tokenizer, **plain})
        if problems:
            raise ValueError("Failed to parse the arguments for the LLM constructor: " + "; ".join(problems))
        if not os.path.isdir(str(model)):
            raise ValueError(f"model {model} is not a directory (the double loads local checkpoints only)")
        self.args = plain
        print(f"[tensorrt_llm TEST DOUBLE] LLM args: {sorted(plain)}", file=sys.stderr, flush=True)
        self._engine = Engine(str(model), max_seq_len=plain.get("max_seq_len"),
                              max_num_tokens=plain.get("max_num_tokens"),
                              chunked=bool(plain.get("enable_chunked_prefill")))

    def generate_async(self, inputs, sampling_params=None, lora_request=None, prompt_adapter_request=None,
                       streaming=False, kv_cache_retention_config=None, disaggregated_params=None,
                       _postproc_params=None, scheduling_params=None, cache_salt=None) -> RequestOutput:
        if self._engine is None:
            raise RuntimeError("LLM is shutting down")
        if not (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            raise TypeError("the double takes one prompt of token ids (a list of int)")
        if not isinstance(sampling_params, SamplingParams):
            raise TypeError(f"The sampling_params must be type SamplingParams or None, got {type(sampling_params)}")
        if kv_cache_retention_config is not None:
            print(f"[tensorrt_llm TEST DOUBLE] retention {kv_cache_retention_config!r}", file=sys.stderr, flush=True)
        return self._engine.submit(list(inputs), sampling_params, streaming)

    def shutdown(self):
        if self._engine is not None:
            self._engine.stop()
            self._engine = None


__all__ = ["LLM", "CapacitySchedulerPolicy", "ContextChunkingPolicy", "KvCacheConfig", "RequestOutput",
           "SamplingParams", "SchedulerConfig"]
