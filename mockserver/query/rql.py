"""Resource Query Language: the grammar, and parsing a filter expression into its tree.

Grammar (after the query-string part is percent-decoded):
    expr   := NAME '(' [arg (',' arg)*] ')'
    arg    := expr | group | 'quoted' | "quoted" | bare
    group  := '(' [arg (',' arg)*] ')'
`null()` and `empty()` are values. `query.expression` checks a tree and types its values;
`query.predicates` turns a checked expression into a test of items.
"""

from __future__ import annotations

import re
from typing import NamedTuple

MAX_NESTING = 32
MAX_LENGTH = 65_536  # characters: no longer than a request line the server reads


class RQLError(ValueError):
    """A malformed or unsupported expression; `part` is what to point the caller at."""

    def __init__(self, message: str, part: str) -> None:
        super().__init__(message)
        self.part = part


# The tree's nodes are named tuples: a 64 KiB `in()` list makes ~30 000 of them, which a
# frozen dataclass builds three times slower.


class Call(NamedTuple):
    name: str
    args: tuple[Node, ...]


class Value(NamedTuple):
    text: str
    quoted: bool = False


class Group(NamedTuple):
    items: tuple[Node, ...]


Node = Call | Value | Group


def parse(text: str) -> Call:
    """Parse one expression such as `and(eq(event,'a'),gt(timestamp,2025-01-01))`."""
    if len(text) > MAX_LENGTH:
        raise RQLError(f"The expression is longer than {MAX_LENGTH} characters.", text[:100])
    node, end = _Parser(text).node(0, 0)
    if end != len(text):
        raise RQLError(f"Unexpected '{text[end]}' at position {end + 1}.", text)
    if not isinstance(node, Call):
        raise RQLError("An RQL expression must be an operator call such as eq(field,value).", text)
    return node


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text

    def node(self, at: int, depth: int) -> tuple[Node, int]:
        """The argument at `at` (a quoted string, a group, a call or a bare value) and the
        position after it."""
        if depth > MAX_NESTING:
            raise RQLError(f"Expressions are nested deeper than {MAX_NESTING} levels.", self.text)
        text = self.text
        at = self._blank(at)
        if at < len(text):
            first = text[at]
            if first in "'\"":
                close = text.find(first, at + 1)
                if close < 0:
                    raise RQLError(f"Unterminated string starting at position {at + 1}.", text)
                return Value(text[at + 1 : close], True), self._blank(close + 1)
            if first == "(":
                items, end = self.args(at + 1, depth + 1)
                return Group(items), self._blank(end)
        end = at
        while end < len(text) and text[end] not in ",()":
            end += 1
        token = text[at:end].strip()
        if end < len(text) and text[end] == "(":  # never with an empty name: see _blank
            args, after = self.args(end + 1, depth + 1)
            return Call(token, args), self._blank(after)
        return Value(token), end

    def _blank(self, at: int) -> int:
        """Skip spaces around an item: `eq(event, 'a')` is `eq(event,'a')`."""
        while at < len(self.text) and self.text[at].isspace():
            at += 1
        return at

    def args(self, at: int, depth: int) -> tuple[tuple[Node, ...], int]:
        """Arguments up to the closing parenthesis; returns the position after it."""
        text, items = self.text, []
        if at < len(text) and text[at] == ")":
            return (), at + 1
        bare = _BARE_VALUES.match(text, at) if depth <= MAX_NESTING else None
        if bare is not None:  # the common case, and a long `in()` list: 3x faster
            end = bare.end()
            parts = [part.strip() for part in text[at : end - 1].split(",")]
            made = {part: Value(part) for part in dict.fromkeys(parts)}  # one per distinct text
            return tuple(map(made.__getitem__, parts)), end
        while True:
            item, at = self.node(at, depth)
            items.append(item)
            if at >= len(text):
                raise RQLError(f"Missing ')' at the end of '{text}'.", text)
            if text[at] == ")":
                return tuple(items), at + 1
            if text[at] != ",":
                raise RQLError(f"Unexpected '{text[at]}' at position {at + 1}.", text)
            at += 1


# Arguments that are all bare values, up to the closing parenthesis (`a,b, c)`): read in one
# go, as the item by item reading would read them (possessive: no backtracking).
_BARE_VALUES = re.compile(r"(?:[^,()'\"]*+,)*+[^,()'\"]*+\)")


def _shown(node: Node) -> str:
    """`show`, with a bare value (most arguments) written without a call."""
    return node.text if type(node) is Value and not node.quoted else show(node)


def show(node: Node) -> str:
    """An expression written back, as an error message names it."""
    if isinstance(node, Call):
        return f"{node.name}(" + ",".join([_shown(a) for a in node.args]) + ")"
    if isinstance(node, Group):
        return "(" + ",".join([_shown(a) for a in node.items]) + ")"
    if not node.quoted:
        return node.text
    quote = '"' if "'" in node.text else "'"
    return f"{quote}{node.text}{quote}"
