"""A process's copy of what its requests read by id from Redis (`--read-cache-bytes`): an item
by its id, and a session's fault rules' version. Redis keeps it exact: client-side caching,
its tracking of the keys a client reads.

- The request connections read a value to keep with `CLIENT CACHING YES` before it (`CLIENT
  TRACKING ON ... OPTIN`, redirected to the process's listener): Redis then remembers that
  the process holds that key, and sends the key's name once it changes, whichever client
  changed it (a script, an eviction, a flush, another server).
- The listener is one connection of the process subscribed to `__redis__:invalidate`. Every
  look into the copy first takes in what the listener holds (one `recv` that does not wait)
  and forgets the keys named: a copy is served only when no message about it is waiting.
- A value read while a message came in is not kept (`generation`): it may predate the change.
- The listener lost (Redis restarted): the copy is forgotten whole, and requests go to Redis
  (a 503 while it is away) until the listener is back (`RETRY_AFTER`).
- A drain that read more than half the listener's receive buffer may have left messages in
  Redis's own output buffer: the copy is forgotten whole.

Exact across processes: a request that changed a key some process may hold waits, before its
answer goes, for one more round trip to Redis (`Link.fence`, or the journal's own write). By
then Redis has written every message the change caused, so the next request anywhere finds it
waiting. Within a process, a change forgets its keys itself (`forget`), as soon as Redis has
made it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from redis._parsers.hiredis import NOT_ENOUGH_DATA
from redis.exceptions import RedisError

from mockserver import log, sockets

INVALIDATE = b"__redis__:invalidate"
ENTRIES = 1_000_000  # values held at most (Redis tracks a million keys by default)
OVERHEAD = 200  # bytes a value costs besides its own and its key's (the dicts' entries)
RETRY_AFTER = 1.0  # seconds before a lost listener is opened again
RECEIVE_BUFFER = 1 << 20  # the listener's receive buffer asked for (the kernel may cap it)
_READ = 65536


_RECV = sockets.holding_the_gil(  # libc's `recv`, the GIL kept
    "recv", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
)
# the listener made: a connection subscribed to INVALIDATE, and its client id (`Link.listener`)
Listen = Callable[[], tuple[Any, int]]


class ReadCache:
    """The copy (values by key and field, oldest first), its listener, and their lock."""

    def __init__(self, listen: Listen, limit: int) -> None:
        self.limit = limit  # bytes held at most
        self.lock = threading.Lock()  # the listener's socket and reader, and the dicts
        self.generation = 0  # messages taken in, and forgets: a read spanning one is not kept
        self.redirect: int | None = None  # the listener's client id while it listens
        self._listen = listen
        self._values: dict[tuple[str, str], bytes] = {}
        self._fields: dict[str, set[str]] = {}  # the fields held of each key
        self._bytes = 0
        self._pid = 0  # the process the listener and the copy belong to (uWSGI forks)
        self._connection: Any = None
        self._sock: socket.socket | None = None
        self._reader: Any = None
        self._buffer = bytearray(_READ)
        self._view = (ctypes.c_char * _READ).from_buffer(self._buffer)  # held: never resized
        self._address = ctypes.addressof(self._view)
        self._fd = -1  # the listener's descriptor when it is a plain socket (`_received`)
        self._drained = _READ  # bytes a drain may read before the copy is forgotten whole
        self._retry_at = 0.0

    # ------------------------------------------------------------ looks (the lock held)

    def listening(self) -> int | None:
        """The listener's client id, once what it holds is taken in; None when there is none
        (not opened yet in this process, or lost: `open` opens it). The lock is held."""
        if self._pid != os.getpid():
            self._forked()
        if self._sock is None:
            return None
        self._drain()
        return self.redirect

    def open(self) -> None:
        """The listener opened when this process has none and has not tried for RETRY_AFTER;
        the lock is not held (a connection may take up to Redis's connect timeout: the
        process's other requests go on meanwhile)."""
        with self.lock:
            if self._pid != os.getpid():
                self._forked()
            now = time.monotonic()
            if self._sock is not None or now < self._retry_at:
                return
            self._retry_at = now + RETRY_AFTER
        try:
            connection, redirect = self._listen()
            sock: socket.socket = connection._sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            sock.setblocking(False)
        except (OSError, RedisError):  # Redis out of reach: the requests go to it meanwhile
            return
        with self.lock:
            if self._sock is None and self._pid == os.getpid():
                self._installed(connection, sock, redirect)
                return
        connection.disconnect()  # another thread opened one meanwhile

    def _installed(self, connection: Any, sock: socket.socket, redirect: int) -> None:
        self._connection, self._sock, self.redirect = connection, sock, redirect
        self._reader = connection._parser._reader  # it may hold the subscription's answer
        self._fd = sock.fileno() if type(sock) is socket.socket else -1
        self._drained = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
        self._forget(None)
        log.logger.info(
            "read cache: listening to Redis's invalidations (client %d, up to %d bytes)",
            redirect,
            self.limit,
        )

    def get(self, key: str, field: str) -> bytes | None:
        """A value held (the lock held, after `listening`)."""
        return self._values.get((key, field))

    def put(self, key: str, field: str, value: bytes) -> None:
        """A value kept (the lock held); the oldest go first past `limit` or ENTRIES."""
        size = len(value) + len(key) + len(field) + OVERHEAD
        if size > self.limit:
            return
        self._drop(key, field)
        values = self._values
        while values and (self._bytes + size > self.limit or len(values) >= ENTRIES):
            old_key, old_field = next(iter(values))
            self._drop(old_key, old_field)
        values[(key, field)] = value
        self._fields.setdefault(key, set()).add(field)
        self._bytes += size

    def state(self) -> tuple[int, int, bool]:
        """This process's values held, their bytes, and whether its listener is open."""
        with self.lock:
            if self._pid != os.getpid():
                return 0, 0, False
            return len(self._values), self._bytes, self._sock is not None

    # ------------------------------------------------------------ forgetting

    def forget(self, key: str | None) -> None:
        """What this process holds of `key` forgotten (every key: None), and any read under
        way not kept: a change of this process was made."""
        with self.lock:
            if self._pid == os.getpid():
                self._forget(key)

    def _forget(self, key: str | None) -> None:
        self.generation += 1
        if key is None:
            self._values.clear()
            self._fields.clear()
            self._bytes = 0
            return
        for field in list(self._fields.get(key, ())):
            self._drop(key, field)

    def _drop(self, key: str, field: str) -> None:
        value = self._values.pop((key, field), None)
        if value is None:
            return
        self._bytes -= len(value) + len(key) + len(field) + OVERHEAD
        fields = self._fields[key]
        fields.discard(field)
        if not fields:
            del self._fields[key]

    # ------------------------------------------------------------ the listener

    def _forked(self) -> None:
        """A forked worker: the parent's copy and listener are not its own (its socket left
        open: the parent's)."""
        self._pid = os.getpid()
        self._closed()

    def _closed(self) -> Any:
        """No listener, nothing held; the connection there was (or None)."""
        connection = self._connection
        self._connection = self._sock = self._reader = None
        self._fd = -1
        self.redirect = None
        self._forget(None)
        return connection

    def _drain(self) -> None:
        """The messages the listener holds taken in: each invalidation forgets its keys (a
        flush: every key); the listener lost forgets everything."""
        sock, reader, buffer = self._sock, self._reader, self._buffer
        assert sock is not None
        taken = 0
        while True:
            try:
                read = self._received(sock)
            except OSError:
                self._lost()
                return
            if read < 0:  # nothing more now
                break
            if not read:
                self._lost()
                return
            taken += read
            reader.feed(buffer, 0, read)
            message = reader.gets()
            while message is not NOT_ENOUGH_DATA:
                self._took(message)
                message = reader.gets()
            if read < len(buffer):
                break
        if taken > self._drained:  # Redis may hold more it could not send: start again
            self._forget(None)

    def _received(self, sock: socket.socket) -> int:
        """Bytes read into the buffer without waiting: -1 when none are there, 0 when Redis
        closed the connection. A plain socket is read by libc's `recv` holding the GIL (the
        socket module would let it go, and hand it to another thread, for a call that never
        waits: a thread switch on every look); a TLS one by the socket module."""
        if self._fd < 0 or _RECV is None:
            try:
                return sock.recv_into(self._buffer)
            except (BlockingIOError, ssl.SSLWantReadError):
                return -1
        while True:
            read: int = _RECV(self._fd, self._address, _READ, socket.MSG_DONTWAIT)
            if read >= 0:
                return read
            error = ctypes.get_errno()
            if error in (errno.EAGAIN, errno.EWOULDBLOCK):
                return -1
            if error != errno.EINTR:
                raise OSError(error, os.strerror(error))

    def _took(self, message: Any) -> None:
        """One message: an invalidation (RESP3: a push `invalidate KEYS`; RESP2: a message on
        `__redis__:invalidate`), whose keys are forgotten (none: a flush, every key); any
        other (the subscription's confirmation) changes nothing."""
        if not isinstance(message, list):
            return
        if len(message) == 2 and message[0] == b"invalidate":
            keys = message[1]
        elif len(message) == 3 and message[0] == b"message" and message[1] == INVALIDATE:
            keys = message[2]
        else:
            return
        if keys is None:
            self._forget(None)
        for key in keys or ():
            self._forget(key.decode())

    def _lost(self) -> None:
        """The listener's connection closed or broken: nothing held can be trusted."""
        log.logger.warning("read cache: Redis's messages lost; the copy is forgotten")
        connection = self._closed()
        if connection is not None:
            connection.disconnect()
