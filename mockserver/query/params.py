"""The query string of a collection read: RQL filter, `order`, `select`, `limit`, `offset`.

Decoded as the official client encodes it: split on `&`, percent-decode each part with
`unquote` (a literal `+` stays a `+`), a part with `=` before any `(` is a parameter, any other
part is an RQL expression (or `render()`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import unquote

from mockserver.problems import invalid
from mockserver.query.expression import MAX_EXPRESSIONS, Expression, FieldCheck, expression
from mockserver.query.rql import Call, RQLError, Value, parse

DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_ORDER = 10  # sort keys: each is a sort of every match
RESERVED = {"limit", "offset", "order", "select"}
# a whole number as ASP.NET Core binds one (NumberStyles.Integer): ASCII digits, a sign, spaces
# around; not Python's int() extras (`1_000`, other scripts' digits)
_INTEGER = re.compile(r"\s*[+-]?\d+\s*", re.ASCII)


@dataclass(frozen=True)
class Selection:
    """`select=+a,-b.c`: fields to add and to leave out (all fields are in the default view)."""

    exclude: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> Selection:
        if not text:
            return cls()
        parts = dict.fromkeys(p.strip() for p in text.split(","))  # each once, in the order given
        return cls(
            tuple(tuple(p[1:].split(".")) for p in parts if p.startswith("-") and len(p) > 1)
        )

    @property
    def omitted(self) -> list[str]:
        return [".".join(path) for path in self.exclude]

    def apply(self, item: dict[str, Any]) -> dict[str, Any]:
        """A copy of the item without the excluded fields; the stored item is untouched."""
        for path in self.exclude:
            item = _without(item, path)
        return item


def _without(item: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    head = path[0]
    if head not in item:
        return item
    copy = dict(item)
    if len(path) == 1:
        del copy[head]
    elif isinstance(copy[head], dict):
        copy[head] = _without(copy[head], path[1:])
    elif isinstance(copy[head], list):  # `-viewers.name`: from every element
        copy[head] = [_without(e, path[1:]) if isinstance(e, dict) else e for e in copy[head]]
    return copy


@dataclass
class Query:
    """A decoded query string."""

    params: dict[str, str] = field(default_factory=dict)
    filters: list[str] = field(default_factory=list)
    render: bool = False

    @cached_property
    def selection(self) -> Selection:
        return Selection.parse(self.params.get("select"))


def decode(query_string: str) -> Query:
    """Split and decode a raw query string (see the module doc)."""
    query = Query()
    for raw in query_string.split("&"):
        if not raw:
            continue
        equals, paren = raw.find("="), raw.find("(")
        if equals >= 0 and (paren < 0 or equals < paren):
            name, value = unquote(raw[:equals]), unquote(raw[equals + 1 :])
            if name == "render()":
                query.render = True
            else:  # given twice: the first, as ASP.NET Core binds a single value
                query.params.setdefault(name, value)
            continue
        part = unquote(raw)
        if part.replace(" ", "").rstrip("=") == "render()":
            query.render = True
        else:
            query.filters.append(part)
    return query


def shortcut(name: str, value: str) -> Call:
    """`field=value` is `eq(field,value)`; `null()` and `empty()` keep their meaning, and a
    quoted value (`field='a b'`) loses its quotes as in `eq()`."""
    if value in ("null()", "empty()"):
        return Call("eq", (Value(name), Call(value[:-2], ())))
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return Call("eq", (Value(name), Value(value[1:-1], True)))
    return Call("eq", (Value(name), Value(value)))


def integer(text: str) -> int:
    """A whole-number parameter; ValueError for anything else."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int


def page(params: dict[str, str]) -> Page:
    """`limit` (default 10, capped at 100) and `offset`; 400 for what is not a whole number >= 0."""
    errors: dict[str, list[str]] = {}
    values = {}
    for name, default in (("limit", DEFAULT_LIMIT), ("offset", 0)):
        text = params.get(name)
        try:
            values[name] = default if text is None else integer(text)
        except ValueError:
            errors[name] = [f"The value '{text}' is not valid for {name}."]
            continue
        if values[name] < 0:
            errors[name] = [f"The value '{text}' is not valid for {name}: it must be 0 or more."]
    if errors:
        raise invalid(errors)
    return Page(offset=values["offset"], limit=min(values["limit"], MAX_LIMIT))


def stream_limit(params: dict[str, str]) -> int:
    """A streamed read's `limit`: how many items at most (no `limit`, or a negative one: all)."""
    text = params.get("limit")
    if text is None:
        return sys.maxsize
    try:
        value = integer(text)
    except ValueError:
        raise invalid({"limit": [f"The value '{text}' is not valid for limit."]}) from None
    return sys.maxsize if value < 0 else value


def filtering(query: Query, known: FieldCheck) -> Expression | None:
    """The checked filter of a query (None: none); 400 naming the bad part when an expression
    is malformed or names a field the items do not have."""
    if len(query.filters) > MAX_EXPRESSIONS:  # each holds one at least: refused unread
        message = f"The filter has more than {MAX_EXPRESSIONS} expressions."
        raise invalid({query.filters[MAX_EXPRESSIONS]: [message]})
    calls = []
    for text in query.filters:
        try:
            calls.append(parse(text))
        except RQLError as exc:
            raise invalid({exc.part: [str(exc)]}) from exc
    for name, value in query.params.items():
        if name not in RESERVED:
            if not known(name):
                raise invalid({name: ["Unknown expression group."]})
            calls.append(shortcut(name, value))
    try:
        return expression(calls, known)
    except RQLError as exc:
        raise invalid({exc.part: [str(exc)]}) from exc


def ordering(text: str | None, known: FieldCheck) -> list[tuple[str, bool]]:
    """`order=-timestamp,id` → [('timestamp', True), ('id', False)]; 400 for unknown fields
    and for more than MAX_ORDER fields. A field given again is left out: it orders nothing."""
    keys: dict[str, bool] = {}
    for raw in (text or "").split(","):
        raw = raw.strip()
        descending = raw.startswith("-")
        name = raw.lstrip("+-").strip()
        if not name or name in keys:
            continue
        if not known(name):
            raise invalid({name: ["Unknown expression group."]})
        keys[name] = descending
        if len(keys) > MAX_ORDER:
            raise invalid({"order": [f"At most {MAX_ORDER} fields can order a list."]})
    return list(keys.items())
