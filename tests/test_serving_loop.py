"""`--serving loop` (`serving.loop`): connections served by one thread at a time, another
thread taking over the waiting while a request holds one up; and the console script serving
on it (the default on the memory store) or on threads.

The waits here are liveness bounds (generous), not speed figures: those are bench's."""

from __future__ import annotations

import os
import socket
import stat
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from support import AUTH, Server

from mockserver.serving import loop
from mockserver.settings import Settings

WAIT = 10.0


class Echo:
    """A connection that answers each read with its bytes; `b"hold"` holds its thread until
    `release` is set."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.holding = threading.Event()
        self.release = threading.Event()
        self.ended = threading.Event()
        self.silenced = threading.Event()
        self.served: list[bytes] = []
        self.ends = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def step(self) -> bool:
        data = self.sock.recv(4096)
        if data == b"boom":
            raise RuntimeError("a bug in serving a connection")
        if not data:
            return False
        self.served.append(data)
        if data == b"hold":
            self.holding.set()
            self.release.wait(WAIT)
        self.sock.sendall(data)
        return True

    def silent(self) -> None:
        self.silenced.set()

    def end(self) -> None:
        self.ends += 1
        self.ended.set()
        self.sock.close()


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, Echo]]]:
    made: list[tuple[socket.socket, Echo]] = []
    yield made
    for client, echo in made:
        echo.release.set()
        client.close()


def pair(loop_: loop.Loop, made: list[tuple[socket.socket, Echo]]) -> tuple[socket.socket, Echo]:
    client, served = socket.socketpair()
    client.settimeout(WAIT)
    echo = Echo(served)
    loop_.add(echo)
    made.append((client, echo))
    return client, echo


def test_one_thread_serves_many_connections_in_turn(
    pairs: list[tuple[socket.socket, Echo]],
) -> None:
    served = loop.Loop(threads=8, connections=32, idle=60)
    connections = [pair(served, pairs) for _ in range(20)]
    for _ in range(5):
        for client, _echo in connections:
            client.sendall(b"ping")
        for client, _echo in connections:
            assert client.recv(4096) == b"ping"
    assert served.threads == 1  # nothing held it up: no other thread was needed
    assert len(served) == 20


def test_a_request_that_holds_its_thread_does_not_hold_the_others(
    pairs: list[tuple[socket.socket, Echo]],
) -> None:
    served = loop.Loop(threads=8, connections=32, idle=60)
    (held, held_echo), (other, _) = pair(served, pairs), pair(served, pairs)
    held.sendall(b"hold")
    assert held_echo.holding.wait(WAIT)
    for _ in range(10):  # answered while the first request still holds its thread
        other.sendall(b"ping")
        assert other.recv(4096) == b"ping"
    assert not held_echo.release.is_set()
    assert served.threads == 2
    held_echo.release.set()
    assert held.recv(4096) == b"hold"
    other.sendall(b"again")  # both go on, on whichever thread waits
    held.sendall(b"again")
    assert other.recv(4096) == held.recv(4096) == b"again"


def test_the_threads_are_bounded_and_the_held_ones_go_back(
    pairs: list[tuple[socket.socket, Echo]],
) -> None:
    served = loop.Loop(threads=2, connections=8, idle=60)
    connections = [pair(served, pairs) for _ in range(3)]
    for client, echo in connections[:2]:
        client.sendall(b"hold")
        assert echo.holding.wait(WAIT)
    last, _ = connections[2]
    last.sendall(b"ping")
    last.settimeout(0.3)
    with pytest.raises(TimeoutError):  # both threads held: it waits for one
        last.recv(4096)
    assert served.threads == 2
    last.settimeout(WAIT)
    connections[0][1].release.set()
    assert last.recv(4096) == b"ping"
    connections[1][1].release.set()
    for client, _ in connections[:2]:
        assert client.recv(4096) == b"hold"
    for client, _ in connections:  # every connection still served, by the two threads
        client.sendall(b"more")
        assert client.recv(4096) == b"more"
    assert served.threads == 2


def test_a_connection_handed_over_is_served_on_a_descriptor_of_the_loops_own(
    pairs: list[tuple[socket.socket, Echo]],
) -> None:
    """What `front.serve_connection` does with uWSGI's descriptor: the loop serves a
    duplicate, and uWSGI's own then points at /dev/null (its close or shutdown is harmless)."""
    served = loop.Loop(threads=4, connections=8, idle=60)
    client, theirs = socket.socketpair()
    client.settimeout(WAIT)
    made: list[Echo] = []

    def make(own: socket.socket) -> Echo:
        made.append(Echo(own))
        return made[-1]

    assert served.hand(theirs.fileno(), make)
    assert stat.S_ISCHR(os.fstat(theirs.fileno()).st_mode)  # /dev/null now
    theirs.close()  # as the server closes its own: the connection lives on
    for _ in range(3):
        client.sendall(b"ping")
        assert client.recv(4096) == b"ping"
    assert len(made) == 1
    assert made[0].fileno() != -1
    assert len(served) == 1
    pairs.append((client, made[0]))


class Busy(Echo):
    """A connection always ready: each step reads one of the many bytes waiting, works 1 ms,
    and notes its turn in `order`."""

    def __init__(self, sock: socket.socket, name: str, order: list[str]) -> None:
        super().__init__(sock)
        self.name, self.order = name, order

    def step(self) -> bool:
        if not self.sock.recv(1):
            return False
        time.sleep(0.001)
        self.order.append(self.name)
        return True


def test_a_new_connection_is_served_before_the_busy_ones_turn_again(
    pairs: list[tuple[socket.socket, Echo]],
) -> None:
    """Its request came with it: served as soon as it is taken, not after a turn of each busy
    connection to be seen and another to be read (health checks, one request a connection)."""
    served = loop.Loop(threads=1, connections=32, idle=60)
    order: list[str] = []
    for number in range(8):
        client, theirs = socket.socketpair()
        busy = Busy(theirs, f"busy{number}", order)
        served.add(busy)
        pairs.append((client, busy))
        client.sendall(b"x" * 100_000)
    deadline = time.monotonic() + WAIT
    while len(order) < 50 and time.monotonic() < deadline:  # every one in turn by now
        time.sleep(0.005)
    client, theirs = socket.socketpair()
    client.settimeout(WAIT)
    client.sendall(b"ping")  # the request before the hand-over, as it nearly always is

    def make(own: socket.socket) -> Echo:
        new = Echo(own)
        original = new.step
        new.step = lambda: (order.append("new"), original())[1]  # type: ignore[method-assign]
        pairs.append((client, new))
        return new

    handed_at = len(order)
    assert served.hand(theirs.fileno(), make)
    theirs.close()
    assert client.recv(4096) == b"ping"
    turns = order[handed_at:].index("new")  # busy steps between the hand-over and its answer
    assert turns <= 2, order[handed_at:]


def test_past_the_limit_a_connection_waits_for_one_to_end(
    pairs: list[tuple[socket.socket, Echo]],
) -> None:
    served = loop.Loop(threads=2, connections=2, idle=60)
    first, _ = pair(served, pairs)
    pair(served, pairs)
    added = threading.Event()
    third = threading.Thread(target=lambda: (pair(served, pairs), added.set()), daemon=True)
    third.start()
    assert not added.wait(0.3)  # two held: the third waits (in the listen queue, for real)
    assert len(served) == 2
    first.close()  # one ends: the third is taken
    assert added.wait(WAIT)
    client, _ = pairs[-1]
    client.sendall(b"ping")
    assert client.recv(4096) == b"ping"


def test_a_connection_that_ends_is_ended_once_and_the_next_served(
    pairs: list[tuple[socket.socket, Echo]],
) -> None:
    served = loop.Loop(threads=4, connections=1, idle=60)
    client, echo = pair(served, pairs)
    client.close()
    assert echo.ended.wait(WAIT)
    again, _ = pair(served, pairs)  # its room given back: one connection at most
    again.sendall(b"ping")
    assert again.recv(4096) == b"ping"
    assert echo.ends == 1
    assert len(served) == 1


def test_a_connection_whose_serving_fails_is_ended_and_the_loop_goes_on(
    pairs: list[tuple[socket.socket, Echo]], caplog: pytest.LogCaptureFixture
) -> None:
    served = loop.Loop(threads=1, connections=8, idle=60)
    (broken, broken_echo), (other, _) = pair(served, pairs), pair(served, pairs)
    broken.sendall(b"boom")
    assert broken_echo.ended.wait(WAIT)
    assert broken.recv(4096) == b""  # closed
    other.sendall(b"ping")  # the one thread is still there
    assert other.recv(4096) == b"ping"
    assert "serving a connection failed" in caplog.text


def test_a_silent_connection_is_ended_after_the_idle_time(
    pairs: list[tuple[socket.socket, Echo]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loop, "SWEEP", 0.05)
    served = loop.Loop(threads=4, connections=8, idle=0.2)
    talking, talking_echo = pair(served, pairs)
    _, silent_echo = pair(served, pairs)
    while not silent_echo.silenced.is_set():  # the other one talks all the while
        talking.sendall(b"ping")
        assert talking.recv(4096) == b"ping"
        silent_echo.silenced.wait(0.05)
    assert silent_echo.ended.wait(WAIT)
    assert not talking_echo.silenced.is_set()
    assert not talking_echo.ended.is_set()
    assert len(served) == 1


@pytest.mark.parametrize(
    ("store", "serving", "expected"),
    [
        ("memory", "auto", True),
        ("redis://127.0.0.1:6379/0", "auto", False),
        ("memory", "threads", False),
        ("redis://127.0.0.1:6379/0", "loop", True),
    ],
)
def test_auto_is_a_loop_on_memory_and_threads_on_redis(
    store: str, serving: str, expected: bool
) -> None:
    assert Settings(store=store, serving=serving).loop is expected


@pytest.mark.parametrize("serving", ["loop", "threads"])
def test_the_console_script_serves_on_either(serving: str) -> None:
    server = Server(["--serving", serving, "--seed-records", "5"]).start()
    try:
        with requests.Session() as session:  # one kept-alive connection, many requests
            for _ in range(20):
                answer = session.get(server.api_url + "/audit/records?limit=2", headers=AUTH)
                assert answer.status_code == 200
                assert len(answer.json()["data"]) == 2
        assert server.health()["status"] == "ok"
    finally:
        server.stop()
    said = "\n".join(server.log)
    assert ("serves its connections with a loop" in said) is (serving == "loop")
