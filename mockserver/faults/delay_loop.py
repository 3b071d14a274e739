"""Delays that hold no worker thread: one loop per process keeps every delayed request's
connection, and a small pool answers each once its delay is over.

The front hands a delayed request over (`hold`: its connection, already taken from the WSGI
server, `faults.connection.take`) and the worker thread goes back to the server at once. One
thread waits on every held connection with `epoll`, for the peer's FIN or a reset only (a
pipelined request's bytes do not end the wait, as with `faults.waiting`): a client that
hangs up ends its wait there and then (`gone`); at its deadline a request is `due`; and
`waiting.STOPPING` (SIGTERM) makes every one due at once. Both are run on a pool of `POOL`
threads, never on the loop's.

What is held is bounded: at most `LIMIT` requests and `BYTES` of their bodies; past either,
`hold` raises `Full` (the front answers 503, naming the limit).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mockserver import log
from mockserver.faults import waiting

LIMIT = 4096  # delayed requests held at once by a process
BYTES = 64 * 1024 * 1024  # bytes of their bodies, together
POOL = 8  # threads answering the requests whose delay is over
_GONE = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR


class Full(Exception):
    """No room for one more delayed request; the message names the limit."""


@dataclass(eq=False, slots=True)
class _Held:
    connection: socket.socket
    deadline: float
    size: int
    due: Callable[[], None]
    gone: Callable[[], None]
    done: bool = False


class _Loop:
    """The held connections, their deadlines, and the pool that answers them."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._epoll.register(self._wake_r.fileno(), select.EPOLLIN)
        self._held: dict[int, _Held] = {}  # by descriptor
        self._deadlines: list[tuple[float, int, _Held]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self.bytes = 0  # of the bodies of the requests held or being answered
        self.busy = 0  # requests held or being answered
        self._pool = ThreadPoolExecutor(POOL, thread_name_prefix="delayed")
        threading.Thread(target=self._run, name="delay-loop", daemon=True).start()

    def hold(
        self,
        connection: socket.socket,
        seconds: float,
        size: int,
        due: Callable[[], None],
        gone: Callable[[], None],
    ) -> None:
        """Keep `connection` until `seconds` pass (then `due`) or its client hangs up (then
        `gone`); each is run once, on the pool, and owns the connection from then on."""
        held = _Held(connection, time.monotonic() + seconds, size, due, gone)
        with self._lock:
            _check_room(self.busy, self.bytes, size)
            self._epoll.register(connection.fileno(), _GONE)
            self._held[connection.fileno()] = held
            heapq.heappush(self._deadlines, (held.deadline, next(self._order), held))
            self.bytes += size
            self.busy += 1
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        while True:
            events = self._epoll.poll(self._timeout())
            ended: list[tuple[_Held, Callable[[], None]]] = []
            with self._lock:
                for fd, _ in events:
                    if fd == self._wake_r.fileno():
                        _drain(self._wake_r)
                    elif (held := self._held.get(fd)) is not None:
                        ended.append((self._release(held), held.gone))
                now, stopping = time.monotonic(), waiting.STOPPING.is_set()
                while self._deadlines and (stopping or self._deadlines[0][0] <= now):
                    held = heapq.heappop(self._deadlines)[2]
                    if not held.done:
                        ended.append((self._release(held), held.due))
            for held, callback in ended:
                self._pool.submit(self._answer, held, callback)

    def _timeout(self) -> float:
        """Seconds to the next deadline, at most `waiting.SLICE` (STOPPING is looked at that
        often) while anything is held; -1 (no end) while nothing is."""
        with self._lock:
            while self._deadlines and self._deadlines[0][2].done:
                heapq.heappop(self._deadlines)
            if not self._deadlines:
                return -1
            left = self._deadlines[0][0] - time.monotonic()
        return max(0.0, min(left, waiting.SLICE))

    def _release(self, held: _Held) -> _Held:
        held.done = True
        fd = held.connection.fileno()
        del self._held[fd]
        self._epoll.unregister(fd)
        return held

    def _answer(self, held: _Held, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # the callback answers for itself; this is a bug, and logged
            log.logger.exception("a delayed request failed")
            held.connection.close()
        finally:
            with self._lock:
                self.bytes -= held.size
                self.busy -= 1


def _check_room(held: int, used: int, size: int) -> None:
    if held >= LIMIT:
        raise Full(
            f"The server holds {held} delayed requests, its limit ({LIMIT}); "
            "retry once some of them are answered."
        )
    if used + size > BYTES:
        raise Full(
            f"The delayed requests held have bodies of {used} bytes; this one's {size} bytes "
            f"would pass the limit of {BYTES} bytes ({BYTES // (1024 * 1024)} MiB); "
            "retry once some of them are answered."
        )


def _drain(wake: socket.socket) -> None:
    try:
        while wake.recv(4096):
            pass
    except BlockingIOError:
        pass


def hold(
    connection: socket.socket,
    seconds: float,
    size: int,
    due: Callable[[], None],
    gone: Callable[[], None],
) -> None:
    """Hand a delayed request over to this process's loop (see `_Loop.hold`); `Full` when
    the loop holds as much as it may."""
    _loop().hold(connection, seconds, size, due, gone)


def busy() -> int:
    """Delayed requests held or being answered in this process (SIGTERM waits for them)."""
    loop = _loops.get(os.getpid())
    return loop.busy if loop is not None else 0


_loops: dict[int, _Loop] = {}
_loops_lock = threading.Lock()


def _loop() -> _Loop:
    """This process's loop (uWSGI forks its worker after the app is built)."""
    pid = os.getpid()
    with _loops_lock:
        if pid not in _loops:
            _loops[pid] = _Loop()
        return _loops[pid]
