"""Connection faults, done to the real socket: the client sees what a broken network shows it.

* `connection_reset`: the connection is reset (RST): `ECONNRESET` on the client;
* `empty_response`: closed without a byte of answer: "server disconnected";
* `malformed_response`: bytes that are not HTTP, then closed;
* `timeout`: no answer at all, until the client gives up (or `HANG_LIMIT` passes).

The WSGI server hands over the connection: uWSGI's `connection_fd()`, werkzeug's and gunicorn's
socket in the environ. The app then returns without starting a response; the server finds the
connection closed (or pointed at /dev/null, after a reset) and moves on.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from typing import Any

HANG_LIMIT = 600.0  # seconds a `timeout` fault waits at most for the client to give up
GARBAGE = b"\x00\x17\x03\xffNOT-HTTP garbage from the audit-api mock\r\n\r\n"


class NoSocket(Exception):
    """The WSGI server in use does not hand the connection to the app."""


def _fd(environ: dict[str, Any]) -> int:
    """The file descriptor of the request's connection, as the WSGI server holds it."""
    given = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
    if given is not None:
        return int(given.fileno())
    try:
        import uwsgi  # only importable inside uWSGI
    except ImportError as exc:
        raise NoSocket("this WSGI server does not expose the connection") from exc
    return int(uwsgi.connection_fd())


def apply(fault: str, environ: dict[str, Any]) -> None:
    """Do a connection fault; the caller then returns an empty body without a status."""
    fd = _fd(environ)
    with socket.socket(fileno=os.dup(fd)) as connection:
        if fault == "connection_reset":
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault == "malformed_response":
            connection.sendall(GARBAGE)
        elif fault == "timeout":
            _wait_for_hang_up(connection)
        if fault != "connection_reset":
            connection.shutdown(socket.SHUT_RDWR)
    if fault == "connection_reset":
        _drop(fd)


def _drop(fd: int) -> None:
    """Close the connection now, under the server's feet but safely: its descriptor number
    is pointed at /dev/null (so the server's own later close is harmless), and the socket's
    last reference goes: with SO_LINGER zero, that close is a reset."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _wait_for_hang_up(connection: socket.socket) -> None:
    """Say nothing until the client closes its side (or HANG_LIMIT passes)."""
    deadline = time.monotonic() + HANG_LIMIT
    while time.monotonic() < deadline:
        readable, _, _ = select.select([connection], [], [], 1.0)
        if readable:
            try:
                if not connection.recv(65536, socket.MSG_PEEK):
                    return  # the client hung up
            except OSError:
                return
            time.sleep(0.05)  # it sent more (a pipelined request): keep waiting
