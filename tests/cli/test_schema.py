"""Issue 14, item 4: `trtbuild schema` accepts every recipe a user is shown, and sizes/durations need units."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.cli.recipes import readme_recipes, shipped_recipes


@pytest.fixture(scope="module")
def validator(cli) -> jsonschema.Draft202012Validator:  # type: ignore[no-untyped-def]
    r = cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def cli():  # module-scoped runner (the conftest's is function-scoped)
    from tests.conftest import run_cli

    return run_cli


def test_every_shown_recipe_validates_against_the_emitted_schema(validator) -> None:  # type: ignore[no-untyped-def]
    docs = [(str(p), yaml.safe_load(p.read_text())) for p in shipped_recipes()]
    docs += [(f"README #{i}", yaml.safe_load(t)) for i, t in enumerate(readme_recipes())]
    for name, doc in docs:
        errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(doc)]
        assert not errors, (name, errors)


def test_schema_bounds_are_json_schema_keywords(validator) -> None:  # type: ignore[no-untyped-def]
    build = validator.schema["$defs"]["BuildSettings"]["properties"]["max_batch_size"]
    assert (build["minimum"], build["maximum"]) == (1, 8192)
    assert not validator.is_valid({"recipe": 1, "name": "x", "model": {"source": "m"},
                                   "build": {"max_batch_size": 0}})
    text = json.dumps(validator.schema)
    assert '"ge"' not in text and '"le"' not in text


@pytest.mark.parametrize(("key", "value", "units"), [
    ("runtime:\n  kv_cache:\n    host_offload: 16\n", "16", "GiB"),
    ("runtime:\n  kv_cache:\n    retention:\n      decode_duration: 30\n", "30", "ms"),
    ("toolchain:\n  build_timeout: 3600\n", "3600", "s"),
])
def test_bare_numbers_for_sizes_and_durations_are_refused(cli, tmp_path: Path, key: str, value: str,
                                                          units: str, validator) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "r.yaml"
    p.write_text("recipe: 1\nname: x\nmodel: {source: m}\n" + key)
    r = cli("validate", str(p))
    assert r.returncode == 3
    assert "needs a unit" in r.stderr and f"'{value}{units}'" in r.stderr and "(units:" in r.stderr
    assert not validator.is_valid(yaml.safe_load(p.read_text()))  # the editor marks it too


def test_zero_needs_no_unit_and_units_parse(tmp_path: Path) -> None:
    from trtbuild.recipe.loader import load_recipe

    p = tmp_path / "r.yaml"
    p.write_text("recipe: 1\nname: x\nmodel: {source: m}\nruntime:\n  kv_cache:\n    host_offload: 0\n"
                 "    retention:\n      decode_duration: 1.5s\ntoolchain: {build_timeout: 2h}\n")
    r = load_recipe(p).recipe
    assert r.runtime.kv_cache.host_offload == 0 and r.runtime.kv_cache.retention.decode_duration == 1500
    assert r.toolchain.build_timeout == 2 * 3_600_000
