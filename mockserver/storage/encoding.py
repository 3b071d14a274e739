"""How an item is kept in memory: compact JSON bytes, with its top-level scalars first.

A stored item is the bytes of its JSON: about 1.05x its size on the wire instead of ~3x as
nested dicts, invisible to the garbage collector (bytes hold no references), and ready to be
sent as it is. Top-level scalar members come first (in the spec's order), then the objects and
arrays, so a filter or sort on a top-level scalar (`details`, `timestamp`) reads it straight from
the bytes without decoding the item: in the scalar part, `"name":` can only be a key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any

import orjson

from mockserver import codec
from mockserver.codec import MISSING
from mockserver.contract.schemas import Resolve, flatten
from mockserver.query.patterns import glob, plain_bytes
from mockserver.query.predicates import Predicate, getter

Item = dict[str, Any]
_BACKSLASH = 0x5C


@dataclass(frozen=True)
class Layout:
    """What a collection's schema says of its items' top level."""

    order: tuple[str, ...] = ()  # declared members, in the spec's order
    scalars: frozenset[str] = frozenset()  # declared members whose values are scalars

    @cached_property
    def _position(self) -> dict[str, int]:
        return {name: index for index, name in enumerate(self.order)}

    @cached_property
    def _orders(self) -> dict[tuple[tuple[str, ...], tuple[bool, ...]], list[str]]:
        return {}  # the member order for items of these members, containers where they are

    def encode(self, item: Item) -> bytes:
        """The bytes kept for an item: scalars first, both parts in the spec's member order."""
        shape = (tuple(item), tuple([isinstance(v, dict | list) for v in item.values()]))
        keys = self._orders.get(shape)
        if keys is None:
            position, last = self._position, len(self.order)
            keys = sorted(
                item, key=lambda k: (isinstance(item[k], dict | list), position.get(k, last))
            )
            if len(self._orders) < 256:  # items of a collection come in a few shapes
                self._orders[shape] = keys
        # orjson's bytes keep a spare buffer (~8 KB for a 1.5 KB item): keep an exact copy
        raw = bytes(memoryview(codec.dumps({key: item[key] for key in keys})))
        # a leading space (still JSON) marks the rare item that only the stdlib reads exactly
        return b" " + raw if codec.needs_stdlib(raw) else raw


def layout_of(schema: Any, resolve: Resolve) -> Layout:
    """The top-level members an item schema declares, in order, and which hold scalars."""
    node = flatten(schema, resolve)
    properties = node.get("properties", {}) if isinstance(node, dict) else {}
    scalars = set()
    for name, sub in properties.items():
        kind = flatten(sub, resolve)
        if isinstance(kind, dict) and kind.get("type") in _SCALARS:
            scalars.add(name)
    return Layout(tuple(properties), frozenset(scalars))


_SCALARS = ("string", "number", "integer", "boolean")


def decode(raw: bytes) -> Item:
    item: Item = codec.loads(raw) if raw[0] == 0x20 else orjson.loads(raw)
    return item


class Reader:
    """Field access for the items of one query; remembers the last item it decoded."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._last: tuple[bytes, Item] | None = None

    def decode(self, raw: bytes) -> Item:
        last = self._last
        if last is not None and last[0] is raw:
            return last[1]
        item = decode(raw)
        self._last = (raw, item)
        return item

    def access(self, path: str) -> Callable[[bytes], Any]:
        """A function reading `path` (dotted) of a stored item."""
        if "." not in path and path in self.layout.scalars:
            return Scalar(scalar, b'"' + codec.dumps(path)[1:-1] + b'":')
        get = getter(path)
        return lambda raw: get(self.decode(raw))


def scalar(needle: bytes, raw: bytes) -> Any:
    """The value of a top-level scalar member, read from the bytes (MISSING when absent)."""
    start = raw.find(needle, 1)
    if start < 0:
        return MISSING
    at = start + len(needle)
    if raw[at] in _OPENERS or _container_before(raw, start):
        return _decoded(needle, raw)  # a container where the schema says scalar, or nested
    if raw[at] == 0x22:  # a string: up to the first quote that is not escaped
        end = raw.find(b'"', at + 1)
        while raw[end - 1] == _BACKSLASH and _escaped(raw, end):
            end = raw.find(b'"', end + 1)
        text = raw[at + 1 : end]
        return text.decode() if _BACKSLASH not in text else orjson.loads(raw[at : end + 1])
    end = at
    while raw[end] not in b",}":
        end += 1
    return codec.loads(raw[at:end])


_OPENERS = b"[{"


def _decoded(needle: bytes, raw: bytes) -> Any:
    """The top-level member `needle` names, read from the decoded item (the rare case the
    bytes do not tell: an item that does not hold what its schema declares)."""
    return decode(raw).get(orjson.loads(needle[:-1]), MISSING)


class Scalar(partial[Any]):
    """Reads a top-level scalar member from an item's bytes: `Scalar(scalar, b'"name":')`."""

    def like(self, pattern: str, fold: bool) -> Predicate:
        """A `like`/`ilike` test of the member, on its bytes where they tell the answer."""
        return _like(self.args[0], pattern, fold)


def _like(key: bytes, pattern: str, fold: bool) -> Predicate:
    exact = glob(pattern, fold)  # for the values whose bytes are not their text
    raw_match = plain_bytes(pattern.casefold() if fold else pattern)
    size = len(key)

    def test(raw: bytes) -> bool:
        start = raw.find(key, 1)
        if start < 0:
            return False
        if raw[start + size] != 0x22:  # not a string: a number, or what the schema does not say
            return _exact(exact, scalar(key, raw))
        at = start + size + 1
        text = raw[at : raw.find(b'"', at)]
        if _BACKSLASH in text:  # escapes: read the value exactly
            return _exact(exact, scalar(key, raw))
        if not fold:
            hit = raw_match(text)  # UTF-8 bytes match where the text does
        elif text.isascii():
            hit = raw_match(text.lower())  # lower() is casefold() for ASCII
        else:
            hit = exact(text.decode())
        if hit and _container_before(raw, start):  # a nested member of that name: read exactly
            return _exact(exact, scalar(key, raw))
        return hit

    return test


def _exact(match: Callable[[str], bool], value: Any) -> bool:
    """`like` of a value read exactly: a string, or any string of an array."""
    if isinstance(value, list):
        return any(isinstance(v, str) and match(v) for v in value)
    return isinstance(value, str) and match(value)


def _container_before(raw: bytes, end: int) -> bool:
    """Whether an object or array member starts before `end` (the scalars come first)."""
    for marker in (b'":{', b'":['):
        found = raw.find(marker, 1, end)
        while found >= 0:
            if not _escaped(raw, found):
                return True
            found = raw.find(marker, found + 1, end)
    return False


def _escaped(raw: bytes, at: int) -> bool:
    """Whether the character at `at` is escaped (an odd run of backslashes before it)."""
    count = 0
    while raw[at - 1 - count] == _BACKSLASH:
        count += 1
    return count % 2 == 1
