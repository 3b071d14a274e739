"""Keep-alive connections spread evenly over the worker processes (`--processes N`).

uWSGI's workers race to accept a new connection, and a burst of them (a client's pool opening
at once, wrk's 16) can land mostly on one worker: its core then serves most of the load while
the other's idles, for as long as the connections live (12 and 4 of 16 were common). Each
worker counts the connections it holds in a table every worker shares (an anonymous shared
mapping made before the fork, one slot per worker). A worker holding more than its share (all
connections / N, rounded up) answers the next request on one of them with `Connection: close`;
the client opens a new connection, which a worker with room accepts first, as the busy one is
slower to come back to `accept`.

With one process there is nothing to spread: the table is not made and nothing changes.
"""

from __future__ import annotations

import mmap
import struct
import threading

_SLOT = struct.Struct("qq")  # a worker's connections held, and let go but not yet ended


class Table:
    """The connections each worker holds; this process's own slot written only by it."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._shared = mmap.mmap(-1, _SLOT.size * workers)  # MAP_SHARED: seen across the fork
        self._slot = -1  # this worker's, once it serves (uWSGI's worker id - 1)
        self._held = self._leaving = 0
        self._lock = threading.Lock()

    def join(self, slot: int) -> None:
        """This process is the worker of `slot` (0-based): its counts start at nought (a
        respawned worker's predecessor may have left some)."""
        self._lock = threading.Lock()
        self._slot, self._held, self._leaving = slot, 0, 0
        _SLOT.pack_into(self._shared, _SLOT.size * slot, 0, 0)

    def opened(self) -> Place:
        """A connection this worker accepted, counted in until it ends or is let go."""
        self.count(1, 0)
        return Place(self)

    def over_share(self) -> bool:
        """Whether this worker holds more connections than its share: all of them / N, rounded
        up, those let go and not yet ended counted in the whole (their clients come back)."""
        if self._slot < 0:
            return False
        shared, size = self._shared, _SLOT.size
        counts: list[tuple[int, int]] = [
            _SLOT.unpack_from(shared, size * at) for at in range(self.workers)
        ]
        whole = sum(held + leaving for held, leaving in counts)
        mine = counts[self._slot][0]
        return mine > -(-whole // self.workers)

    def count(self, held: int, leaving: int) -> None:
        """This worker's connections: `held` more held, `leaving` more let go."""
        if self._slot < 0:
            return
        with self._lock:
            self._held += held
            self._leaving += leaving
            _SLOT.pack_into(self._shared, _SLOT.size * self._slot, self._held, self._leaving)


class Place:
    """One connection's place in the table: held, then let go (its answer says close), then
    ended."""

    __slots__ = ("_state", "_table")

    def __init__(self, table: Table) -> None:
        self._table = table
        self._state = 1  # 1 held, 2 let go, 0 ended

    def let_go(self) -> bool:
        """Whether this connection is to end after its answer (its worker over its share);
        it is counted out at once, so that the next answers do not let more go."""
        if self._state != 1 or not self._table.over_share():
            return False
        self._state = 2
        self._table.count(-1, 1)
        return True

    def end(self) -> None:
        if self._state == 1:
            self._table.count(-1, 0)
        elif self._state == 2:
            self._table.count(0, -1)
        self._state = 0


TABLE: Table | None = None  # made by `serving.uwsgi.serve` when there are several workers


def share(workers: int) -> None:
    """Before the fork: the table the workers will share (nothing for one worker)."""
    global TABLE
    TABLE = Table(workers) if workers > 1 else None
