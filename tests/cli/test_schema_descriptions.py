"""Issue 12, measure 1: the recipe models no longer ask pydantic to parse schema.py for attribute docstrings
at import (once per class, on every `trtbuild plan`); `trtbuild schema` still describes every field."""

from __future__ import annotations

import json

from trtbuild.commands.planning import attribute_docs
from trtbuild.recipe import schema as module


def test_every_documented_field_is_described_in_the_emitted_schema(cli) -> None:
    emitted = json.loads(cli("schema").stdout)
    nodes = {"Recipe": emitted, **emitted["$defs"]}
    described = 0
    for cls, fields in attribute_docs(module).items():
        for field, doc in fields.items():
            if cls in nodes:
                assert nodes[cls]["properties"][field]["description"] == doc, (cls, field)
                described += 1
    assert described >= 60
    assert list(nodes["BuildSettings"]["properties"]["max_input_len"]) == sorted(
        nodes["BuildSettings"]["properties"]["max_input_len"])  # keys in pydantic's order


def test_the_recipe_models_build_nothing_from_source_at_import() -> None:
    assert not module.Section.model_config.get("use_attribute_docstrings")
    assert module.Recipe.model_fields["build"].description is None
