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
import select
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from mockserver import log

TICK = 0.002  # seconds between the watchdog's looks while requests come
IDLE_TICK = 0.05  # ... and while none came for IDLE_AFTER
IDLE_AFTER = 0.5
SWEEP = 1.0  # seconds between looks for connections silent too long
_ARMED = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT


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


@dataclass(eq=False, slots=True)
class _Held:
    connection: Served
    fd: int
    last: float  # when it last had bytes (or was added)
    busy: bool = False  # a thread has it


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
        self._start(waiting=True)
        threading.Thread(target=self._watch, name="loop-watchdog", daemon=True).start()

    def add(self, connection: Served) -> None:
        """`connection` served from now on; while `connections` are held, this waits for one
        to end (and the next connections wait in the listen queue, as on threads)."""
        self._room.acquire()
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
            events = self._epoll.poll(SWEEP, 1)
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

    def _serve(self, held: _Held) -> None:
        try:
            going_on = held.connection.step()
        except Exception:  # a bug: that connection ends, the loop goes on
            log.logger.exception("serving a connection failed; it is closed")
            going_on = False
        if going_on:
            held.last = time.monotonic()
            held.busy = False
            self._epoll.modify(held.fd, _ARMED)
        else:
            self._drop(held)

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
