"""Recording proxied exchanges as HAR 1.2 (`--record FILE`), secrets masked.

The file is a whole HAR document after every exchange: each entry is written, on one line,
over the document's closing brackets, which are written again after it (one `pwrite`). A
SIGTERM therefore leaves a whole file; a kill -9 in the middle of a write leaves at most that
entry cut short, and `load` repairs such a file by keeping the entries that are whole.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from mockserver import log
from mockserver.masking import mask, mask_query
from mockserver.settings import VERSION

_HEAD = (
    b'{"log":{"version":"1.2","creator":{"name":"audit-api-mockserver","version":"'
    + VERSION.encode()
    + b'"},"entries":[\n'
)
_TAIL = b"\n]}}\n"
_SECRET_RESPONSE_HEADERS = {"set-cookie"}
MAX_TEXT = 16 * 1024 * 1024  # of a body kept in an entry


class HarError(Exception):
    """A file that is no HAR recording; the message names it."""


class Recorder:
    """Appends entries to a HAR file that stays whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(self._fd, _HEAD + _TAIL)
        self._end = len(_HEAD)
        self._first = True
        self._lock = threading.Lock()

    def add(self, entry: dict[str, Any]) -> None:
        raw = orjson.dumps(entry)
        with self._lock:
            data = raw if self._first else b",\n" + raw
            os.pwrite(self._fd, data + _TAIL, self._end)
            self._end += len(data)
            self._first = False


def entry(
    started: float,
    millis: float,
    request: dict[str, Any],
    response: dict[str, Any],
) -> dict[str, Any]:
    """One HAR entry (`request` and `response` made by `request_part` and `response_part`)."""
    return {
        "startedDateTime": _iso(started),
        "time": round(millis, 3),
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": round(millis, 3), "receive": 0},
    }


def request_part(
    method: str, url: str, query: str, headers: list[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    """The request as recorded: its secrets (Authorization, cookies, token-like query
    parameters) masked."""
    masked_query = mask_query(query)
    part: dict[str, Any] = {
        "method": method,
        "url": f"{url}?{masked_query}" if query else url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": n, "value": mask(n, v)} for n, v in headers],
        "queryString": [
            {"name": n, "value": v} for n, v in parse_qsl(masked_query, keep_blank_values=True)
        ],
        "headersSize": -1,
        "bodySize": len(body),
    }
    if body:
        media = next((v for n, v in headers if n.lower() == "content-type"), "")
        part["postData"] = {"mimeType": media, "text": body.decode("utf-8", "replace")}
    return part


def response_part(
    status: int, reason: str, headers: list[tuple[str, str]], body: bytes, error: str | None
) -> dict[str, Any]:
    """The response as recorded (status 0 and `_error` when the upstream did not answer)."""
    media = next((v for n, v in headers if n.lower() == "content-type"), "")
    part: dict[str, Any] = {
        "status": status,
        "statusText": reason,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [
            {"name": n, "value": "***" if n.lower() in _SECRET_RESPONSE_HEADERS else mask(n, v)}
            for n, v in headers
        ],
        "content": {
            "size": len(body),
            "mimeType": media,
            "text": body[:MAX_TEXT].decode("utf-8", "replace"),
        },
        "redirectURL": next((v for n, v in headers if n.lower() == "location"), ""),
        "headersSize": -1,
        "bodySize": len(body),
    }
    if error:
        part["_error"] = error
    return part


def load(path: Path) -> list[dict[str, Any]]:
    """The entries of a recording; a file cut short by a killed server is repaired (its whole
    entries kept, logged). HarError for a file that is not a recording."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HarError(f"{path}: cannot read it: {exc.strerror}") from None
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _repaired(path, raw)
    entries = document.get("log", {}).get("entries") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise HarError(f"{path}: not a HAR file (no log.entries)")
    return [e for e in entries if isinstance(e, dict)]


def _repaired(path: Path, raw: bytes) -> list[dict[str, Any]]:
    if not raw.startswith(_HEAD[:20]):
        raise HarError(f"{path}: not a HAR file (not JSON)")
    entries = []
    for line in raw.splitlines()[1:]:
        try:
            found = orjson.loads(line.rstrip(b","))
        except orjson.JSONDecodeError:
            continue
        if isinstance(found, dict) and "request" in found:
            entries.append(found)
    log.logger.warning("%s was cut short: repaired, %d whole entries kept", path, len(entries))
    return entries


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
