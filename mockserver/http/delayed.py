"""A delayed request served off the WSGI server's threads (under uWSGI, whose threads are
few: `--threads`): the front hands it over, and the worker thread goes back at once.

`hand_over` takes the connection from under uWSGI (`faults.connection.take`, then `detach`)
and gives it to `faults.delay_loop`, which waits out the delay for every such request on one
thread. When the delay is over the request is served on the loop's pool, as it would have
been in the worker thread (its body was read before the hand-over), and its answer written
on the connection here (`_Answer`), in HTTP/1.1: the status line, the app's headers, a
`Content-Length` when the body is known whole (a stream keeps its own framing), no body for
a HEAD, a 1xx, 204 or 304, and `Connection: close`: the connection is then closed, and a
kept-alive client opens a new one for its next request. A connection fault after the delay,
or a stream's cut, acts on the same connection (`faults.connection.OWN`). When the client
hangs up during the delay, nothing is served or sent.
"""

from __future__ import annotations

import io
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import suppress
from typing import Any

from mockserver.faults import connection, delay_loop
from mockserver.respond import Environ, StartResponse

Served = Callable[[StartResponse], Iterable[bytes]]  # the request served, after its delay
SEND_TIMEOUT = 30.0  # seconds a write of the answer waits for a client that reads nothing
_HOP = ("connection", "keep-alive")  # headers of the connection: ours say `close`
_DRAIN = 64  # reads of what the client sent meanwhile, at most, before the connection closes


def offloaded(environ: Environ) -> bool:
    """Whether a delay is handed over: under uWSGI. Other servers (werkzeug's, in-process
    tests) give each connection a thread of its own; there the thread waits
    (`faults.waiting`)."""
    return "uwsgi.version" in environ


def hand_over(
    environ: Environ,
    start_response: StartResponse,
    seconds: float,
    body: bytes,
    due: Served,
    gone: Served,
    written: Callable[[], None],
) -> list[bytes]:
    """The request handed to the delay loop: after `seconds`, `due` serves it and its answer
    is written; if its client hangs up first, `gone` is called (nothing is written). Either
    way `written` follows. `delay_loop.Full` when the loop has no room: then nothing was
    taken, and the server still has the connection."""
    try:
        fd, own = connection.take(environ)
    except OSError as exc:  # out of descriptors
        raise delay_loop.Full(f"The server cannot hold one more delayed request: {exc}.") from exc
    environ[connection.OWN] = own
    environ["wsgi.input"] = io.BytesIO(body)  # the server's own reads no more once it is back
    environ["wsgi.errors"] = sys.stderr
    try:
        delay_loop.hold(
            own,
            seconds,
            len(body),
            lambda: _serve(own, environ, due, written),
            lambda: _end(own, gone, written),
        )
    except (delay_loop.Full, OSError) as exc:
        del environ[connection.OWN]
        own.close()
        if isinstance(exc, delay_loop.Full):
            raise
        raise delay_loop.Full(f"The server cannot hold one more delayed request: {exc}.") from exc
    connection.detach(fd)
    start_response("200 OK", [])  # what the server writes now goes to /dev/null
    return []


def _serve(own: socket.socket, environ: Environ, due: Served, written: Callable[[], None]) -> None:
    try:
        answer = _Answer(environ)
        result = due(answer.start)
        try:
            answer.write(own, result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    finally:
        try:
            written()
        finally:
            _close(own)


def _end(own: socket.socket, gone: Served, written: Callable[[], None]) -> None:
    try:
        gone(_nothing)
    finally:
        try:
            written()
        finally:
            own.close()


def _nothing(status: str, headers: list[tuple[str, str]], *rest: Any) -> Callable[[bytes], None]:
    return _no_write


def _no_write(data: bytes) -> None:
    raise RuntimeError("a delayed answer is written from the app's iterable only")


class _Answer:
    """The app's answer (status, headers, body), written on the connection in HTTP/1.1."""

    def __init__(self, environ: Environ) -> None:
        self.head_only = environ.get("REQUEST_METHOD") == "HEAD"
        self.status = "500 Internal Server Error"
        self.headers: list[tuple[str, str]] = []

    def start(
        self, status: str, headers: list[tuple[str, str]], *rest: Any
    ) -> Callable[[bytes], None]:
        self.status, self.headers = status, list(headers)
        return _no_write

    def write(self, own: socket.socket, result: Iterable[bytes]) -> None:
        """The answer sent: its head with the first part of its body (each later part as it
        is made: a stream's parts reach the client before it is cut). A connection the app
        broke meanwhile (a fault, a stream's cut) or a client gone ends the writing."""
        code = int(self.status.split(" ", 1)[0])
        bodiless = self.head_only or code < 200 or code in (204, 304)
        headers = [(name, value) for name, value in self.headers if name.lower() not in _HOP]
        named = {name.lower() for name, _ in headers}
        whole = isinstance(result, list | tuple)
        if whole and not bodiless and not {"content-length", "transfer-encoding"} & named:
            headers.append(("Content-Length", str(sum(len(part) for part in result))))
        lines = [f"HTTP/1.1 {self.status}\r\n", *(f"{n}: {v}\r\n" for n, v in headers)]
        head = "".join([*lines, "Connection: close\r\n\r\n"]).encode("latin-1")
        parts: Iterator[bytes] = iter(() if bodiless else result)
        with suppress(OSError):  # the client left, or the app broke the connection
            own.settimeout(SEND_TIMEOUT)
            with suppress(OSError):  # not TCP (a UNIX socket)
                own.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if whole:
                own.sendall(head + b"".join(parts))
                return
            first = next(parts, b"")
            own.sendall(head + first)
            for part in parts:
                if part:
                    own.sendall(part)


def _close(own: socket.socket) -> None:
    """Our side closed after the answer: a FIN, then what the client sent meanwhile (a
    pipelined request) is read away, so that the close is not a reset that could destroy
    the answer on its way."""
    with suppress(OSError):
        own.shutdown(socket.SHUT_WR)
        own.setblocking(False)
        for _ in range(_DRAIN):
            if not own.recv(65536):
                break
    own.close()
