"""JSON in and out: orjson for speed, the standard library wherever orjson would differ.

orjson reads a 1.3 KB record about four times faster than `json`, but it turns integers of 20
digits or more into floats; those bodies (and any orjson refuses, for the precise error message)
go through `json`, which is held to what orjson refuses: numbers beyond a double (`1e400`, which
`json` would make `inf` and send back as `null`) and lone UTF-16 surrogates (`"\\ud800"`, which
no UTF-8 answer can hold; System.Text.Json refuses them too). Integers may have up to 4300
digits (Python's limit), kept exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import orjson

MISSING: Any = object()  # a JSON member that is not there (null is None)
_DIGITS = bytes.maketrans(b"123456789", b"000000000")


def needs_stdlib(raw: bytes) -> bool:
    """Whether the text holds a run of 20 digits: a number orjson would turn into a float."""
    return b"00000000000000000000" in raw.translate(_DIGITS)


def loads(raw: bytes) -> Any:
    """Parse JSON; raises `json.JSONDecodeError`/`ValueError`/`RecursionError` like `json`."""
    if not needs_stdlib(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # let the standard library say precisely what is wrong
    value = json.loads(
        raw.decode("utf-8-sig"),
        parse_constant=_reject_constant,
        parse_float=_finite,
        parse_int=_integer,
    )
    if b"\\ud" in raw or b"\\uD" in raw:  # a surrogate escape: is each one of a pair?
        try:
            json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            code = ord(exc.object[exc.start])
            raise ValueError(f"\\u{code:04x} is a lone UTF-16 surrogate, not a character") from None
    return value


MAX_DIGITS = 4300  # Python's own limit for int() of a string (sys.get_int_max_str_digits())


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {_shorten(text)} is out of range (beyond a double)")
    return number


def _integer(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > MAX_DIGITS:
        raise ValueError(f"a number has {digits} digits, more than the {MAX_DIGITS} allowed")
    return int(text)


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, lone surrogates (written as \udxxx escapes)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "backslashreplace"
        )


# ---------------------------------------------------------------- JSON values only

MAX_DEPTH = 64  # System.Text.Json's default MaxDepth, as on the real server
MAX_VALUES = 100_000  # values in a document read from a file, its YAML aliases expanded
_BIGGEST = 10**MAX_DIGITS  # integers with more digits cannot be written back as JSON


def json_fault(data: Any, where: str = "") -> str:
    """Why parsed YAML or JSON is not JSON as the control API takes it (JSON values only,
    objects with string keys, nested at most MAX_DEPTH deep); "" if it is. What YAML
    aliases share counts as often as it is referred to, up to MAX_VALUES values; each shared
    node is looked at once, so an alias bomb is refused at once."""
    try:
        _JsonWalk().visit(data, where, 1)
    except _NotJson as exc:
        return str(exc)
    return ""


class _NotJson(Exception):
    """Why a value is not JSON as the control API takes it."""


class _JsonWalk:
    """Checks each distinct value once; a container's size (values in all, shared ones
    counted each time) is remembered by identity."""

    def __init__(self) -> None:
        self._sizes: dict[int, int] = {}
        self._total = 0

    def visit(self, node: Any, where: str, depth: int) -> int:
        """How many values `node` holds (itself included); _NotJson for the first fault."""
        if depth > MAX_DEPTH:
            where = where if len(where) < 60 else where[:50] + "..."
            raise _NotJson(
                f"{where or 'it'} is nested deeper than the maximum of {MAX_DEPTH} levels"
            )
        if not isinstance(node, dict | list):
            _check_scalar(node, where)
            return self._count(1)
        known = self._sizes.get(id(node))
        if known is not None:
            return self._count(known)
        size = self._count(1) + sum(
            self.visit(value, place, depth + 1) for value, place in _children(node, where)
        )
        self._sizes[id(node)] = size
        return size

    def _count(self, size: int) -> int:
        self._total += size
        if self._total > MAX_VALUES:
            raise _NotJson(f"it holds more than {MAX_VALUES} values (YAML aliases counted out)")
        return size


def _children(node: dict[Any, Any] | list[Any], where: str) -> Iterator[tuple[Any, str]]:
    if isinstance(node, list):
        yield from ((value, f"{where}[{i}]") for i, value in enumerate(node))
        return
    for key, value in node.items():
        if not isinstance(key, str):
            raise _NotJson(f"{where or 'the top level'} has a key that is not a string: {key!r}")
        yield value, f"{where}.{key}" if where else key


def _check_scalar(node: Any, where: str) -> None:
    if isinstance(node, float) and not math.isfinite(node):
        raise _NotJson(f"{where or 'it'} is {node}, which JSON cannot hold")
    if isinstance(node, int) and not isinstance(node, bool) and abs(node) >= _BIGGEST:
        raise _NotJson(f"{where or 'it'} has more than {MAX_DIGITS} digits")
    if not isinstance(node, str | int | float | None):  # YAML dates, binary, sets
        kind = type(node).__name__
        raise _NotJson(f"{where or 'it'} is a YAML {kind}, which JSON cannot hold (quote it)")
