"""`--serving loop`: a worker process's connections served by one thread at a time.

uWSGI accepts a connection and hands it to `front.serve_connection`, which gives it to this
process's `Loop` and returns at once (uWSGI's thread goes back to `accept`). The loop waits
on every connection it holds with one `epoll`; a thread takes a connection that has bytes,
reads and answers what came (`front.Connection.step`, the same reading and answering as a
connection with a thread of its own), and waits again. Under load the next connection is
ready before the wait, so no thread sleeps or wakes between requests: a GET by id from the
memory store switched threads 0.2 to 0.3 times instead of 4 to 5, and cost 112 to 123 µs of
CPU instead of 188 to 198 (docs/performance.md, "One thread for every connection").

Nothing holds the loop up for long. A watchdog thread looks every TICK: when the thread that
waits has kept one connection for a whole tick (a slow client's write, a long query, a store
slow to answer, a stream), another thread takes over the waiting, up to `threads` threads;
the first one, once done, parks until it is needed. A connection is armed one shot at a time
(`EPOLLONESHOT`): two threads never serve one connection. A connection silent for `idle`
seconds is ended as on a thread of its own. At most `connections` are held (`--threads`, as
many as threads serve at once): past them, the next waits in the listen queue.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mockserver import log, sockets

TICK = 0.002  # seconds between the watchdog's looks while requests come
IDLE_TICK = 0.05  # ... and while none came for IDLE_AFTER
IDLE_AFTER = 0.5
SWEEP = 1.0  # seconds between looks for connections silent too long
_ARMED = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT
_DUPFD_CLOEXEC = 1030  # fcntl's F_DUPFD_CLOEXEC (Linux)


def _libc(name: str, restype: Any, *argtypes: Any) -> Any:
    """libc's `name`, called holding the GIL; the loop is Linux's (epoll), and so is libc."""
    function = sockets.holding_the_gil(name, restype, *argtypes)
    if function is None:
        raise ImportError(f"serving.loop needs libc's {name}")
    return function


_FCNTL = _libc("fcntl", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int)
_DUP2 = _libc("dup2", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_WRITE = _libc("write", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
_ONE = (1).to_bytes(8, "little")  # what an eventfd is woken with


class Served(Protocol):
    """What the loop needs of a connection (`front.Connection`)."""

    def fileno(self) -> int: ...

    def step(self) -> bool:
        """Read what came and answer it, without waiting for more; whether it goes on."""
        ...

    def silent(self) -> None:
        """Silent too long: ended as a connection with a thread of its own ends then."""
        ...

    def end(self) -> None:
        """Closed, and counted out."""
        ...


Make = Callable[[socket.socket], Served]  # the connection to serve on a socket


@dataclass(eq=False, slots=True)
class _Held:
    connection: Served
    fd: int
    last: float  # when it last had bytes (or was added)
    busy: bool = False  # a thread has it
    watched: bool = True  # registered with epoll (a new one is served first: `_take_arrivals`)


class Loop:
    """The connections of this process, and the threads that serve them."""

    def __init__(self, threads: int, connections: int, idle: float) -> None:
        self._idle = idle  # seconds a connection may stay silent
        self._epoll = select.epoll()
        self._held: dict[int, _Held] = {}
        self._room = threading.Semaphore(max(connections, 1))  # connections held at most
        self._lock = threading.Lock()
        self._parked = threading.Semaphore(0)
        self._limit = max(threads, 1)  # threads at most
        self._threads = 0
        self._waiting = 0  # threads waiting on epoll, or on their way to it
        self._sleeping = 0  # threads parked
        self._turn = 0  # connections taken so far: the watchdog's clock
        self._swept = time.monotonic()
        self._arrived: deque[tuple[int, Make]] = deque()  # what `hand` gave, for the loop
        self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self._wake, _ARMED)
        self._devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        self._start(waiting=True)
        threading.Thread(target=self._watch, name="loop-watchdog", daemon=True).start()

    def hand(self, fd: int, make: Make) -> bool:
        """The connection `fd` of the WSGI server's, served from now on: a descriptor of the
        loop's own made of it (`fd` itself then points at /dev/null: what the server does with
        it is harmless), which the loop's thread gives to `make` for the connection to serve;
        False when no descriptor could be had. Made holding the GIL: the accepting thread,
        unlike the loop's, takes it just once (each system call it lets it go for would cost
        it a wait for the busy loop to let go, 5 ms each). While `connections` are held, this
        waits for one to end (and the next wait in the listen queue, as on threads)."""
        self._room.acquire()
        own = _FCNTL(fd, _DUPFD_CLOEXEC, 0)
        if own < 0:
            self._room.release()
            return False
        _DUP2(self._devnull, fd)
        self._arrived.append((own, make))
        _WRITE(self._wake, _ONE, 8)
        return True

    def add(self, connection: Served) -> None:
        """`connection` served from now on; while `connections` are held, this waits for one
        to end (and the next connections wait in the listen queue, as on threads)."""
        self._room.acquire()
        self._hold(connection)

    def _hold(self, connection: Served) -> None:
        fd = connection.fileno()
        with self._lock:
            self._held[fd] = _Held(connection, fd, time.monotonic())
        self._epoll.register(fd, _ARMED)

    @property
    def threads(self) -> int:
        return self._threads

    def __len__(self) -> int:
        return len(self._held)

    def _start(self, waiting: bool) -> None:
        """One more thread (the lock held, or before any thread runs)."""
        self._threads += 1
        self._waiting += waiting
        threading.Thread(target=self._run, name="loop", daemon=True).start()

    def _run(self) -> None:
        while True:
            if self._arrived:  # before any other connection's turn (epoll would queue the wake)
                self._serve_arrivals()
                continue
            events = self._epoll.poll(SWEEP, 1)
            if events and events[0][0] == self._wake:
                self._serve_arrivals()
                continue
            with self._lock:
                self._turn += 1
                held = self._held.get(events[0][0]) if events else None
                if held is not None and held.busy:  # the sweep ends it meanwhile
                    held = None
                if held is not None:
                    held.busy = True
                    self._waiting -= 1
            if held is not None:
                self._serve(held)
                self._next()
            self._sweep()

    def _serve_arrivals(self) -> None:
        """The new connections served at once: their first request came with them, mostly."""
        arrived = self._take_arrivals()
        if not arrived:
            return
        with self._lock:
            self._turn += 1
            self._waiting -= 1
        for new in arrived:
            self._serve(new)
        self._next()

    def _take_arrivals(self) -> list[_Held]:
        """The connections `hand` gave, made and held (on the loop's thread), busy and not yet
        watched: this thread serves them first (a new connection's request would otherwise
        wait for a turn of every busy connection twice: one to be seen, one to be read)."""
        with contextlib.suppress(BlockingIOError):  # another thread took the wake first
            os.eventfd_read(self._wake)
        self._epoll.modify(self._wake, _ARMED)
        arrived: list[_Held] = []
        while self._arrived:
            try:
                own, make = self._arrived.popleft()
            except IndexError:  # another thread took the last one
                break
            try:
                sock = socket.socket(fileno=own)
            except OSError:  # not a socket any more: it ends here
                os.close(own)
                self._room.release()
                continue
            try:
                connection = make(sock)
            except Exception:  # a bug: that connection ends, the loop goes on
                log.logger.exception("taking a connection failed; it is closed")
                sock.close()
                self._room.release()
                continue
            held = _Held(connection, own, time.monotonic(), busy=True, watched=False)
            with self._lock:
                self._held[own] = held
            arrived.append(held)
        return arrived

    def _serve(self, held: _Held) -> None:
        try:
            going_on = held.connection.step()
        except Exception:  # a bug: that connection ends, the loop goes on
            log.logger.exception("serving a connection failed; it is closed")
            going_on = False
        if not going_on:
            self._drop(held)
            return
        held.last = time.monotonic()
        held.busy = False
        if held.watched:
            self._epoll.modify(held.fd, _ARMED)
        else:
            held.watched = True
            self._epoll.register(held.fd, _ARMED)

    def _next(self) -> None:
        """Wait on epoll again, unless another thread does: then park until needed."""
        with self._lock:
            if self._waiting == 0:
                self._waiting += 1
                return
            self._sleeping += 1
        self._parked.acquire()  # the watchdog counted this thread as waiting

    def _drop(self, held: _Held) -> None:
        with self._lock:
            if self._held.pop(held.fd, None) is not None:
                self._room.release()
        with contextlib.suppress(OSError):  # taken by a connection fault: not epoll's now
            self._epoll.unregister(held.fd)
        held.connection.end()

    def _sweep(self) -> None:
        """At most every SWEEP seconds: the connections silent too long, ended."""
        now = time.monotonic()
        if now - self._swept < SWEEP:
            return
        self._swept = now
        with self._lock:
            silent = [h for h in self._held.values() if not h.busy and now - h.last > self._idle]
            for held in silent:
                held.busy = True
        for held in silent:
            held.connection.silent()
            self._drop(held)

    def _watch(self) -> None:
        """Another thread waits on epoll when the one that did has kept one connection for a
        whole tick."""
        seen, moved = -1, time.monotonic()
        while True:
            now = time.monotonic()
            time.sleep(TICK if now - moved < IDLE_AFTER else IDLE_TICK)
            with self._lock:
                if self._turn != seen or self._waiting:
                    if self._turn != seen:
                        seen, moved = self._turn, now
                    continue
                self._relieve()

    def _relieve(self) -> None:
        """A parked thread woken, or one more started, to wait on epoll (the lock held)."""
        if self._sleeping:
            self._sleeping -= 1
            self._waiting += 1
            self._parked.release()
        elif self._threads < self._limit:
            self._start(waiting=True)
