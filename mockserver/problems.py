"""RFC 9457 problem details in the platform's (ASP.NET Core) shape, and W3C trace ids."""

from __future__ import annotations

import os
import re
from functools import cache
from http import HTTPStatus
from typing import Any

# ASP.NET Core's defaults: the RFC section of each status, and the titles it writes.
_RFC9110 = "https://tools.ietf.org/html/rfc9110#section-"
_SECTIONS = {
    400: "15.5.1",
    401: "15.5.2",
    402: "15.5.3",
    403: "15.5.4",
    404: "15.5.5",
    405: "15.5.6",
    406: "15.5.7",
    407: "15.5.8",
    408: "15.5.9",
    409: "15.5.10",
    410: "15.5.11",
    411: "15.5.12",
    412: "15.5.13",
    413: "15.5.14",
    414: "15.5.15",
    415: "15.5.16",
    416: "15.5.17",
    417: "15.5.18",
    421: "15.5.20",
    422: "15.5.21",
    426: "15.5.22",
    500: "15.6.1",
    501: "15.6.2",
    502: "15.6.3",
    503: "15.6.4",
    504: "15.6.5",
    505: "15.6.6",
}
_OTHER_TYPES = {429: "https://tools.ietf.org/html/rfc6585#section-4"}
_TITLES = {
    413: "Payload Too Large",
    500: "An error occurred while processing your request.",
}
VALIDATION_DETAIL = "One or more validation errors occurred."

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def problem_type(status: int) -> str:
    """The `type` URI ASP.NET Core writes for a status."""
    if status in _SECTIONS:
        return _RFC9110 + _SECTIONS[status]
    return _OTHER_TYPES.get(status, "about:blank")


def problem_title(status: int) -> str:
    """The `title` ASP.NET Core writes for a status."""
    if status in _TITLES:
        return _TITLES[status]
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"Status {status}"


@cache
def status_line(status: int) -> str:
    """`201 Created`, as Kestrel writes it (werkzeug would write `201 CREATED`)."""
    reason = "Payload Too Large" if status == 413 else problem_title(status)
    if status == 500:
        reason = "Internal Server Error"
    return f"{status} {reason}"


def trace_id(traceparent: str | None) -> str:
    """A W3C trace id `00-<trace>-<span>-00`, continuing the caller's trace when it sent one."""
    trace = None
    if traceparent:
        match = _TRACEPARENT.match(traceparent.strip().lower())
        if match and match.group(1) != "0" * 32:
            trace = match.group(1)
    return f"00-{trace or os.urandom(16).hex()}-{os.urandom(8).hex()}-00"


class Problem(Exception):
    """An error answer: raising it anywhere in a request gives a problem-details response."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail or problem_title(status))
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.title = title

    def body(self, trace: str) -> dict[str, Any]:
        """The JSON body, with the request's trace id."""
        body: dict[str, Any] = {
            "type": problem_type(self.status),
            "title": self.title or problem_title(self.status),
            "status": self.status,
        }
        if self.detail is not None:
            body["detail"] = self.detail
        body["traceId"] = trace
        if self.errors:
            body["errors"] = self.errors
        return body


def invalid(errors: dict[str, list[str]], detail: str = VALIDATION_DETAIL) -> Problem:
    """The 400 answer to a request that breaks the contract; each message once per field (two
    checks of one schema may word one violation alike)."""
    unique = {name: list(dict.fromkeys(messages)) for name, messages in errors.items()}
    return Problem(400, detail, errors=unique)
