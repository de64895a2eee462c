"""Property tests: thousands of mutated recipes never crash the loader, and every rejection is
in compiler form (FILE:LINE:COL: key.path: message)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trtbuild.errors import RecipeError
from trtbuild.recipe.loader import parse_recipe
from trtbuild.recipe.schema import Recipe

ROOT = Path(__file__).resolve().parents[2]
BASE_TEXT = (ROOT / "recipes" / "llama-3.1-8b-fp8.yaml").read_text()
BASE: dict[str, Any] = yaml.safe_load(BASE_TEXT)
FILE = Path("fuzz/recipe.yaml")
FORM = re.compile(r"^fuzz/recipe\.yaml:\d+:\d+: \S.*")


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


ALL_PATHS = [p for p in _paths(BASE) if p]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["fp8", "int4_awq", "paged", "10m", "8GiB", "hf://a/b@c", "∞", "🙂", "", "null", "yes"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                      max_leaves=12)
keys = st.one_of(st.text(max_size=20), st.sampled_from(
    ["max_input_len", "tokens_per_block", "streaming", "tp", "weights", "kv_cahce", "quantisation", "samples"]))


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _check(text: str) -> None:
    try:
        loaded = parse_recipe(text, FILE)
    except RecipeError as exc:
        assert exc.diagnostics, "a rejection must say why"
        for d in exc.diagnostics:
            line = d.format()
            assert FORM.match(line), line
            assert "\n" not in line
    else:
        assert isinstance(loaded.recipe, Recipe)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["set", "delete", "add", "rename"]), st.sampled_from(ALL_PATHS),
                          values, keys), min_size=1, max_size=4))
def test_mutated_documents(mutations: list[tuple[str, tuple[Any, ...], Any, str]]) -> None:
    doc = copy.deepcopy(BASE)
    for op, path, value, key in mutations:
        try:
            parent = doc
            for part in path[:-1]:
                parent = parent[part]
            last = path[-1]
            if op == "set":
                _set(doc, path, value)
            elif op == "delete" and isinstance(parent, dict):
                parent.pop(last, None)
            elif op == "add" and isinstance(parent, dict):
                parent[key] = value
            elif op == "rename" and isinstance(parent, dict) and last in parent:
                parent[key] = parent.pop(last)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed the path
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    _check(text)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=len(BASE_TEXT)), st.text(max_size=30), st.integers(0, 20))
def test_mutated_text(pos: int, insert: str, cut: int) -> None:
    _check(BASE_TEXT[:pos] + insert + BASE_TEXT[pos + cut:])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.sampled_from(["[", "{a: ", "- "]))
def test_deep_nesting(depth: int, opener: str) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": ""}[opener]
    if opener == "- ":
        body = "".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "x\n"
        _check("recipe: 1\nname: x\nmodel:\n" + body)
    else:
        _check("recipe: 1\nname: x\nmodel: " + opener * depth + "x" + closer * depth + "\n")


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 12), st.integers(2, 12))
def test_alias_bombs(levels: int, fanout: int) -> None:
    lines = ["recipe: 1", "name: bomb", "model: {source: m}", "l0: &l0 [lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * fanout)}]")
    _check("\n".join(lines) + "\n")


def test_unicode_everywhere() -> None:
    for text in ["recipe: 1\nname: ñame\nmodel: {source: 模型}\n", "ключ: 1\n", "recipe: 1\nname: x\nmodel: {source: \"\\x00\"}\n",
                 "\ufeffrecipe: 1\nname: x\nmodel: {source: m}\n", "recipe: 1\nname: x\nmodel: {source: m}\nbuild: {max_batch_size: 1e400}\n"]:
        _check(text)
