"""YAML → plain Python values plus a map from key path to source position.

PyYAML's composer gives nodes with marks; we convert them ourselves so that we can
(1) remember where every key and value sits, (2) reject duplicate keys, (3) bound the work
an alias-heavy document ("billion laughs") or a deeply nested one can cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from trtbuild.errors import Diagnostic, SourcePosition

Path_ = tuple[str | int, ...]

MAX_BYTES = 1_000_000
MAX_NODES = 100_000
MAX_DEPTH = 64

try:  # the C loader is much faster; fall back to pure Python
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


@dataclass
class PositionMap:
    """Where each key path was written: the key's position and the value's position."""

    file: str
    keys: dict[Path_, SourcePosition] = field(default_factory=dict)
    values: dict[Path_, SourcePosition] = field(default_factory=dict)

    def at(self, path: Path_, *, prefer_key: bool = False) -> SourcePosition | None:
        """Best position for ``path``: the value (or key), else the nearest written ancestor."""
        p = tuple(path)
        while True:
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if p in first:
                return first[p]
            if p in second:
                return second[p]
            if not p:
                return None
            p = p[:-1]


class YamlLoadError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("; ".join(d.format() for d in diagnostics))


def _pos(file: str, mark: Any) -> SourcePosition:
    return SourcePosition(file, mark.line + 1, mark.column + 1)


class _Converter:
    def __init__(self, file: str):
        self.file = file
        self.positions = PositionMap(file)
        self.nodes = 0
        self.errors: list[Diagnostic] = []
        self._constructor = yaml.SafeLoader("")

    def convert(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise YamlLoadError([Diagnostic(
                f"document expands to more than {MAX_NODES} values (alias bomb or oversized recipe)",
                position=_pos(self.file, node.start_mark))])
        if depth > MAX_DEPTH:
            raise YamlLoadError([Diagnostic(
                f"nesting deeper than {MAX_DEPTH} levels", position=_pos(self.file, node.start_mark))])
        self.positions.values.setdefault(path, _pos(self.file, node.start_mark))
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
            self.errors.append(Diagnostic(f"unsupported YAML tag {node.tag!r}", path=_dotted(path),
                                          position=_pos(self.file, node.start_mark)))
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(child, path + (i,), depth + 1) for i, child in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.errors.append(Diagnostic("YAML merge keys ('<<') are not supported in recipes",
                                              path=_dotted(path), position=_pos(self.file, key_node.start_mark)))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.errors.append(Diagnostic("mapping keys must be plain strings",
                                              path=_dotted(path), position=_pos(self.file, key_node.start_mark)))
                continue
            key = self._scalar(key_node)
            key = key if isinstance(key, str) else str(key).lower() if isinstance(key, bool) else str(key)
            child = path + (key,)
            if key in out:
                first = self.positions.keys.get(child)
                where = f" (first at line {first.line})" if first else ""
                self.errors.append(Diagnostic(f"duplicate key '{show_key(key)}'{where}", path=_dotted(child),
                                              position=_pos(self.file, key_node.start_mark)))
                continue
            self.positions.keys[child] = _pos(self.file, key_node.start_mark)
            out[key] = self.convert(value_node, child, depth + 1)
        return out

    def _scalar(self, node: yaml.Node) -> Any:
        # Resolve the scalar with the SafeLoader's constructors (int/float/bool/null/str/timestamps).
        try:
            value = self._constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            self.errors.append(Diagnostic(f"invalid value: {exc}".splitlines()[0],
                                          position=_pos(self.file, node.start_mark)))
            return None
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = str(value)  # timestamps, binary: keep as text so validation names them
        return value


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")


def show_key(key: object) -> str:
    """A key as it can be shown on one line: plain keys as is, anything else quoted and escaped."""
    text = str(key)
    if _PLAIN_KEY.fullmatch(text):
        return text
    if text.isprintable():
        return '"' + text.replace('"', '\\"') + '"'
    return ascii(text)


def quote_key(key: object) -> str:
    """'key' for plain keys; the escaped, already quoted form for anything else."""
    shown = show_key(key)
    return shown if shown[:1] in ("'", '"') else f"'{shown}'"


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{show_key(part)}" if out else show_key(part))
    return out


dotted = _dotted


def load_yaml_with_positions(text: str, file: str) -> tuple[Any, PositionMap]:
    """Parse one YAML document. Raises YamlLoadError with positioned diagnostics."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlLoadError([Diagnostic(f"file is larger than {MAX_BYTES // 1000} kB; a recipe is a few kB",
                                        position=SourcePosition(file, 1, 1))])
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = _pos(file, mark) if mark is not None else SourcePosition(file, 1, 1)
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise YamlLoadError([Diagnostic(f"YAML syntax error: {problem}{context}", position=pos)]) from None
    except yaml.reader.ReaderError as exc:
        before = text[: exc.position]
        line = before.count("\n") + 1
        col = exc.position - (before.rfind("\n") + 1) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise YamlLoadError([Diagnostic(f"YAML syntax error: special character {ascii(char)} is not allowed",
                                        position=SourcePosition(file, line, col))]) from None
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())
        raise YamlLoadError([Diagnostic(f"YAML error: {first}", position=SourcePosition(file, 1, 1))]) from None
    except RecursionError:
        raise YamlLoadError([Diagnostic(f"nesting deeper than {MAX_DEPTH} levels",
                                        position=SourcePosition(file, 1, 1))]) from None
    if node is None:
        raise YamlLoadError([Diagnostic("the file is empty; a recipe starts with 'recipe: 1'",
                                        position=SourcePosition(file, 1, 1))])
    conv = _Converter(file)
    try:
        data = conv.convert(node, (), 0)
    except RecursionError:
        raise YamlLoadError([Diagnostic(f"nesting deeper than {MAX_DEPTH} levels",
                                        position=SourcePosition(file, 1, 1))]) from None
    if conv.errors:
        raise YamlLoadError(conv.errors)
    return data, conv.positions
