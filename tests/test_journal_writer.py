"""The journal writer's group commit (`sessions.writer.Writer`, a Redis store's journal and
coverage): requests done while a pass is under way wait for the next, which the first of them
makes. When a pass ends it wakes its own waiters and one of the next pass's, to make it: the
others sleep on until that pass has written their entries (each woken once), where waking them
all would send all but one back to sleep (measured on Redis x 2, GET by id: 12.5 context
switches a request before, 10.8 after; bench/README.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from mockserver.sessions.writer import Writer


class Held:
    """A session's pending writes; with `hold`, its first write waits for `let_go`."""

    def __init__(self, hold: bool = False) -> None:
        self.hold = hold
        self.passes = 0
        self.writing = threading.Event()
        self.let_go = threading.Event()

    def write_pending(self) -> None:
        self.passes += 1
        if self.hold and self.passes == 1:
            self.writing.set()
            assert self.let_go.wait(10)

    def idle(self) -> bool:
        return True

    def in_flight(self) -> bool:
        return False


class Counting(threading.Condition):
    """A condition that counts its sleepers, and the wakes they got."""

    def __init__(self, lock: Any) -> None:
        super().__init__(lock)
        self.sleeping = 0
        self.woken = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.sleeping += 1
        try:
            return super().wait(timeout)
        finally:
            self.sleeping -= 1
            self.woken += 1


def test_a_pass_that_ends_wakes_one_of_the_next_pass_s_waiters_to_make_it() -> None:
    writer = Writer()
    writer._started()  # its lock and conditions made for this process
    done = Counting(writer._lock), Counting(writer._lock)
    writer._done = done
    first, later = Held(hold=True), Held(hold=True)
    leader = threading.Thread(target=lambda: writer.wait(writer.add(first)))
    leader.start()
    assert first.writing.wait(10)  # pass 1 under way, its write held
    tickets: list[int] = []
    returned: list[int] = []

    def waiter() -> None:
        ticket = writer.add(later)
        tickets.append(ticket)
        assert writer.wait(ticket)
        returned.append(ticket)

    waiters = [threading.Thread(target=waiter) for _ in range(5)]
    for thread in waiters:
        thread.start()
    until(lambda: done[0].sleeping == 5)
    assert tickets == [2] * 5  # all wait for pass 2
    first.let_go.set()
    assert later.writing.wait(10)  # pass 2 under way, made by one of them, its write held
    time.sleep(0.1)  # time for any other waiter woken to wake, see pass 2 and sleep again
    until(lambda: done[0].sleeping == 4)
    assert done[0].woken == 1  # the others were not woken
    later.let_go.set()
    for thread in [leader, *waiters]:
        thread.join(10)
    assert returned == [2] * 5
    assert later.passes == 1  # one pass wrote for the five
    assert done[0].woken == 5  # each woken once


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert condition()
