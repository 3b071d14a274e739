"""The kinds of fault a rule can do besides a status and a delay, each a named entry with its
implementation: what happens to the connection (a rule's `fault`) and to a streamed answer
(a rule's `stream` member). openapi/control.yaml lists the same names (a test compares them).
"""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from mockserver.faults import connection

KEEPALIVE_EVERY = 0.2  # seconds between keep-alive lines of a streamed answer


@dataclass(frozen=True)
class ConnectionFault:
    """What happens to the connection instead of an answer."""

    name: str
    description: str
    act: Callable[[socket.socket, connection.HungUp], None]


CONNECTION_FAULTS: Mapping[str, ConnectionFault] = {
    kind.name: kind
    for kind in (
        ConnectionFault("connection_reset", "the connection is reset (TCP RST)", connection.reset),
        ConnectionFault("empty_response", "closed without a byte of answer", connection.close),
        ConnectionFault(
            "malformed_response", "bytes that are not HTTP, then closed", connection.garbage
        ),
        ConnectionFault("timeout", "no answer, until the client gives up", connection.hold),
    )
}


@dataclass
class StreamParts:
    """A streamed answer as it is sent: what comes before its first item (`lead`, then
    `head`), its items (each framed), and how it ends (`tail`, or `cut`: the connection
    broken instead). Stream faults change these."""

    media: str
    head: bytes
    items: Iterator[bytes]
    tail: bytes
    headers: dict[str, str]
    lead: Iterator[bytes] = field(default_factory=lambda: iter(()))
    cut: Callable[[], None] | None = None

    def body(self) -> Iterator[bytes]:
        yield from self.lead
        if self.head:
            yield self.head
        yield from self.items
        if self.cut is not None:
            self.cut()
        elif self.tail:
            yield self.tail


@dataclass(frozen=True)
class StreamFaultKind:
    """One member of a rule's `stream`: how its value changes a streamed answer (`cut`
    breaks the connection)."""

    name: str
    description: str
    change: Callable[[StreamParts, int, Callable[[], None]], None]


def _cut_after(parts: StreamParts, count: int, cut: Callable[[], None]) -> None:
    parts.items = itertools.islice(parts.items, count)
    parts.cut = cut


def _item_count(parts: StreamParts, count: int, cut: Callable[[], None]) -> None:
    parts.headers["MPT-Item-Count"] = str(count)


def _keepalive(parts: StreamParts, millis: int, cut: Callable[[], None]) -> None:
    line = b"\n" if parts.media == "application/jsonl" else b" "
    parts.lead = _blank_lines(millis / 1000, line)


def _blank_lines(seconds: float, line: bytes) -> Iterator[bytes]:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        yield line
        time.sleep(min(KEEPALIVE_EVERY, left))


STREAM_FAULTS: Mapping[str, StreamFaultKind] = {
    kind.name: kind
    for kind in (
        StreamFaultKind(
            "cut_after", "the connection closes after this many items, mid-body", _cut_after
        ),
        StreamFaultKind(
            "item_count", "the MPT-Item-Count to declare, whatever is sent", _item_count
        ),
        StreamFaultKind(
            "keepalive_ms",
            "whitespace lines for this long before the first item, as the platform sends "
            "while it builds a large result",
            _keepalive,
        ),
    )
}


@dataclass(frozen=True)
class StreamFault:
    """A rule's `stream` member: values by kind name, applied in the registry's order."""

    given: Mapping[str, int]

    @classmethod
    def parse(cls, given: Mapping[str, Any] | None) -> StreamFault | None:
        if not given:
            return None
        return cls({k: int(given[k]) for k in STREAM_FAULTS if given.get(k) is not None})

    def change(self, parts: StreamParts, cut: Callable[[], None]) -> None:
        for name, kind in STREAM_FAULTS.items():
            if name in self.given:
                kind.change(parts, self.given[name], cut)
