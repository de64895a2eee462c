"""Just enough of C++ to read facts out of NVIDIA's sources: comments, braces, ``try`` blocks, literals.

Not a C++ parser: it blanks comments (keeping every offset), matches braces outside string literals, and
knows which blocks are ``try`` / ``catch`` bodies and which ``if`` guards a block. That is all the contract
parsers need to tell "read inside a try (has a default)" from "read unguarded (throws when missing)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_FUNC_HEAD = re.compile(r"^(?!namespace\b|using\b|template\b|return\b)[A-Za-z_][^\n;{}()]*?\b(~?\w+)\s*\(",
                        re.MULTILINE)


def _past_literal(text: str, i: int) -> int | None:
    """The offset after the string or char literal starting at ``i``; None when none starts there."""
    if text[i] == '"':
        m = _STRING.match(text, i)
        return m.end() if m else i + 1
    if text[i] == "'":
        j = text.find("'", i + 2 if text[i + 1:i + 2] == "\\" else i + 1)
        return j + 1 if j != -1 else i + 1
    return None


def blank_comments(text: str) -> str:
    """``text`` with ``//`` and ``/* */`` comments replaced by spaces (newlines kept), literals untouched."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        past = _past_literal(text, i)
        if past is not None:
            i = past
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j == -1 else j
            out[i:j] = " " * (j - i)
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j == -1 else j + 2
            out[i:j] = [c if c == "\n" else " " for c in text[i:j]]
            i = j
        else:
            i += 1
    return "".join(out)


def string_literals(text: str) -> list[str]:
    """The contents of the string literals in ``text``, in order, with C escapes for quotes undone."""
    return [m.group(0)[1:-1].replace('\\"', '"').replace("\\\\", "\\") for m in _STRING.finditer(text)]


def joined_literals(text: str) -> str:
    """Adjacent literals concatenated, as the compiler does (``"a" "b"`` → ``ab``)."""
    return "".join(string_literals(text))


@dataclass(frozen=True)
class Block:
    """One ``{ ... }``: offsets of its braces and what opened it."""

    open: int
    close: int
    kind: str
    """``try``, ``catch``, ``if`` (incl. ``else if``), ``else`` or ``other``."""
    head: str
    """The text between the previous statement and the brace (e.g. the ``if`` condition)."""


class CppSource:
    """A C++ file with comments blanked and its blocks indexed."""

    def __init__(self, text: str):
        self.raw = text
        self.text = blank_comments(text)
        self.blocks = self._index_blocks()

    def _index_blocks(self) -> list[Block]:
        text, stack, blocks = self.text, [], []
        i, n = 0, len(text)
        while i < n:
            past = _past_literal(text, i)
            if past is not None:
                i = past
                continue
            ch = text[i]
            if ch == "{":
                stack.append(i)
            elif ch == "}" and stack:
                start = stack.pop()
                head = self._head(start)
                blocks.append(Block(start, i, _kind(head), head))
            i += 1
        return sorted(blocks, key=lambda b: b.open)

    def _head(self, brace: int) -> str:
        j = brace - 1
        depth = 0
        while j >= 0:
            c = self.text[j]
            if c == ")":
                depth += 1
            elif c == "(":
                depth -= 1
            elif depth == 0 and c in ";{}":
                break
            j -= 1
        return " ".join(self.text[j + 1:brace].split())

    def enclosing(self, pos: int) -> list[Block]:
        """Blocks containing ``pos``, outermost first."""
        return [b for b in self.blocks if b.open < pos < b.close]

    def in_try(self, pos: int) -> Block | None:
        """The innermost ``try`` body around ``pos``, or None."""
        tries = [b for b in self.enclosing(pos) if b.kind == "try"]
        return tries[-1] if tries else None

    def catch_after(self, try_block: Block) -> Block | None:
        """The ``catch`` body that follows a ``try`` body."""
        return next((b for b in self.blocks if b.kind == "catch" and b.open > try_block.close), None)

    def function_at(self, pos: int) -> tuple[str, int]:
        """(name, start offset) of the function ``pos`` is in: the last column-0 ``... name(`` line before it."""
        best = ("", 0)
        for m in _FUNC_HEAD.finditer(self.text, 0, pos):
            best = (m.group(1), m.start())
        return best

    def body(self, block: Block) -> str:
        return self.text[block.open + 1:block.close]

    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1


def _kind(head: str) -> str:
    if head == "try" or head.endswith(" try"):
        return "try"
    if head.startswith("catch"):
        return "catch"
    if head.startswith(("if", "else if")):
        return "if"
    if head == "else":
        return "else"
    return "other"
