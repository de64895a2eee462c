"""The LLM-API backend against the contract fixtures derived from TensorRT-LLM 1.2's source.

Every `LLM(...)` keyword the settings mapping emits, every key of the rendered model.yaml, every
`SamplingParams(...)` keyword the served model sets and the KvCacheRetentionConfig it builds are checked
against trtbuild/contracts/trtllm_1_2/llmapi_*.json; the parsers that made those fixtures are checked on
snippets written here (no upstream code is committed)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from trtbuild.contracts import load_fixture
from trtbuild.contracts.llmapi import (
    check_llm_kwargs,
    check_sampling_kwargs,
    config_class,
    enum_values,
    llm_fields,
    retention_init,
    sampling_fields,
)
from trtbuild.contracts.parse_llmapi import llm_args, sampling_params, triton_model
from trtbuild.repository.render import TEMPLATES_DIR

MODEL_PY = TEMPLATES_DIR / "llmapi" / "model.py"

ARGS_SNIPPET = textwrap.dedent('''
    class Color(StrEnum):
        RED = "RED"
        BLUE = "BLUE"

    class PaintConfig(StrictBaseModel):
        color: Color = Field(default=Color.RED, description="c")
        coats: NonNegativeInt = Field(default=1)
        share: Optional[float] = Field(default=0.5, ge=0, le=1, status="beta")

    class BaseLlmArgs(StrictBaseModel):
        model_config = ConfigDict(extra="forbid")
        model: Union[str, Path] = Field(description="where")
        paint: PaintConfig = Field(default_factory=PaintConfig)
        session: Optional[object] = Field(default=None, alias="_session")
        _private: int = PrivateAttr(default=0)

    class TorchLlmArgs(BaseLlmArgs):
        mode: Literal['fast', 'slow'] = Field(default='fast')
        backend: Literal["pytorch"] = Field(default="pytorch", status="deprecated")
''')


def test_llm_args_parser_reads_fields_inheritance_enums_and_bounds():
    data = llm_args(ARGS_SNIPPET)
    fields = data["llm_fields"]
    assert list(fields) == ["model", "paint", "session", "mode", "backend"]
    assert fields["model"] == {"type": "Union[str, Path]", "required": True}
    assert fields["paint"] == {"type": "PaintConfig", "default_factory": "PaintConfig"}
    assert fields["mode"]["default"] == "fast" and fields["backend"]["status"] == "deprecated"
    assert data["llm_aliases"] == ["_session"]
    assert data["enums"]["Color"] == {"RED": "RED", "BLUE": "BLUE"}
    share = data["classes"]["PaintConfig"]["fields"]["share"]
    assert share == {"type": "Optional[float]", "default": 0.5, "ge": 0, "le": 1, "status": "beta"}
    assert data["classes"]["PaintConfig"]["fields"]["color"]["default_expr"] == "Color.RED"
    with pytest.raises(ValueError, match="TorchLlmArgs"):
        llm_args("class Other(BaseModel):\n    x: int = 1\n")


def test_sampling_params_parser_skips_private_and_init_false_fields():
    data = sampling_params(textwrap.dedent('''
        @dataclass(slots=True, kw_only=True)
        class SamplingParams:
            end_id: Optional[int] = None
            max_tokens: int = 32
            _hidden: bool = False
            cache: Optional[list] = field(default=None, init=False, repr=False)

            def _validate(self):
                if self.max_tokens < 1:
                    raise ValueError("max_tokens must be positive")
    '''))
    assert data["fields"] == {"end_id": {"type": "Optional[int]", "default": None},
                              "max_tokens": {"type": "int", "default": 32}}
    assert data["validate"] == [{"when": "self.max_tokens < 1", "message": "ValueError('max_tokens must be positive')"}]


def test_triton_model_parser_splits_model_yaml():
    pbtxt = 'name: "m"\ninput [\n  {\n    name: "text_input"\n    data_type: TYPE_STRING\n    dims: [ -1 ]\n  }\n]\n' \
            'output [\n  {\n    name: "text_output"\n    data_type: TYPE_STRING\n    dims: [ -1 ]\n  }\n]\n'
    data = triton_model(pbtxt, "model: x\nbackend: pytorch\ntriton_config:\n  decoupled: true\n")
    assert data["inputs"][0]["name"] == "text_input" and data["outputs"][0]["name"] == "text_output"
    assert data["model_yaml"]["llm_keys"] == ["backend", "model"]
    assert data["model_yaml"]["triton_config_keys"] == ["decoupled"]


def test_shipped_fixtures_hold_what_the_backend_relies_on():
    fields = llm_fields()
    for name in ("model", "tokenizer", "backend", "dtype", "tensor_parallel_size", "pipeline_parallel_size",
                 "max_batch_size", "max_num_tokens", "max_seq_len", "max_input_len", "enable_chunked_prefill",
                 "kv_cache_config", "scheduler_config", "cuda_graph_config", "trust_remote_code"):
        assert name in fields, name
    kv = config_class("KvCacheConfig")
    assert kv["enable_block_reuse"]["default"] is True and kv["free_gpu_memory_fraction"]["default"] == 0.9
    assert {"max_tokens", "host_cache_size", "event_buffer_max_size", "secondary_offload_min_priority"} <= set(kv)
    assert set(enum_values("CapacitySchedulerPolicy")) == {"MAX_UTILIZATION", "GUARANTEED_NO_EVICT", "STATIC_BATCH"}
    assert set(sampling_fields()) >= {"end_id", "max_tokens", "stop_token_ids", "include_stop_str_in_output",
                                      "bad_token_ids", "logprobs", "detokenize"}
    model = load_fixture("llmapi_triton_model").data
    assert {t["name"] for t in model["inputs"]} >= {"text_input", "streaming", "sampling_param_max_tokens", "stop"}
    assert model["model_yaml"]["triton_config_keys"] == ["decoupled", "max_batch_size"]


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"model": "m", "max_batch_size": "8"}, "expected int"),
    ({"model": "m", "nope": 1}, "nope: not an argument"),
    ({"model": "m", "kv_cache_config": {"free_gpu_memory_fraction": 1.2}}, "must be le 1"),
    ({"model": "m", "kv_cache_config": {"reuse": True}}, "kv_cache_config.reuse: not an argument"),
    ({"model": "m", "scheduler_config": {"capacity_scheduler_policy": "FIFO"}}, "not a CapacitySchedulerPolicy"),
    ({"model": "m", "backend": "tensorrt"}, "not one of ['pytorch']"),
    ({"max_batch_size": 8}, "model: required"),
])
def test_llm_kwargs_checker_refuses_what_pydantic_would(kwargs, words):
    assert any(words in p for p in check_llm_kwargs(kwargs)), check_llm_kwargs(kwargs)


def _sampling_keys_in_model() -> set[str]:
    """Every keyword the served model can pass to SamplingParams (the Job's params dict and _sampling)."""
    tree = ast.parse(MODEL_PY.read_text())
    keys: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "dict":
            keys |= {k.arg for k in node.keywords if k.arg}
        if isinstance(node, ast.FunctionDef) and node.name == "_sampling":
            keys |= {k.value for n in ast.walk(node) if isinstance(n, ast.Dict) for k in n.keys
                     if isinstance(k, ast.Constant)}
            keys |= {n.slice.value for n in ast.walk(node) if isinstance(n, ast.Subscript)
                     and isinstance(n.ctx, ast.Store) and isinstance(n.slice, ast.Constant)}
    return keys


def test_every_sampling_keyword_the_model_sets_is_a_samplingparams_field():
    keys = _sampling_keys_in_model()
    assert {"max_tokens", "end_id", "stop_token_ids", "include_stop_str_in_output", "top_k", "temperature",
            "seed", "top_p"} <= keys
    assert not keys - set(sampling_fields()), keys - set(sampling_fields())


def test_typical_sampling_values_type_check():
    assert check_sampling_kwargs({"max_tokens": 8, "end_id": 2, "pad_id": 2, "stop_token_ids": [5],
                                  "include_stop_str_in_output": True, "bad_token_ids": [7], "top_k": 1,
                                  "detokenize": False, "logprobs": 1, "repetition_penalty": 1.2}) == []
    assert check_sampling_kwargs({"stop_token_ids": 5}) and check_sampling_kwargs({"stop_words": ["x"]})


def test_the_model_builds_retention_with_the_binding_signature():
    init = retention_init()
    source = MODEL_PY.read_text()
    assert init["class"] == "tensorrt_llm.bindings.executor.KvCacheRetentionConfig"
    assert "from tensorrt_llm.bindings.executor import KvCacheRetentionConfig" in source
    names = [a["name"] for a in init["init"]]
    assert names[:3] == ["token_range_retention_configs", "decode_retention_priority", "decode_duration_ms"]
    for keyword in ("decode_retention_priority", "decode_duration_ms"):
        assert f'kwargs["{keyword}"]' in source
    assert [a["name"] for a in init["token_range"]["init"]] == ["token_start", "token_end", "priority", "duration_ms"]


def test_the_double_is_marked_and_reads_the_fixtures():
    fake = Path(__file__).parent / "fake_trtllm" / "tensorrt_llm"
    assert "TEST DOUBLE" in (fake / "__init__.py").read_text()
    assert "trtbuild.contracts.llmapi" in (fake / "llmapi" / "__init__.py").read_text()
