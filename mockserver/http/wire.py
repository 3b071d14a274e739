"""What uWSGI's HTTP/1.1 socket hands the app as it came, put right before anything else
reads the request: an absolute-form target (`GET http://host/path`) served as its path, an HTTP
version we do not speak answered 505, a target over MAX_TARGET bytes answered 414, more than
MAX_FIELDS header fields or more than MAX_HEADER_BYTES of them 431, `Expect: 100-continue`
answered `100 Continue` before the body is read, and pipelined requests refused visibly.

uWSGI itself drops (TCP reset) a request whose request line and headers do not fit its buffer
(`--buffer-size`, 64 KiB), and more header fields than its `--max-vars` allow; the limits
here are below those.

Pipelining: uWSGI reads what the client has sent with the request's head, answers the first
request and closes the connection when bytes past it were read (`proto_parser_remains`), which
the app cannot see. `read_ahead` finds them from the kernel's count of the bytes received on
the connection (`TCP_INFO`), less those still unread (`FIONREAD`) and those of the requests
before it on the connection: any left over were read ahead, so the answer says
`Connection: close` (RFC 9112 9.3.2: the client retries the rest on a new connection).
"""

from __future__ import annotations

import fcntl
import operator
import os
import socket
import struct
import termios
from collections.abc import Callable
from contextlib import suppress
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
    fields = _fields(environ)
    if fields.count > MAX_FIELDS:
        return Problem(431, f"The request has more than {MAX_FIELDS} header fields.")
    head = fields.size(environ)
    if head > MAX_HEADER_BYTES:
        return Problem(
            431,
            f"The request's header fields take {head} bytes, more than the limit of "
            f"{MAX_HEADER_BYTES} bytes (32 KiB).",
        )
    if "uwsgi.version" in environ:
        read_ahead(environ, len(target) + head)
    if target[:1] != "/" and target[:8].lower().startswith(("http://", "https://")):
        _origin_form(environ, target)
    if "HTTP_EXPECT" in environ and environ["HTTP_EXPECT"].lower() == "100-continue":
        _continue(environ)
    return None


class _Fields:
    """The header fields of one environ key layout: their count and what their names take of
    the head's bytes, and a getter of their values. A client's requests have the same keys in
    the same order, so this is worked out once per layout (`_fields`), not per request."""

    __slots__ = ("count", "names", "values")

    def __init__(self, layout: tuple[str, ...]) -> None:
        http = [key for key in layout if key[:5] == "HTTP_"]
        content = [key for key in _CONTENT if key in layout]
        self.count = len(http) + sum(1 for key in layout if key[:8] == "CONTENT_")
        # as a client writes them (`Name: value` and CRLF): an HTTP_ key is 5 longer than its
        # name, uWSGI keeps a value without its leading spaces, and one of a field sent twice
        # joined with a comma; the CONTENT_ keys are their names' length
        self.names = sum(len(key) - 1 for key in http) + sum(len(key) + 4 for key in content)
        keys = [*http, *content]
        self.values: Callable[[Environ], Any] | None = operator.itemgetter(*keys) if keys else None
        if len(keys) == 1:
            self.values = lambda environ, key=keys[0]: (environ[key],)

    def size(self, environ: Environ) -> int:
        """The header fields' bytes in this request."""
        if self.values is None:
            return self.names
        return self.names + sum(map(len, self.values(environ)))


def _fields(environ: Environ) -> _Fields:
    layout = tuple(environ)
    found = _LAYOUTS.get(layout)
    if found is None:
        if len(_LAYOUTS) > 256:  # a client that varies its headers: worked out each time
            _LAYOUTS.clear()
        found = _LAYOUTS[layout] = _Fields(layout)
    return found


_LAYOUTS: dict[tuple[str, ...], _Fields] = {}
_CONTENT = ("CONTENT_TYPE", "CONTENT_LENGTH")
_TCP_INFO = struct.Struct("=128xQ64xQ")  # struct tcp_info: tcpi_bytes_received, tcpi_bytes_sent
_COUNT = struct.Struct("i")
_ZERO = bytes(_COUNT.size)
_probes: dict[int, socket.socket] = {}  # by descriptor number, kept (never closed) for getsockopt
_consumed: dict[int, int] = {}  # a connection's bytes its requests took, by descriptor number
READ_AHEAD = "mockserver.read_ahead"  # in the environ: bytes past the request were read


def read_ahead(environ: Environ, head: int) -> None:
    """Note in the environ (READ_AHEAD) when uWSGI read bytes past this request on its
    connection: a pipelined request, which it will drop. `head` is the target's and the header
    fields' bytes; the request line's other parts, the blank line and the body are added."""
    import uwsgi

    fd = int(uwsgi.connection_fd())
    probe = _probes.get(fd)
    if probe is None:
        probe = _probes[fd] = socket.socket(fileno=fd)
    try:
        info = probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
        received, sent = _TCP_INFO.unpack(info)
    except (OSError, struct.error):  # not TCP (a UNIX socket), or a kernel before 4.19
        return
    before = 0 if sent == 0 else _consumed.get(fd)  # nothing answered yet: its first request
    if before is None or "HTTP_TRANSFER_ENCODING" in environ:
        _consumed.pop(fd, None)  # a chunked body's framing is not known: not told for the rest
        return  # of this connection
    length = environ.get("CONTENT_LENGTH", "")
    size = len(environ["REQUEST_METHOD"]) + len(environ["SERVER_PROTOCOL"]) + head + 6
    _consumed[fd] = before = before + size + (int(length) if length.isdigit() else 0)
    if received > before and received - before > _unread(fd):  # more than is still unread
        environ[READ_AHEAD] = True


def _unread(fd: int) -> int:
    """The bytes the kernel holds for the connection, not yet read (by uWSGI)."""
    try:
        return int(_COUNT.unpack(fcntl.ioctl(fd, termios.FIONREAD, _ZERO))[0])
    except OSError:
        return 0


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
