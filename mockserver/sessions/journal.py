"""The request journal: what each API request sent and what it got, bounded in memory.

An entry is cheap to write (references and a few numbers); it is turned into JSON, with its
secrets masked, only when someone reads the journal. Once `--journal-size` entries are kept,
each new one pushes the oldest out, so memory stays flat.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import orjson

from mockserver.codec import MISSING
from mockserver.contract.router import Operation
from mockserver.faults.matching import Conditions, Seen
from mockserver.masking import mask, mask_query
from mockserver.query.params import decode
from mockserver.sessions.answer import Answer, answer_json

Headers = tuple[tuple[str, ...], tuple[str, ...]]  # WSGI names (`HTTP_USER_AGENT`), values


def _spelled(key: str) -> str:
    return (key[5:] if key.startswith("HTTP_") else key).replace("_", "-").title()


@dataclass(slots=True)
class Trail:
    """What one request leaves for its log line, journal entry and coverage: the front and
    the app fill it in as the request goes (`http.state` carries it)."""

    started: float = field(default_factory=time.perf_counter)
    operation: Operation | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    violations: dict[str, list[str]] | None = None
    status: int = 0  # 0: no answer reached the client (a connection fault)
    ended: float = 0.0
    answer: Answer | None = None  # what the client was answered (headers, the body's start)


@dataclass(slots=True)
class Entry:
    """One journaled request: what it sent (kept as the WSGI server gave it: turned into JSON
    only when read) and its trail."""

    id: int
    time: float
    method: str
    path: str
    query: str
    headers: Headers
    body: bytes
    session: str
    trail: Trail
    fault: str | None = None

    @property
    def status(self) -> int:
        return self.trail.status

    @property
    def operation(self) -> str | None:
        found = self.trail.operation
        return found.operation_id if found is not None else None

    @property
    def duration_ms(self) -> float:
        trail = self.trail
        return max(trail.ended - trail.started, 0.0) * 1000

    def named_headers(self) -> list[tuple[str, str]]:
        """`HTTP_USER_AGENT` → `User-Agent`, `CONTENT_TYPE` → `Content-Type`."""
        names, values = self.headers
        return [(_spelled(key), value) for key, value in zip(names, values, strict=True)]

    def seen(self) -> Seen:
        body: Any = MISSING
        if self.body:
            try:
                body = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                body = MISSING
        return Seen(
            self.method,
            self.path,
            decode(self.query).params,
            {k.lower(): v for k, v in self.named_headers()},
            body,
        )

    def as_json(self) -> dict[str, Any]:
        try:
            body: Any = orjson.loads(self.body) if self.body else None
        except orjson.JSONDecodeError:
            body = self.body.decode("utf-8", "replace")
        return {
            "id": self.id,
            "time": datetime.fromtimestamp(self.time, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "method": self.method,
            "path": self.path,
            "query": mask_query(unquote(self.query)),
            "headers": {name: mask(name, value) for name, value in self.named_headers()},
            "body": body,
            "operation": self.operation,
            "valid": None if self.operation is None else not self.trail.violations,
            "violations": self.trail.violations or {},
            "warnings": list(self.trail.extras.get("warnings") or []),
            "fault": self.fault,
            "status": self.status,
            "recordId": self.trail.extras.get("record"),
            "durationMs": round(self.duration_ms, 3),
            "delayMs": self.trail.extras.get("delay_ms"),
            "session": self.session,
            "answer": answer_json(self.trail.answer) if self.trail.answer else None,
        }


@dataclass(frozen=True)
class Matcher:
    """A journal query: conditions on the request, and on what was answered."""

    conditions: Conditions
    operation: str | None = None
    status: int | None = None
    fault: str | None = None

    @classmethod
    def parse(cls, given: dict[str, Any]) -> Matcher:
        return cls(
            Conditions.parse(given), given.get("operation"), given.get("status"), given.get("fault")
        )

    def match(self, entry: Entry) -> bool:
        if self.operation is not None and entry.operation != self.operation:
            return False
        if self.status is not None and entry.status != self.status:
            return False
        if self.fault is not None and entry.fault != self.fault:
            return False
        return self.conditions.match(entry.seen())


class Journal:
    """The last `size` entries of one session."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: collections.deque[Entry] = collections.deque(maxlen=size or None)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def open(
        self,
        time: float,
        method: str,
        path: str,
        query: str,
        headers: Headers,
        body: bytes,
        session: str,
        trail: Trail,
    ) -> Entry:
        entry = Entry(next(self._ids), time, method, path, query, headers, body, session, trail)
        if self.size:
            self._entries.append(entry)  # atomic: a deque's append holds the GIL throughout
        return entry

    def __iter__(self) -> Iterator[Entry]:
        with self._lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def count(self, matcher: Matcher) -> int:
        return sum(1 for entry in self if matcher.match(entry))
