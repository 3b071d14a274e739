"""Requests take turns at the app's Python work, first come first served.

Only one thread runs Python at a time (the GIL), and the GIL does not go to the thread that has
waited longest: under load a request can lose it to later ones again and again, in slices of
up to 5 ms (`sys.getswitchinterval()`), which makes the slowest answers several times slower
than the typical one. With turns, a request waits only for those that came before it.

A turn is held only across work that does not wait on a client: a request that waits longer
than `patience` (its turn held by a slow body upload, say) goes ahead without one, so nothing
can hold the others up for more than that.

Nor is a turn held while a request waits on a shared store (Redis): `aside` hands the turn on
for the wait (the next request runs its Python meanwhile) and takes it back after, ahead of
the requests that have not had one yet.
"""

from __future__ import annotations

import threading
from collections import deque

PATIENCE = 0.05  # seconds a request waits for its turn before it goes ahead anyway


class Turns:
    def __init__(self, patience: float = PATIENCE) -> None:
        self.patience = patience
        self._guard = threading.Lock()
        self._waiting: deque[threading.Lock] = deque()  # one held lock per waiting thread
        self._busy = False
        self._held = threading.local()  # whether this thread holds the turn now (`aside`)

    def take(self) -> bool:
        """Wait for this thread's turn; False when it went ahead without one (see `patience`)."""
        turn = self._take(first=False)
        if turn:
            self._held.turn = True
        return turn

    def aside(self) -> _Aside:
        """The turn handed on while this thread waits (on Redis), then taken back, before
        those waiting for their first turn; nothing when this thread holds no turn."""
        return _Aside(self)

    def _take(self, first: bool) -> bool:
        with self._guard:
            if not self._busy:
                self._busy = True
                return True
            baton = threading.Lock()
            baton.acquire()
            if first:
                self._waiting.appendleft(baton)
            else:
                self._waiting.append(baton)
        try:
            if baton.acquire(timeout=self.patience):
                return True  # handed over by the thread before
        except BaseException:  # interrupted (shutdown): leave the queue, or pass the turn on
            if not self._give_up(baton):
                self._release()
            raise
        return not self._give_up(baton)

    def _give_up(self, baton: threading.Lock) -> bool:
        """Leave the queue; False when the turn was handed over meanwhile (it is ours)."""
        with self._guard:
            if baton in self._waiting:
                self._waiting.remove(baton)
                return True
        return False

    def leave(self, turn: bool) -> None:
        """End a turn that `take` gave (True): the next waiting thread gets it. (A turn handed
        on by `aside` and not taken back is not this thread's to end.)"""
        if not turn or not getattr(self._held, "turn", True):
            return
        self._held.turn = False
        self._release()

    def _release(self) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._busy = False

    @property
    def waiting(self) -> int:
        return len(self._waiting)


class _Aside:
    """`Turns.aside` (a class: a generator's context manager costs ~75 bytecodes more a wait,
    and a request on Redis waits once or twice)."""

    __slots__ = ("_handed", "_turns")

    def __init__(self, turns: Turns) -> None:
        self._turns = turns
        self._handed = False

    def __enter__(self) -> None:
        turns = self._turns
        if getattr(turns._held, "turn", False):
            turns._held.turn = False
            turns._release()
            self._handed = True

    def __exit__(self, *exc: object) -> None:
        if self._handed:
            turns = self._turns
            turns._held.turn = turns._take(first=True)
