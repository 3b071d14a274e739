"""Streaming reads (`MPT-Streaming: true`), as the platform answers them: JSON lines
(`Accept: application/jsonl`, the default) or the JSON envelope (`Accept: application/json`),
`MPT-Streaming: true` and `MPT-Item-Count` in the headers, the body made record by record as
it is sent (the stored bytes, never the whole body in memory).

A fault rule's `stream` member reaches into it: `cut_after` K records (the connection then
closes mid-body), a wrong `item_count`, or `keepalive_ms` of whitespace lines before the first
record, as the platform sends while it builds a large result set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from mockserver import codec
from mockserver.problems import Problem, invalid

JSONL = "application/jsonl"
JSON = "application/json"
KEEPALIVE_EVERY = 0.2  # seconds between keep-alive lines


@dataclass(frozen=True)
class StreamFault:
    """What a rule's `stream` member does to a streamed answer."""

    cut_after: int | None = None
    item_count: int | None = None
    keepalive_ms: float = 0.0

    @classmethod
    def parse(cls, given: dict[str, Any] | None) -> StreamFault | None:
        if not given:
            return None
        return cls(given.get("cut_after"), given.get("item_count"), given.get("keepalive_ms", 0))


def media_type(accept: str | None) -> str:
    """The format asked for: JSON lines unless JSON is preferred; 406 for anything else."""
    if not accept or not accept.strip():
        return JSONL
    best = parse_accept_header(accept, MIMEAccept).best_match([JSONL, JSON])
    if best is None:
        raise Problem(
            406,
            f"Streaming answers in {JSONL} or {JSON}; the request accepts only: {accept}.",
        )
    return str(best)


def refuse_offset(params: dict[str, str]) -> None:
    """A streamed read takes no `offset` (400), as on the platform."""
    if "offset" in params:
        raise invalid({"offset": ["offset is not supported in streaming mode."]})


def check_cap(count: int, cap: int) -> None:
    """A streamed read holds at most `cap` items (413 naming the cap)."""
    if count > cap:
        raise Problem(
            413,
            f"The result has {count} items, more than the export cap of {cap} "
            f"(maxExportKeys: {cap}); narrow the filter or set a limit.",
        )


def headers(media: str, count: int, fault: StreamFault | None) -> dict[str, str]:
    declared = fault.item_count if fault and fault.item_count is not None else count
    return {
        "Content-Type": f"{media}; charset=utf-8",
        "MPT-Streaming": "true",
        "MPT-Item-Count": str(declared),
    }


def body(
    media: str,
    items: Iterable[bytes],
    meta: dict[str, Any],
    fault: StreamFault | None,
    cut: Callable[[], None],
) -> Iterator[bytes]:
    """The body, item by item; with a `cut_after` fault, `cut()` breaks the connection after
    that many items (or all of them, when there are fewer), before the body ends."""
    limit = fault.cut_after if fault else None
    if fault and fault.keepalive_ms:
        yield from _keepalive(fault.keepalive_ms / 1000, b"\n" if media == JSONL else b" ")
    if media == JSON:
        yield b'{"$meta":' + codec.dumps(meta) + b',"data":['
    for number, raw in enumerate(items):
        if limit is not None and number >= limit:
            break
        if media == JSONL:
            yield raw + b"\n"
        else:
            yield raw if number == 0 else b"," + raw
    if limit is not None:
        cut()
        return
    if media == JSON:
        yield b"]}\n"


def _keepalive(seconds: float, line: bytes) -> Iterator[bytes]:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        yield line
        time.sleep(min(KEEPALIVE_EVERY, left))


def chunked(parts: Iterable[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked framing, for a WSGI server that sends a body of unknown length as it
    is (uWSGI's HTTP socket); servers that chunk themselves (werkzeug) are given the parts."""
    for part in parts:
        if part:
            yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"
