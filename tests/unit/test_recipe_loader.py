"""Recipe loading: positions, all errors at once, did-you-mean, misplaced keys, YAML problems."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from trtbuild.errors import RecipeError, UsageError
from trtbuild.recipe.loader import load_recipe, parse_recipe
from trtbuild.recipe.schema import Recipe

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
recipe: 1
name: demo
model:
  source: ./model
"""


def _write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def _errors(tmp_path: Path, text: str) -> list[str]:
    p = _write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipe(p)
    return [d.format().replace(str(p), "R") for d in info.value.diagnostics]


def test_minimal_recipe_gets_schema_defaults(tmp_path: Path) -> None:
    loaded = load_recipe(_write(tmp_path, MINIMAL))
    r = loaded.recipe
    assert isinstance(r, Recipe)
    assert r.quantization.weights == "none" and r.parallelism.tp == 1
    assert r.build.kv_cache.tokens_per_block == 32 and r.runtime.kv_cache.reuse is True
    assert loaded.base_dir == tmp_path and len(loaded.text_sha256) == 64


def test_recipe_is_frozen(tmp_path: Path) -> None:
    r = load_recipe(_write(tmp_path, MINIMAL)).recipe
    with pytest.raises(ValidationError):
        r.name = "other"  # type: ignore[misc]


def test_every_error_at_once_sorted_with_positions(tmp_path: Path) -> None:
    errs = _errors(tmp_path, """\
        recipe: 1
        name: demo
        model:
          source: ./model
          trust_remote_cod: true
        quantization:
          weights: int4-awq
        parallelism:
          tp: 0
        build:
          max_batch_size: lots
    """)
    assert errs == [
        "R:5:3: model.trust_remote_cod: unknown key 'trust_remote_cod' (did you mean 'trust_remote_code'?)",
        "R:7:12: quantization.weights: Input should be 'none', 'fp8', 'int4_awq', 'w4a8_awq', 'int8_sq', "
        "'nvfp4', 'int8_wo' or 'int4_wo', got 'int4-awq' (did you mean 'int4_awq'?)",
        "R:9:7: parallelism.tp: Input should be greater than or equal to 1",
        "R:11:19: build.max_batch_size: Input should be a valid integer, got 'lots'",
    ]


def test_build_key_under_runtime_says_where_it_belongs(tmp_path: Path) -> None:
    errs = _errors(tmp_path, MINIMAL + "runtime:\n  max_input_len: 4096\n  kv_cache:\n    tokens_per_block: 64\n")
    assert errs == [
        "R:6:3: runtime.max_input_len: 'max_input_len' is a build-time (engine) setting: "
        "move it to build.max_input_len",
        "R:8:5: runtime.kv_cache.tokens_per_block: 'tokens_per_block' is a build-time (engine) setting: "
        "move it to build.kv_cache.tokens_per_block",
    ]


def test_runtime_key_under_build_says_where_it_belongs(tmp_path: Path) -> None:
    errs = _errors(tmp_path, MINIMAL + "build:\n  scheduler_policy: max_utilization\n  streaming: true\n")
    assert errs[0].endswith("'scheduler_policy' is a run-time (server) setting: move it to runtime.scheduler_policy")
    assert errs[1].endswith("'streaming' is a run-time (server) setting: move it to runtime.streaming")


def test_unknown_top_level_key_and_misspelled_section(tmp_path: Path) -> None:
    errs = _errors(tmp_path, MINIMAL + "quantisation:\n  weights: fp8\ntp: 2\n")
    assert "R:5:1: quantisation: unknown key 'quantisation' (did you mean 'quantization'?)" in errs
    assert "R:7:1: tp: 'tp' is a parallelism setting: move it to parallelism.tp" in errs


def test_missing_required_keys(tmp_path: Path) -> None:
    errs = _errors(tmp_path, "name: demo\nmodel: {}\n")
    assert "R:1:1: recipe: required key 'recipe' is missing" in errs
    assert any(e.startswith("R:2:8: model.source: required key 'source' is missing") for e in errs)


def test_recipe_version_must_be_1(tmp_path: Path) -> None:
    errs = _errors(tmp_path, MINIMAL.replace("recipe: 1", "recipe: 2"))
    assert errs == ["R:1:9: recipe: Input should be 1, got 2"]


@pytest.mark.parametrize("text, expected", [
    ("recipe: 1\nname: x\n  bad: [\n", "R:3:6: YAML syntax error: mapping values are not allowed in this context"),
    ("recipe: 1\nname: [x\n", "YAML syntax error"),
    ("", "R:1:1: the file is empty; a recipe starts with 'recipe: 1'"),
    ("- a\n- b\n", "a recipe is a mapping of sections"),
    ("recipe: 1\nrecipe: 1\nname: x\nmodel: {source: m}\n", "R:2:1: recipe: duplicate key 'recipe' (first at line 1)"),
    ("recipe: 1\nname: x\nmodel: {source: m}\n<<: {dtype: float16}\n", "merge keys"),
    ("recipe: 1\nname: x\nmodel: {source: m}\n? [a, b]\n: 1\n", "mapping keys must be plain strings"),
    ("recipe: 1\nname: x\nmodel: {source: m}\nbuild: !!python/object:os.system {}\n",
     "R:4:8: build: unsupported YAML tag 'tag:yaml.org,2002:python/object:os.system'"),
    ("recipe: 1\nname: !!python/name:os.system x\nmodel: {source: m}\n", "R:2:7: invalid value: could not determine a constructor"),
])
def test_yaml_problems_are_positioned_errors(tmp_path: Path, text: str, expected: str) -> None:
    errs = _errors(tmp_path, text)
    assert any(expected in e for e in errs), errs
    assert all(e.startswith("R:") for e in errs)


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    errs = _errors(tmp_path, "\n".join(lines) + "\n")
    assert errs and "alias bomb" in errs[0]


@pytest.mark.parametrize("depth", [100, 5000])
def test_deep_nesting_is_refused(tmp_path: Path, depth: int) -> None:
    errs = _errors(tmp_path, "recipe: 1\nname: x\nmodel: " + "[" * depth + "]" * depth + "\n")
    assert len(errs) == 1 and "nesting" in errs[0] and errs[0].startswith("R:3:")


def test_non_utf8_file(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_bytes(b"recipe: 1\nname: \xff\xfe\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(p)
    assert info.value.diagnostics[0].format().endswith("2:7: file is not valid UTF-8 text")


def test_missing_file_and_directory_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(UsageError, match="is a directory"):
        load_recipe(tmp_path)


def test_retention_rule_union_messages(tmp_path: Path) -> None:
    errs = _errors(tmp_path, MINIMAL + textwrap.dedent("""\
        runtime:
          kv_cache:
            retention:
              rules:
                - {tokens: sys_prompt, priority: 90}
                - {tokens: {start: 5, end: 2}, priority: 90}
                - {tokens: prompt, priority: 101, duration: soon}
    """))
    assert ("R:9:20: runtime.kv_cache.retention.rules[0].tokens: expected one of 'system_prompt', 'prompt' "
            "or a mapping, got 'sys_prompt' (did you mean 'system_prompt'?)") in errs
    assert "R:10:20: runtime.kv_cache.retention.rules[1].tokens: end (2) must be greater than start (5)" in errs
    assert any("rules[2].priority: Input should be less than or equal to 100" in e for e in errs)
    assert any("rules[2].duration: expected a duration such as '10m'" in e for e in errs)


def test_durations_and_sizes_are_parsed(tmp_path: Path) -> None:
    r = load_recipe(_write(tmp_path, MINIMAL + textwrap.dedent("""\
        runtime:
          kv_cache:
            host_offload: 8GiB
            retention:
              rules:
                - {tokens: system_prompt, priority: 90, duration: 10m}
                - {tokens: {start: 0, end: 64}, priority: 80, duration: 500ms}
              decode_duration: 30s
    """))).recipe
    kv = r.runtime.kv_cache
    assert kv.host_offload == 8 * 2**30
    assert kv.retention.rules[0].duration == 600_000 and kv.retention.rules[1].duration == 500
    assert kv.retention.decode_duration == 30_000


def test_target_overrides_merge_and_errors_point_into_override(tmp_path: Path) -> None:
    text = MINIMAL + textwrap.dedent("""\
        quantization:
          weights: fp8
          calibration: {samples: 256}
        targets:
          a100:
            quantization:
              weights: int4_awq
          h10: {}
          l4:
            build:
              max_batch_size: 0
    """)
    errs = _errors(tmp_path, text)
    assert errs == [
        "R:12:3: targets.h10: unknown GPU 'h10' (did you mean 'h100'?); `trtbuild gpus` lists them",
        "R:15:23: targets.l4.build.max_batch_size: Input should be greater than or equal to 1",
    ]
    ok = load_recipe(_write(tmp_path, text.replace("  h10: {}\n", "").replace("max_batch_size: 0", "max_batch_size: 8")))
    a100 = ok.for_gpu("a100-80gb-sxm") if "a100-80gb-sxm" in ok.targets else ok.targets[next(iter(ok.targets))]
    assert a100.quantization.weights == "int4_awq"
    assert a100.quantization.calibration.samples == 256          # merged, not replaced
    assert ok.recipe.quantization.weights == "fp8"                # base untouched
    assert ok.for_gpu("h100-sxm").quantization.weights == "fp8"   # no override → base


def test_two_target_keys_naming_the_same_gpu(tmp_path: Path) -> None:
    errs = _errors(tmp_path, MINIMAL + "targets:\n  h100: {}\n  H100 SXM: {}\n")
    assert any("both name H100 SXM" in e for e in errs)


def test_model_source_forms(tmp_path: Path) -> None:
    errs = _errors(tmp_path, MINIMAL.replace("./model", "s3://bucket/model"))
    assert errs == ["R:4:11: model.source: unsupported model source scheme in 's3://bucket/model': "
                    "use a local directory or hf://org/name@revision"]
    ok = load_recipe(_write(tmp_path, MINIMAL.replace("./model", "hf://org/name@abc123")))
    assert ok.recipe.model.source == "hf://org/name@abc123"


def test_every_example_recipe_is_valid() -> None:
    examples = sorted((ROOT / "recipes").glob("*.yaml"))
    assert len(examples) >= 4
    for p in examples:
        loaded = load_recipe(p)
        assert loaded.recipe.name


def test_parse_recipe_from_text_matches_file(tmp_path: Path) -> None:
    p = _write(tmp_path, MINIMAL)
    assert parse_recipe(MINIMAL, p).recipe == load_recipe(p).recipe
