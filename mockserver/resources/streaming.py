"""Streaming reads (`MPT-Streaming: true`), as the platform answers them: JSON lines
(`Accept: application/jsonl`, the default) or the JSON envelope (`Accept: application/json`),
`MPT-Streaming: true` and `MPT-Item-Count` in the headers, the body made record by record as
it is sent (the stored bytes, never the whole body in memory).

A fault rule's `stream` member changes its parts (`faults.kinds`): `cut_after` K records
(the connection then closes mid-body), a wrong `item_count`, or `keepalive_ms` of whitespace
lines before the first record, as the platform sends while it builds a large result set.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from mockserver import codec
from mockserver.faults.kinds import StreamParts
from mockserver.problems import Problem, invalid

JSONL = "application/jsonl"
JSON = "application/json"


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


def parts(media: str, items: Iterable[bytes], meta: dict[str, Any], count: int) -> StreamParts:
    """The answer, made item by item as it is sent: JSON lines, or the JSON envelope."""
    headers = {
        "Content-Type": f"{media}; charset=utf-8",
        "MPT-Streaming": "true",
        "MPT-Item-Count": str(count),
    }
    if media == JSONL:
        return StreamParts(media, b"", (raw + b"\n" for raw in items), b"", headers)
    head = b'{"$meta":' + codec.dumps(meta) + b',"data":['
    framed = (raw if number == 0 else b"," + raw for number, raw in enumerate(items))
    return StreamParts(media, head, framed, b"]}\n", headers)


def chunked(parts: Iterable[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked framing, for a WSGI server that sends a body of unknown length as it
    is (uWSGI's HTTP socket); servers that chunk themselves (werkzeug) are given the parts."""
    for part in parts:
        if part:
            yield b"%x\r\n%s\r\n" % (len(part), part)
    yield b"0\r\n\r\n"
