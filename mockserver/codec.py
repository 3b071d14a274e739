"""JSON in and out: orjson for speed, the standard library wherever orjson would differ.

orjson reads a 1.3 KB record about four times faster than `json`, but it turns integers of 20
digits or more into floats and refuses lone surrogates, which the real server keeps; those
bodies (and any orjson refuses, for the precise error message) go through `json`.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

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
    return json.loads(raw.decode("utf-8-sig"), parse_constant=_reject_constant)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON."""
    try:
        return orjson.dumps(value)
    except TypeError:  # integers beyond 64 bits, lone surrogates
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8", "surrogatepass"
        )
