"""What a fault rule (or a journal query) matches: method, path, and `when` conditions on the
headers, the query and the body of a request."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mockserver.codec import MISSING


@dataclass(frozen=True)
class Seen:
    """A request as rules and journal matchers look at it."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: Any = MISSING  # parsed JSON, or MISSING


@dataclass(frozen=True)
class Conditions:
    """Method, path and the `when` conditions of a rule or a journal matcher."""

    method: str | None = None
    path: PathPattern | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    body: Any = MISSING

    @classmethod
    def parse(cls, given: Mapping[str, Any]) -> Conditions:
        when = given.get("when") or {}
        method = given.get("method")
        return cls(
            method=method.upper() if method else None,
            path=path_pattern(given["path"]) if given.get("path") else None,
            headers={k.lower(): v for k, v in (when.get("headers") or {}).items()},
            query=dict(when.get("query") or {}),
            body=when.get("body", MISSING),
        )

    def match(self, seen: Seen) -> bool:
        if self.method is not None and seen.method != self.method:
            return False
        if self.path is not None and not self.path.match(seen.path):
            return False
        if any(seen.headers.get(k) != v for k, v in self.headers.items()):
            return False
        if any(seen.query.get(k) != v for k, v in self.query.items()):
            return False
        return self.body is MISSING or contains(seen.body, self.body)


_PLACEHOLDER = re.compile(r"\{[^{}/]+\}")


class PathPattern:
    """An exact path, or a spec template whose `{name}` parts match one or more characters of
    one segment each; any case, with or without a trailing slash. Matched segment by segment
    in linear time: a regex of the template would backtrack exponentially on templates such as
    `/{a}{b}{c}...!`, and a rule is tried on every request."""

    def __init__(self, path: str) -> None:
        template = (path.rstrip("/") or "/").lower()
        # each segment: the literal pieces around its placeholders
        self._segments = [_PLACEHOLDER.split(segment) for segment in template.split("/")]

    def match(self, path: str) -> bool:
        path = path.lower()
        return self._fits(path) or (path.endswith("/") and self._fits(path[:-1]))

    def _fits(self, path: str) -> bool:
        parts = path.split("/")
        return len(parts) == len(self._segments) and all(
            _segment_fits(pieces, part) for pieces, part in zip(self._segments, parts, strict=True)
        )


def _segment_fits(pieces: list[str], text: str) -> bool:
    """Whether `text` is the pieces with one or more characters between each two: each piece
    is taken where it is first found, which leaves the most room for the ones after it."""
    if len(pieces) == 1:
        return text == pieces[0]
    head, tail = pieces[0], pieces[-1]
    at, stop = len(head), len(text) - len(tail)  # placeholders fill text[at:stop]
    if stop <= at or not (text.startswith(head) and text.endswith(tail)):
        return False
    for piece in pieces[1:-1]:
        found = text.find(piece, at + 1, stop - 1)  # a character at least on either side
        if found < 0:
            return False
        at = found + len(piece)
    return stop > at


def path_pattern(path: str) -> PathPattern:
    """What a rule's or a matcher's `path` matches (see `PathPattern`)."""
    return PathPattern(path)


def contains(actual: Any, expected: Any) -> bool:
    """Whether `actual` holds `expected`: objects member by member (a subset), else equal."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            k in actual and contains(actual[k], v) for k, v in expected.items()
        )
    return bool(actual == expected) and type(actual) is type(expected)
