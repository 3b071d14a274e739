"""Comparing a recorded answer with the mock's answer to the same request, for `mockserver
diff`: the status; the headers a client relies on (Content-Type, Location, MPT-*); the body's
shape (members present or missing, types, array lengths); and its values, except those the
server makes (ids, timestamps, trace ids). A server-made id is mapped through the run: once
the recording's `AUD-1` was answered as the mock's `AUD-9`, a later request naming `AUD-1` is
replayed with `AUD-9`, and an answer holding `AUD-9` where the recording held `AUD-1` agrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

ID = re.compile(r"^[A-Z]{2,4}(-\d{4}){2,5}$")  # AUD-0000-0000-0000-0000, AET-0000-0000
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
TRACE = {"traceid", "trace-id", "traceparent"}
RELIED_ON = ("content-type", "location")  # and every MPT-* header


@dataclass(frozen=True)
class Difference:
    kind: str  # status, header, member, type, length, value
    where: str  # `status`, a header's name, or the body's JSON path (`$.data[0].event`)
    recorded: str
    mock: str

    def as_json(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "where": self.where,
            "recorded": self.recorded,
            "mock": self.mock,
        }

    def __str__(self) -> str:
        return f"{self.where}: {self.kind} differs: recorded {self.recorded}, mock {self.mock}"


@dataclass
class Ids:
    """Server-made ids of the recording, and the mock's for them."""

    mapped: dict[str, str] = field(default_factory=dict)

    def agree(self, recorded: str, mock: str) -> bool:
        known = self.mapped.get(recorded)
        if known is not None:
            return known == mock
        if mock in self.mapped.values():
            return False
        self.mapped[recorded] = mock
        return True

    def replace(self, text: str) -> str:
        """The recording's ids in `text` as the mock made them."""
        for recorded, mock in self.mapped.items():
            if recorded != mock and recorded in text:
                text = text.replace(recorded, mock)
        return text


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def compare(recorded: Answer, mock: Answer, ids: Ids, ignored: frozenset[str]) -> list[Difference]:
    """Every way the mock's answer differs from the recorded one (the status alone, when it
    differs)."""
    if recorded.status != mock.status:
        return [Difference("status", "status", str(recorded.status), str(mock.status))]
    found = _headers(recorded.headers, mock.headers, ids, ignored)
    _Walk(ids, ignored, found).value("$", _parsed(recorded), _parsed(mock))
    return found


def _headers(
    recorded: dict[str, str], mock: dict[str, str], ids: Ids, ignored: frozenset[str]
) -> list[Difference]:
    names = sorted(
        {n for n in (*recorded, *mock) if n in RELIED_ON or n.startswith("mpt-")} - ignored
    )
    found = []
    for name in names:
        was, now = recorded.get(name), mock.get(name)
        if was is None or now is None:
            shown = (was or "absent", now or "absent")
            found.append(Difference("header", _title(name), *shown))
        elif not _same_header(name, was, now, ids):
            found.append(Difference("header", _title(name), was, now))
    return found


def _same_header(name: str, was: str, now: str, ids: Ids) -> bool:
    if name == "location":  # the path, its ids mapped: the hosts differ
        was_path, now_path = urlsplit(was).path, urlsplit(now).path
        was_id, now_id = was_path.rsplit("/", 1)[-1], now_path.rsplit("/", 1)[-1]
        if ID.match(was_id) and ID.match(now_id) and ids.agree(was_id, now_id):
            return was_path.rsplit("/", 1)[0] == now_path.rsplit("/", 1)[0]
        return was_path == now_path
    return " ".join(was.lower().split()) == " ".join(now.lower().split())


def _title(name: str) -> str:
    return "-".join("MPT" if part == "mpt" else part.title() for part in name.split("-"))


def _parsed(answer: Answer) -> Any:
    """The body as JSON, JSON lines as a list, anything else as text."""
    if not answer.body.strip():
        return None
    if "jsonl" not in answer.headers.get("content-type", ""):
        try:
            return orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            pass
    try:
        return [orjson.loads(line) for line in answer.body.splitlines() if line.strip()]
    except orjson.JSONDecodeError:
        return answer.body.decode("utf-8", "replace")


_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer"}


def _type(value: Any) -> str:
    return "null" if value is None else _TYPES.get(type(value), "number")


class _Walk:
    def __init__(self, ids: Ids, ignored: frozenset[str], found: list[Difference]) -> None:
        self.ids, self.ignored, self.found = ids, ignored, found

    def value(self, where: str, was: Any, now: Any) -> None:
        if _type(was) != _type(now) and {_type(was), _type(now)} != {"integer", "number"}:
            self.found.append(Difference("type", where, _type(was), _type(now)))
        elif isinstance(was, dict):
            self._object(where, was, now)
        elif isinstance(was, list):
            self._array(where, was, now)
        elif isinstance(was, str):
            self._string(where, was, now)
        elif was != now:
            self.found.append(Difference("value", where, _shown(was), _shown(now)))

    def _object(self, where: str, was: dict[str, Any], now: dict[str, Any]) -> None:
        for name in [*was, *(n for n in now if n not in was)]:
            if name in self.ignored or f"{where}.{name}"[2:] in self.ignored:
                continue
            inner = f"{where}.{name}"
            if name not in now:
                self.found.append(Difference("member", inner, "present", "missing"))
            elif name not in was:
                self.found.append(Difference("member", inner, "missing", "present"))
            elif name.lower() not in TRACE:
                self.value(inner, was[name], now[name])

    def _array(self, where: str, was: list[Any], now: list[Any]) -> None:
        if len(was) != len(now):
            self.found.append(Difference("length", where, str(len(was)), str(len(now))))
        for number, (one, other) in enumerate(zip(was, now, strict=False)):
            self.value(f"{where}[{number}]", one, other)

    def _string(self, where: str, was: str, now: str) -> None:
        if was == now or (TIMESTAMP.match(was) and TIMESTAMP.match(now)):
            return
        if ID.match(was) and ID.match(now) and self.ids.agree(was, now):
            return
        self.found.append(Difference("value", where, _shown(was), _shown(now)))


def _shown(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 80 else text[:77] + "..."
