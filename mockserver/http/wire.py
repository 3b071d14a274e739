"""The request's framing checked before anything else reads it: an absolute-form target
(`GET http://host/path`) served as its path, an HTTP version we do not speak answered 505, a
target over MAX_TARGET bytes answered 414, more than MAX_FIELDS header fields or more than
MAX_HEADER_BYTES of them 431.

Under the console script `serving.front` reads the request (and answers what is past its own
HEAD_LIMIT, pipelining and `Expect` itself); it hands the sizes it counted in the environ
(HEAD_SIZE), which spares counting them again here.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlsplit

from mockserver import codec
from mockserver.faults import connection
from mockserver.problems import Problem, trace_id
from mockserver.respond import PROBLEM_JSON, Environ, StartResponse

VERSIONS = ("HTTP/1.1", "HTTP/1.0")
MAX_TARGET = 32 * 1024  # bytes of the request target (path and query)
MAX_FIELDS = 100  # header fields
MAX_HEADER_BYTES = 32 * 1024  # bytes of the header fields together
HEAD_SIZE = "mockserver.head_size"  # in the environ: (header fields, their bytes), when counted


def refusal(environ: Environ) -> Problem | None:
    """The problem this request is refused with before the app sees it, if any; else the
    request made ready for the app (absolute-form target, `Expect: 100-continue`)."""
    if environ.get("SERVER_PROTOCOL") not in VERSIONS:
        return Problem(505, f"This server speaks {' and '.join(VERSIONS)} only.")
    target = environ.get("REQUEST_URI", "")
    if len(target) > MAX_TARGET:
        return Problem(  # worded as `contract.validation.check_target`'s, for a URL uWSGI cut
            414,
            f"The request is too large for the server to read whole (a URL of {len(target)} "
            "bytes): keep the URL under about 32 KiB.",
        )
    fields, head = environ.get(HEAD_SIZE) or (_fields(environ), _head_bytes(environ))
    if fields > MAX_FIELDS:
        return Problem(431, f"The request has more than {MAX_FIELDS} header fields.")
    if head > MAX_HEADER_BYTES:
        return Problem(
            431,
            f"The request's header fields take {head} bytes, more than the limit of "
            f"{MAX_HEADER_BYTES} bytes (32 KiB).",
        )
    if target[:1] != "/" and target[:8].lower().startswith(("http://", "https://")):
        _origin_form(environ, target)
    return None


def _fields(environ: Environ) -> int:
    """The request's header fields (Content-Type and Content-Length are not HTTP_ keys); 0 when
    the environ is too small to hold more than MAX_FIELDS."""
    if len(environ) <= MAX_FIELDS:  # fewer keys than the limit: fewer fields too
        return 0
    return sum(1 for key in environ if key[:5] == "HTTP_" or key[:8] == "CONTENT_")


def _head_bytes(environ: Environ) -> int:
    """The header fields' bytes, as a client writes them (`Name: value` and CRLF): uWSGI keeps
    a value without its leading spaces, and one of a field sent twice joined with a comma."""
    fields = [key for key in environ if key[:5] == "HTTP_"]
    size = len("".join(fields)) + len("".join(map(environ.__getitem__, fields))) - len(fields)
    for key in _CONTENT:  # the name (5 shorter than the key), ": " and CRLF; these two in full
        if key in environ:
            size += len(key) + 4 + len(environ[key])
    return size


_CONTENT = ("CONTENT_TYPE", "CONTENT_LENGTH")


def closing(start_response: StartResponse) -> StartResponse:
    """`start_response` with `Connection: close` added to the answer's headers."""

    def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
        return start_response(status, [*headers, ("Connection", "close")], *rest)

    return start


def _origin_form(environ: Environ, target: str) -> None:
    """`GET http://host/path?q` served as `GET /path?q` with `Host: host` (RFC 9112 3.2.2)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    environ["HTTP_HOST"] = parts.netloc
    environ["REQUEST_URI"] = path + (f"?{parts.query}" if parts.query else "")
    environ["PATH_INFO"] = unquote(path, "latin-1")
    environ["QUERY_STRING"] = parts.query


def answer_raw(environ: Environ, problem: Problem) -> None:
    """A refusal written on the connection itself, which is then closed: for a version we do
    not speak, uWSGI would echo that version on its status line."""
    body = codec.dumps(problem.body(trace_id(environ.get("HTTP_TRACEPARENT"))))
    head = (
        f"HTTP/1.1 {problem.status} {problem.title or _reason(problem.status)}\r\n"
        f"Content-Type: {PROBLEM_JSON}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    fd, own = connection.take(environ)
    try:
        own.sendall(head.encode() + body)
        connection.close(own, None)
    finally:
        connection.detach(fd)


def _reason(status: int) -> str:
    return HTTPStatus(status).phrase
