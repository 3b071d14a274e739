"""Connection faults, done to the real socket: the client sees what a broken network shows it.

The WSGI server hands over the connection: its socket in the environ (`serving.front`'s,
under uWSGI; werkzeug's; gunicorn's). A fault acts on a duplicate of its descriptor; the
server's own is then pointed at /dev/null, so whatever the server still writes or reads there
is harmless, and the app returns without an answer. The kinds (`faults.kinds`) are the
functions at the end: `reset`, `close`, `garbage` and `hold` (a `timeout`: the connection is
handed to a holder thread, so a hung request keeps none of the server's threads, any number of
clients can wait for their timeouts at once, and SIGTERM never waits for them).
"""

from __future__ import annotations

import os
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

HANG_LIMIT = 600.0  # seconds a `timeout` fault waits at most for the client to give up
GARBAGE = b"\x00\x17\x03\xffNOT-HTTP garbage from the audit-api mock\r\n\r\n"
HungUp = Callable[[], None] | None  # called when the client of a held connection gives up
OWN = "mockserver.connection"  # in the environ: the connection, once taken for a delay
SOCKET = "mockserver.socket"  # in the environ: the connection as the front holds it


class NoSocket(Exception):
    """The WSGI server in use does not hand the connection to the app."""


def take(environ: dict[str, Any]) -> tuple[int, socket.socket]:
    """The request's connection: the server's descriptor, and a socket of our own on it."""
    fd = descriptor(environ)
    return fd, socket.socket(fileno=os.dup(fd))


def descriptor(environ: dict[str, Any]) -> int:
    """The file descriptor of the request's connection, as the WSGI server holds it (or, for
    a delayed request handed over, `http.delayed`: as we hold it)."""
    given = (
        environ.get(OWN)
        or environ.get(SOCKET)
        or environ.get("werkzeug.socket")
        or environ.get("gunicorn.socket")
    )
    if given is None:
        raise NoSocket("this WSGI server does not expose the connection")
    return int(given.fileno())


def detach(fd: int) -> None:
    """Take the connection from under the server's feet, safely: its descriptor number is
    pointed at /dev/null, so what the server then reads is an end of file, and its own
    later close is harmless (with SO_LINGER zero, the last reference going is a reset)."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


# ---------------------------------------------------------------- the kinds


def reset(connection: socket.socket, hung_up: HungUp) -> None:
    """RST: `ECONNRESET` on the client."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def close(connection: socket.socket, hung_up: HungUp) -> None:
    """Closed without a byte of answer: "server disconnected"."""
    connection.shutdown(socket.SHUT_RDWR)
    connection.close()


def garbage(connection: socket.socket, hung_up: HungUp) -> None:
    """Bytes that are not HTTP, then closed."""
    connection.sendall(GARBAGE)
    close(connection, hung_up)


def hold(connection: socket.socket, hung_up: HungUp) -> None:
    """No answer at all, until the client gives up (or HANG_LIMIT passes, or the server
    stops)."""
    _holder().hold(connection, hung_up)


class _Holder:
    """Keeps `timeout` connections open, saying nothing, until each client hangs up."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        threading.Thread(target=self._run, name="timeout-holder", daemon=True).start()

    def hold(self, connection: socket.socket, hung_up: HungUp) -> None:
        connection.setblocking(False)
        with self._lock:
            deadline = time.monotonic() + HANG_LIMIT
            self._selector.register(connection, selectors.EVENT_READ, (deadline, hung_up))
        self._wake_w.send(b"\0")

    def _run(self) -> None:
        while True:
            events = self._selector.select(timeout=1.0)
            with self._lock:
                for key, _ in events:
                    if key.fileobj is self._wake_r:
                        self._wake_r.recv(4096)
                    elif _hung_up(key.fileobj):  # type: ignore[arg-type]
                        self._release(key)
                now = time.monotonic()
                for key in list(self._selector.get_map().values()):
                    if key.data is not None and key.data[0] < now:
                        self._release(key)

    def _release(self, key: selectors.SelectorKey) -> None:
        self._selector.unregister(key.fileobj)
        key.fileobj.close()  # type: ignore[union-attr]
        if key.data[1] is not None:
            key.data[1]()


def _hung_up(connection: socket.socket) -> bool:
    """The client closed its side; what else it sends (a pipelined request) is dropped."""
    try:
        return not connection.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True


_holders: dict[int, _Holder] = {}
_holders_lock = threading.Lock()


def _holder() -> _Holder:
    """This process's holder (uWSGI forks its worker after the app is built)."""
    pid = os.getpid()
    with _holders_lock:
        if pid not in _holders:
            _holders[pid] = _Holder()
        return _holders[pid]
