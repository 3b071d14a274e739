"""The request journal: what each API request sent and what it got, bounded in memory.

An entry is cheap to write (references and a few numbers); it is turned into JSON, with its
secrets masked, only when someone reads the journal. Two bounds keep memory flat: each
session's journal keeps its last `--journal-size` entries, and all journals of a server hold at
most `--journal-bytes` (a `Budget`: past it, the oldest entries of any session go first). A
body larger than BODY_KEPT is kept cut, with its size and SHA-256.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from mockserver import codec
from mockserver.codec import MISSING
from mockserver.contract.router import Operation
from mockserver.faults.matching import Conditions, Seen
from mockserver.masking import mask, mask_query
from mockserver.query.params import decode
from mockserver.sessions.answer import KEPT as ANSWER_KEPT
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
    size: int = 0  # of the whole body (`body` may be cut)
    sha256: str | None = None  # of the whole body, when `body` is cut
    cost: int = 0  # bytes it holds, as the budget counts them
    seq: int = 0  # its place among every journal's entries (the oldest: the smallest)

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
        if self.body and self.sha256 is None:  # a cut body matches no body condition
            try:
                body = codec.loads(self.body)
            except (ValueError, RecursionError):
                body = MISSING
        return Seen(
            self.method,
            self.path,
            decode(self.query).params,
            {k.lower(): v for k, v in self.named_headers()},
            body,
        )

    def as_json(self) -> dict[str, Any]:
        shown = self._as_json()
        extras = self.trail.extras
        if "upstream" in extras or "forwardedInvalid" in extras:  # proxied (--upstream)
            shown["upstream"] = {
                "status": extras.get("upstream") or 0,
                "drift": list(extras.get("drift") or []),
                "forwardedInvalid": "forwardedInvalid" in extras,
            }
        return shown

    def _as_json(self) -> dict[str, Any]:
        body: Any = None
        if self.sha256 is not None:  # cut: what was kept, as text
            body = self.body.decode("utf-8", "replace")
        elif self.body:
            try:  # integers of any size kept exactly, as the API keeps them
                body = codec.loads(self.body)
            except (ValueError, RecursionError):
                body = self.body.decode("utf-8", "replace")
        cut = {} if self.sha256 is None else {"bodyTruncated": True, "bodySha256": self.sha256}
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
            "bodySize": self.size,
            **cut,
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


BODY_KEPT = 64 * 1024  # bytes of a body an entry keeps
# what an entry costs besides its body, headers and target: its own fields (an estimate), and
# room for the answer it keeps, counted whole when the entry is made (the answer comes later)
ENTRY_BYTES = 512 + ANSWER_KEPT + 512


class Budget:
    """The bytes every journal of a server may hold together. When a new entry takes it past
    its limit, the oldest entries (of whichever journal holds them) are dropped."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lock = threading.Lock()
        self._seq = itertools.count(1)
        self._journals: dict[int, Journal] = {}  # by id: those holding entries

    def charge(self, journal: Journal, entry: Entry) -> None:
        """Count a new entry in (under `lock`), dropping the oldest ones past the limit."""
        entry.seq = next(self._seq)
        self.used += entry.cost
        if len(journal) == 1:  # its first entry
            self._journals[id(journal)] = journal
        while self.used > self.limit and self._journals:
            oldest = min(self._journals.values(), key=Journal.oldest_seq)
            oldest.drop_oldest()

    def release(self, journal: Journal, cost: int, empty: bool) -> None:
        """An entry's bytes are free again (under `lock`)."""
        self.used -= cost
        if empty:
            self._journals.pop(id(journal), None)


class Journal:
    """The last `size` entries of one session, within the server's byte budget."""

    def __init__(self, size: int, budget: Budget | None = None) -> None:
        self.size = size
        self.budget = budget or Budget(1 << 62)
        self._entries: collections.deque[Entry] = collections.deque()
        self._ids = itertools.count(1)

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
        body, size, digest = cut(body)
        entry = Entry(
            next(self._ids), time, method, path, query, headers, body, session, trail, None, size
        )
        entry.sha256 = digest
        if self.size:
            entry.cost = cost(entry)
            with self.budget.lock:
                if len(self._entries) >= self.size:
                    self.drop_oldest()
                self._entries.append(entry)
                self.budget.charge(self, entry)
        return entry

    def oldest_seq(self) -> int:
        return self._entries[0].seq if self._entries else 1 << 62

    def drop_oldest(self) -> None:
        """Drop the oldest entry (under the budget's lock)."""
        if self._entries:
            gone = self._entries.popleft()
            self.budget.release(self, gone.cost, not self._entries)

    @property
    def bytes(self) -> int:
        """What its entries hold, as the budget counts them."""
        with self.budget.lock:
            return sum(entry.cost for entry in self._entries)

    def __iter__(self) -> Iterator[Entry]:
        with self.budget.lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self.budget.lock:
            while self._entries:
                self.drop_oldest()

    def count(self, matcher: Matcher) -> int:
        return sum(1 for entry in self if matcher.match(entry))


def cut(body: bytes) -> tuple[bytes, int, str | None]:
    """What an entry keeps of a body: its first BODY_KEPT bytes, its size, and the SHA-256 of
    the whole when it was cut."""
    size = len(body)
    if size <= BODY_KEPT:
        return body, size, None
    return body[:BODY_KEPT], size, hashlib.sha256(body).hexdigest()


def cost(entry: Entry) -> int:
    """The bytes an entry holds, as a journal's budget counts them."""
    return ENTRY_BYTES + len(entry.body) + len(entry.path) + len(entry.query) + _held(entry.headers)


def _held(headers: Headers) -> int:
    names, values = headers
    return sum(map(len, names)) + sum(map(len, values))
