"""The fixture parsers on small sources written for these tests (no upstream code is committed).

Each snippet mimics one shape NVIDIA's files use; the assertions say what the parser must conclude.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from trtbuild.contracts import load_fixture
from trtbuild.contracts.cpp_source import CppSource, blank_comments
from trtbuild.contracts.parse_backend import backend_parameters, model_tensors, request_errors, type_parsers
from trtbuild.contracts.parse_build import build_flags, plugin_sm_refusals
from trtbuild.contracts.parse_quant import builder_refusals, holds
from trtbuild.contracts.parse_retention import priority_constants, tensor_rules, validation
from trtbuild.contracts.regenerate import SPECS, SourceTree, main, regenerate

INSTANCE = textwrap.dedent('''
    // Widget backend (test snippet)
    Kind Widget::kindFromParams()
    {
        auto kind = state_->GetParameter<std::string>("widget_kind");
        if (kind == "round" || kind == "ROUND")
        {
            result = Kind::kROUND;
        }
        else if (kind == "square")
        {
            result = Kind::kSQUARE;
        }
        else
        {
            throw std::runtime_error("bad kind");
        }
        return result;
    }

    Config Widget::configFromParams()
    {
        int32_t size = 7;
        try
        {
            size = state_->GetParameter<int32_t>("widget_size"); // "not_a_param" in a comment
        }
        catch (std::exception const& e)
        {
            LOG_WARNING("widget_size is not specified, will use 7");
        }
        auto mode = Mode::kSLOW;
        try
        {
            std::string modeStr = state_->GetParameter<std::string>("widget_mode");
            if (modeStr == "fast")
            {
                mode = Mode::kFAST;
            }
            else if (modeStr == "slow")
            {
                mode = Mode::kSLOW;
            }
            else
            {
                throw std::runtime_error("invalid widget_mode");
            }
        }
        catch (std::exception const& e)
        {
            LOG_WARNING(e.what());
        }
        std::string label = state_->GetParameter<std::string>("widget_label");
        std::string fieldName = "widget_" "count";
        SizeType32 count = 3;
        try
        {
            count = state_->GetParameter<SizeType32>(fieldName);
        }
        catch (std::exception const& e)
        {
            LOG_WARNING(fieldName + " not set, defaulting to 3");
        }
        if (mode == Mode::kFAST)
        {
            try
            {
                speed = state_->GetParameter<uint32_t>("widget_speed");
            }
            catch (std::exception const& e)
            {
                TLLM_THROW("fast mode needs widget_speed");
            }
        }
        std::string a;
        std::string b;
        try { a = state_->GetParameter<std::string>("widget_a"); } catch (std::exception const& e) { }
        try { b = state_->GetParameter<std::string>("widget_b"); } catch (std::exception const& e) { }
        TLLM_CHECK_WITH_INFO(!a.empty() || !b.empty(), "need a or b");
        try
        {
            auto old = state_->GetParameter<std::string>("widget_old");
            TLLM_THROW("widget_old is no longer supported");
        }
        catch (std::exception const& e)
        {
        }
        return Config(size, mode, count);
    }
''')

STATE = textwrap.dedent('''
    template <>
    std::string WidgetState::GetParameter<std::string>(std::string const& name)
    {
        return lookup(name);
    }

    template <>
    int32_t WidgetState::GetParameter<int32_t>(std::string const& name)
    {
        return std::stoi(GetParameter<std::string>(name));
    }

    template <>
    bool WidgetState::GetParameter<bool>(std::string const& name)
    {
        auto val = GetParameter<std::string>(name);
        if (val == "yes" || val == "1")
        {
            return true;
        }
        else if (val == "no" || val == "0")
        {
            return false;
        }
        throw std::runtime_error("not a bool");
    }
''')


def _by_name(data):
    return {p["name"]: p for p in data["parameters"]}


def test_comments_are_blanked_offsets_kept():
    text = 'a // "x"\nb /* y\n z */ "c // d"'
    out = blank_comments(text)
    assert len(out) == len(text) and out.count("\n") == 2
    assert '"x"' not in out and "y" not in out and '"c // d"' in out


def test_try_blocks_and_conditions_are_found():
    src = CppSource("void f()\n{\n    if (x)\n    {\n        try\n        {\n            g();\n        }\n        catch (e)\n        {\n        }\n    }\n}\n")
    pos = src.text.index("g()")
    assert src.in_try(pos) is not None
    assert [b.kind for b in src.enclosing(pos)] == ["other", "if", "try"]
    assert src.function_at(pos)[0] == "f"


def test_backend_parameters_from_a_snippet():
    data = backend_parameters(INSTANCE, "")
    params = _by_name(data)
    assert "not_a_param" not in params  # a name inside a comment is not a read
    kind = params["widget_kind"]
    assert kind["required"] and kind["accepted"] == ["round", "ROUND", "square"]
    assert kind["maps_to"]["ROUND"] == "Kind::kROUND" and kind["invalid"].startswith("throws")
    size = params["widget_size"]
    assert not size["required"] and size["default"] == 7 and size["missing"] == "default"
    assert size["type"] == "int32_t" and "will use 7" in size["note"]
    mode = params["widget_mode"]
    assert mode["accepted"] == ["fast", "slow"] and mode["default"] == "slow"
    assert mode["invalid"] == "warns and uses the default"
    assert params["widget_label"]["required"]
    assert params["widget_count"]["default"] == 3  # the name comes from a variable
    assert params["widget_count"]["note"] == "widget_count not set, defaulting to 3"
    speed = params["widget_speed"]
    assert speed["missing"] == "throws: fast mode needs widget_speed"
    assert speed["condition"] == "if (mode == Mode::kFAST)"
    assert params["widget_old"]["missing"] == "ignored" and "swallowed" in params["widget_old"]["note"]
    assert data["required_one_of"] == [["widget_a", "widget_b"]]


def test_type_parsers_from_a_snippet():
    parsers = type_parsers(STATE)
    assert parsers["int32_t"] == "std::stoi"
    assert parsers["bool"] == {"true": ["yes", "1"], "false": ["no", "0"]}


def test_model_tensors_from_a_template():
    pbtxt = textwrap.dedent('''
        name: "m"
        input [
          {
            name: "a"
            data_type: TYPE_INT32
            dims: [ -1 ]
            allow_ragged_batch: true
            optional: true
          },
          # a comment { with braces }
          {
            name: "b"
            data_type: ${dtype}
            dims: [ 1 ]
            reshape: { shape: [ ] }
          }
        ]
        output [
          {
            name: "c"
            data_type: TYPE_FP32
            dims: [ -1, -1 ]
          }
        ]
        parameters: {
          key: "p"
          value: {
            string_value: "${p}"
          }
        }
    ''')
    got = model_tensors(pbtxt)
    assert got["inputs"] == [
        {"name": "a", "data_type": "TYPE_INT32", "dims": [-1], "optional": True, "ragged": True},
        {"name": "b", "data_type": "${dtype}", "dims": [1], "reshape": [], "optional": False, "ragged": False}]
    assert got["outputs"] == [{"name": "c", "data_type": "TYPE_FP32", "dims": [-1, -1]}]
    assert got["template_parameters"] == [{"key": "p", "value": "${p}"}]


def test_request_errors_name_their_function():
    cc = 'std::vector<R> makeRequests(int n)\n{\n    if (n > 1)\n    {\n        TLLM_THROW("too many " "rows");\n    }\n}\n'
    assert request_errors(cc) == [{"function": "makeRequests", "message": "too many rows"}]


BUILD_PY = textwrap.dedent('''
    import argparse

    def parse_arguments():
        parser = argparse.ArgumentParser()
        parser.add_argument('--count', type=int, default=1, help="How many.")
        parser.add_argument('--size', '--old_size', dest='size', type=int, help="Size.")
        parser.add_argument('--color', type=str, choices=['red', 'blue'], help="Color.")
        parser.add_argument('--names', nargs='+', choices=TABLE.keys(), help="Names.")
        parser.add_argument('--shape', type=enum_type(Shape), help="Set shape (round, square, or flat).")
        parser.add_argument('--legacy', type=str, help="Deprecated. Use --color.")
        parser.add_argument('--fast', action='store_true', help="Go fast.")
        add_plugin_argument(parser)
        return parser

    def build_model(cfg):
        assert not cfg.bad, "bad is not supported"

    def main():
        args = parse_arguments().parse_args()
        if args.fast:
            logger.warning('Option --fast is deprecated, use --speed instead.')
        if args.fast and args.count > 1:
            raise RuntimeError("fast works with one")
''')

PLUGIN_PY = textwrap.dedent('''
    Dtype = Literal["auto", "float16", None]

    class PluginConfig(BaseModel):
        dtype: str = Field(default="float16", description="x")
        gemm_plugin: Optional[Literal["auto", "fp8", None]] = Field(default=None, description="g")
        attn_plugin: Optional[Dtype] = Field(default="auto", description="a")
        hidden_plugin: Optional[Dtype] = Field(default=None, description="h")
        fused: bool = Field(default=True, description="f")
        block: int = Field(default=32, description="b")

        def validate(self):
            unsupported = {100: ['fused']}
            raise NotImplementedError("not on this SM")

    cli_plugin_args = ["gemm_plugin", "attn_plugin", "fused", "block"]
''')


def test_build_flags_from_snippets():
    got = build_flags(BUILD_PY, PLUGIN_PY)
    flags = got["flags"]
    assert flags["--count"] == {"type": "int"}
    assert flags["--old_size"] == {"type": "int", "alias_of": "--size"}
    assert flags["--color"] == {"type": "choice", "choices": ["red", "blue"]}
    assert flags["--names"] == {"type": "list", "choices_from": "TABLE.keys()"}
    assert flags["--shape"]["choices"] == ["round", "square", "flat"] and flags["--shape"]["choices_source"] == "help text"
    assert flags["--legacy"]["deprecated"].startswith("Deprecated")
    assert flags["--fast"] == {"type": "flag", "deprecated": "use --speed instead."}
    assert flags["--gemm_plugin"] == {"type": "choice", "choices": ["auto", "fp8", "disable"]}
    assert flags["--attn_plugin"]["choices"] == ["auto", "float16", "disable"]
    assert "--hidden_plugin" not in flags and "--dtype" not in flags  # not in cli_plugin_args
    assert flags["--fused"]["choices"] == ["enable", "disable"] and flags["--block"] == {"type": "int"}
    assert {"when": "args.fast and args.count > 1", "message": "fast works with one"} in got["refused"]
    assert {"when": "not (not cfg.bad)", "message": "bad is not supported"} in got["refused"]
    assert "--dtype" in got["removed"] and "--count" not in got["removed"]
    assert plugin_sm_refusals(PLUGIN_PY)["unsupported"] == {"100": ["fused"]}


MODE_PY = textwrap.dedent('''
    class QuantAlgo(StrEnum):
        W4 = auto()
        W8A8 = auto()
        F8 = auto()
        I8 = auto()

    class QuantMode(IntFlag):
        INT4_WEIGHTS = auto()
        INT8_WEIGHTS = auto()
        ACTIVATIONS = auto()
        PER_GROUP = auto()
        INT8_KV_CACHE = auto()
        FP8_QDQ = auto()
        COUNT = auto()
        WEIGHTS_AND_ACTIVATIONS = INT4_WEIGHTS | INT8_WEIGHTS | ACTIVATIONS

        def _all(self, bits, mask=VALID_FLAGS):
            return (self & mask) == bits

        def _any(self, bits):
            return (self & bits) != 0

        def is_int4_weight_only(self):
            return self._all(self.INT4_WEIGHTS, self.WEIGHTS_AND_ACTIVATIONS)

        def has_act_and_weight_quant(self):
            return self._all(self.INT8_WEIGHTS | self.ACTIVATIONS, self.WEIGHTS_AND_ACTIVATIONS)

        def has_int8_kv_cache(self):
            return self._any(self.INT8_KV_CACHE)

        def is_weight_only(self):
            return self.is_int4_weight_only() or self.has_int8_kv_cache()

        def set_int8_kv_cache(self):
            return self | self.INT8_KV_CACHE

        @staticmethod
        def from_description(quantize_weights=False, quantize_activations=False, per_group=False,
                             use_int4_weights=False, use_fp8_qdq=False):
            def raise_error():
                raise ValueError("bad")
            if quantize_activations and not quantize_weights:
                raise_error()
            mode = QuantMode(0)
            if quantize_weights and use_int4_weights:
                mode = mode | QuantMode.INT4_WEIGHTS
            elif quantize_weights:
                mode = mode | QuantMode.INT8_WEIGHTS
            if quantize_activations:
                mode = mode | QuantMode.ACTIVATIONS
            if per_group:
                mode = mode | QuantMode.PER_GROUP
            if use_fp8_qdq:
                mode = mode | QuantMode.FP8_QDQ
            return mode

        @staticmethod
        def use_weight_only(use_int4_weights=False, per_group=False):
            return QuantMode.from_description(quantize_weights=True, per_group=per_group,
                                              use_int4_weights=use_int4_weights)

        @staticmethod
        def from_quant_algo(quant_algo=None, kv_cache_quant_algo=None):
            if quant_algo == QuantAlgo.W4:
                quant_mode = QuantMode.use_weight_only(use_int4_weights=True, per_group=True)
            elif quant_algo == QuantAlgo.W8A8:
                quant_mode = QuantMode.from_description(True, True)
            elif quant_algo == QuantAlgo.F8:
                quant_mode = QuantMode.from_description(use_fp8_qdq=True)
            else:
                quant_mode = QuantMode(0)
            if kv_cache_quant_algo == QuantAlgo.I8:
                quant_mode = quant_mode.set_int8_kv_cache()
            return quant_mode
''')

BUILDER_PY = textwrap.dedent('''
    def build(model, build_config):
        if get_sm_version() >= 100 and get_sm_version() < 120:
            if model.config.quant_mode.is_int4_weight_only() or model.config.quant_mode.has_int8_kv_cache():
                raise RuntimeError("int4 or int8 kv not here")
            if model.config.quant_mode.has_act_and_weight_quant():
                raise RuntimeError("no smoothing")
        use_f8 = model.config.quant_mode.has_int8_kv_cache()
        if use_f8 and network.plugin_config._explicitly_disable_gemm_plugin is False:
            network.plugin_config.gemm_plugin = "special"
''')


def test_builder_refusals_from_snippets():
    got = builder_refusals(BUILDER_PY, MODE_PY)
    assert got["quant_algo_flags"] == {"W4": ["INT4_WEIGHTS", "PER_GROUP"], "W8A8": ["INT8_WEIGHTS", "ACTIVATIONS"],
                                       "F8": ["FP8_QDQ"]}
    assert got["kv_cache_quant_algo_flags"] == {"I8": ["INT8_KV_CACHE"]}
    assert got["sm_checks"][0] == {"sm_min": 100, "sm_max": 119, "when_any": ["is_int4_weight_only", "has_int8_kv_cache"],
                                   "error": "RuntimeError", "message": "int4 or int8 kv not here"}
    assert got["plugin_rewrites"] == [{"when": "has_int8_kv_cache", "unless_gemm_plugin": "disable",
                                       "field": "gemm_plugin", "value": "special"}]
    preds = got["predicates"]
    assert holds({"call": "is_int4_weight_only"}, {"INT4_WEIGHTS", "PER_GROUP"}, preds)
    assert not holds({"call": "is_int4_weight_only"}, {"INT4_WEIGHTS", "ACTIVATIONS"}, preds)
    assert holds({"call": "is_weight_only"}, {"INT8_KV_CACHE"}, preds)
    assert holds({"call": "has_act_and_weight_quant"}, {"INT8_WEIGHTS", "ACTIVATIONS"}, preds)


def test_a_builder_check_on_an_unknown_predicate_fails_loudly():
    broken = BUILDER_PY.replace("has_act_and_weight_quant()", "has_new_thing()")
    with pytest.raises(ValueError, match="has_new_thing"):
        builder_refusals(broken, MODE_PY)


RETENTION_CPP = textwrap.dedent('''
    // VALID: [(0, 10), (20, None)]
    // INVALID: [(0, None), (5, 6)]
    Range::Range(int start, std::optional<int> end, Priority priority)
    {
        TLLM_CHECK_WITH_INFO(priority >= Config::kMinRetentionPriority && priority <= Config::kMaxRetentionPriority,
            "Priority must be in %d..%d", Config::kMinRetentionPriority, Config::kMaxRetentionPriority);
    };

    KvCacheRetentionConfig::KvCacheRetentionConfig(std::vector<Range> const& ranges)
    {
        std::sort(r.begin(), r.end(), [](Range const& x, Range const& y) { return x.tokenStart < y.tokenStart; });
        for (size_t i = 0; i < numRanges; i++)
        {
            if (!entry.tokenEnd.has_value() && i != numRanges - 1)
            {
                throw std::invalid_argument("open end");
            }
            if (entry.tokenStart < 0)
            {
                throw std::invalid_argument("negative");
            }
            if (i != numRanges - 1)
            {
                if (*entry.tokenEnd > mTokenRangeRetentionConfigs[i + 1].tokenStart)
                {
                    throw std::invalid_argument("overlap");
                }
            }
            if (entry.tokenStart == 42)
            {
                throw std::invalid_argument("new rule");
            }
        }
    }
''')


def test_retention_validation_from_a_snippet():
    got = validation(RETENTION_CPP)
    assert got["sort_key"] == "tokenStart"
    assert [(c["rule"], c["message"]) for c in got["checks"]] == [
        ("open_end_not_last", "open end"), ("negative_start", "negative"), ("overlap", "overlap"),
        ("unknown", "new rule")]
    assert got["priority_check"]["min"] == "kMinRetentionPriority"
    assert got["examples"] == [{"ranges": [[0, 10], [20, None]], "valid": True},
                               {"ranges": [[0, None], [5, 6]], "valid": False}]
    assert priority_constants("static constexpr RetentionPriority kMaxRetentionPriority = 9;") == \
        {"kMaxRetentionPriority": 9}


def test_retention_tensor_rules_from_a_snippet():
    cc = textwrap.dedent('''
        auto constexpr kRetentionNoRangeEnd = -1;
        std::optional<Config> getKvCacheRetentionConfigFromTensors(InputTensors const& inputsTensors)
        {
            if (inputsTensors.count(InputFieldsNames::starts))
            {
                throw std::runtime_error("ends " "needed");
                auto decodePriority = Config::kDefaultRetentionPriority;
            }
        }
    ''')
    got = tensor_rules(cc)
    assert got["active_when_present"] == "starts" and got["sentinels"] == {"kRetentionNoRangeEnd": -1}
    assert got["length_errors"] == ["ends needed"] and got["decode_priority_default"] == "kDefaultRetentionPriority"


def test_regenerate_from_a_checkout_records_its_commit(tmp_path):
    """A directory mirroring upstream paths at one commit: every fixture's sources cite that commit."""
    files = {
        "triton_backend/inflight_batcher_llm/src/model_instance_state.cc": INSTANCE,
        "triton_backend/inflight_batcher_llm/src/model_state.cc": STATE,
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    sha = "ab" * 20
    fixture = regenerate("backend_parameters", SourceTree(checkout=tmp_path, commit=sha))
    assert {s["commit"] for s in fixture["sources"]} == {sha}
    assert {s["path"] for s in fixture["sources"]} == set(files)
    assert fixture["data"]["type_parsers"]["bool"]["true"] == ["yes", "1"]
    out = tmp_path / "out"
    assert main(["--source", str(tmp_path), "--commit", sha, "--only", "backend_parameters", "--out", str(out)]) == 0
    assert json.loads((out / "backend_parameters.json").read_text()) == fixture
    assert main(["--source", str(tmp_path), "--commit", sha, "--only", "request_tensors", "--out", str(out)]) == 1


def test_every_shipped_fixture_names_its_sources():
    for name in SPECS:
        fx = load_fixture(name)
        assert fx.contract == name and fx.data and fx.generated_by.startswith("python -m trtbuild.contracts")
        assert {s.path for s in fx.sources} == set(SPECS[name].paths)
        for s in fx.sources:
            assert s.repo == "NVIDIA/TensorRT-LLM"
            assert (s.commit and len(s.commit) == 40) or s.note, f"{name}: {s.path} has neither commit nor note"


def test_every_json_file_of_a_release_loads():
    """The loader is generic: fixtures other parts of trtbuild add to the release directory load too."""
    from trtbuild.contracts import fixture_names

    names = fixture_names()
    assert set(SPECS) <= set(names)
    for name in names:
        fx = load_fixture(name)
        assert fx.contract and isinstance(fx.data, dict) and fx.path.name == f"{name}.json"
    with pytest.raises(FileNotFoundError, match="no contract fixture 'nope'"):
        load_fixture("nope")
