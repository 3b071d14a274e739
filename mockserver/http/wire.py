"""What uWSGI's HTTP/1.1 socket hands the app as it came, put right before anything else
reads the request: an absolute-form target (`GET http://host/path`) served as its path, an HTTP
version we do not speak answered 505, a target over MAX_TARGET bytes answered 414, more than
MAX_FIELDS header fields 431, and `Expect: 100-continue` answered `100 Continue` before the
body is read.

uWSGI itself drops (TCP reset) a request whose request line and headers do not fit its buffer
(`--buffer-size`, 64 KiB), and more header fields than its `--max-vars` allow; the limits
here are below those. The checks cost a few dictionary look-ups per request: the fields are
counted only when the environ is large enough to hold too many.
"""

from __future__ import annotations

import os
from contextlib import suppress
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from mockserver import codec
from mockserver.faults import connection
from mockserver.problems import Problem, trace_id
from mockserver.respond import PROBLEM_JSON, Environ

VERSIONS = ("HTTP/1.1", "HTTP/1.0")
MAX_TARGET = 32 * 1024  # bytes of the request target (path and query)
MAX_FIELDS = 100  # header fields
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


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
    if len(environ) > MAX_FIELDS and _fields(environ) > MAX_FIELDS:  # counted only then
        return Problem(431, f"The request has more than {MAX_FIELDS} header fields.")
    if target[:1] != "/" and target[:8].lower().startswith(("http://", "https://")):
        _origin_form(environ, target)
    if "HTTP_EXPECT" in environ and environ["HTTP_EXPECT"].lower() == "100-continue":
        _continue(environ)
    return None


def _fields(environ: Environ) -> int:
    """The request's header fields (Content-Type and Content-Length are not HTTP_ keys)."""
    return sum(1 for key in environ if key[:5] == "HTTP_" or key[:8] == "CONTENT_")


def _origin_form(environ: Environ, target: str) -> None:
    """`GET http://host/path?q` served as `GET /path?q` with `Host: host` (RFC 9112 3.2.2)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    environ["HTTP_HOST"] = parts.netloc
    environ["REQUEST_URI"] = path + (f"?{parts.query}" if parts.query else "")
    environ["PATH_INFO"] = unquote(path, "latin-1")
    environ["QUERY_STRING"] = parts.query


def _continue(environ: Environ) -> None:
    """`100 Continue`, written on the connection before the app reads the body (uWSGI does not
    answer `Expect` on its HTTP socket, so a client such as curl waits a second otherwise)."""
    if "uwsgi.version" not in environ:  # other servers answer `Expect` themselves
        return
    with suppress(OSError):  # the client left: the body read then says so
        os.write(connection.descriptor(environ), CONTINUE)


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
