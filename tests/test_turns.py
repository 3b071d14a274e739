"""Requests take turns at the app's work in arrival order (http.fair_queue), and nothing that
waits (a slow upload, a delay rule, a held connection) keeps the others waiting."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
import types

import pytest
import requests
from support import AUTH, RECORDS, Server, new_record

from mockserver.http import fair_queue as turns
from mockserver.http.fair_queue import Turns


def _wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_turns_are_given_in_the_order_they_were_asked_for() -> None:
    line = Turns(patience=30)
    assert line.take()
    served: list[int] = []

    def wait_for_turn(number: int) -> None:
        turn = line.take()
        served.append(number)
        line.leave(turn)

    threads = []
    for number in range(8):
        thread = threading.Thread(target=wait_for_turn, args=(number,))
        thread.start()
        threads.append(thread)
        _wait_for(lambda n=number: line.waiting == n + 1)  # queued before the next one starts
    line.leave(True)
    for thread in threads:
        thread.join(5)
    assert served == list(range(8))
    assert line.take()  # free again
    assert line.waiting == 0


def test_a_request_that_waits_too_long_goes_ahead_without_a_turn() -> None:
    line = Turns(patience=0.05)
    assert line.take()  # held, never given back
    started = time.monotonic()
    assert line.take() is False
    assert 0.04 < time.monotonic() - started < 2
    assert line.waiting == 0  # it left the queue
    line.leave(False)  # no turn to give back: the holder keeps its own
    done: list[bool] = []
    waiter = threading.Thread(target=lambda: done.append(line.take()))
    waiter.start()
    _wait_for(lambda: line.waiting == 1)
    line.leave(True)  # the holder's turn passes to the one waiting
    waiter.join(5)
    assert done == [True]


def test_an_interrupted_wait_leaves_the_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait cut short by an exception (a signal at shutdown) takes its place out of the queue:
    the turn is not handed to a thread that is gone."""
    real_lock = threading.Lock

    class Interrupted(Exception):
        pass

    class Baton:  # a lock whose timed wait is interrupted
        def __init__(self) -> None:
            self.lock = real_lock()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            if timeout != -1:
                raise Interrupted
            return self.lock.acquire(blocking)

        def release(self) -> None:
            self.lock.release()

    line = Turns(patience=5)
    assert line.take()
    monkeypatch.setattr(turns, "threading", types.SimpleNamespace(Lock=Baton))
    with pytest.raises(Interrupted):
        line.take()
    assert line.waiting == 0
    line.leave(True)
    assert line.take()  # free: nobody was handed the turn


def _timed_get(server: Server, path: str) -> float:
    started = time.monotonic()
    answer = requests.get(f"{server.url}{path}", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started


def test_a_slow_upload_does_not_hold_up_other_requests(server: Server) -> None:
    """A client sends its headers and half its body, then nothing: uWSGI waits for the rest
    (4 s), and every other request is answered meanwhile."""
    body = json.dumps(new_record()).encode()
    head = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(head + body[: len(body) // 2])
        time.sleep(0.2)  # the upload is being read
        took = [_timed_get(server, f"{RECORDS}?limit=1") for _ in range(20)]
        assert max(took) < 1.0, took
        slow.settimeout(10)
        assert slow.recv(100).startswith(b"HTTP/1.1 400")  # the cut body, once uWSGI gives up


def test_a_delay_rule_does_not_hold_up_other_requests(server: Server) -> None:
    rule = {"method": "GET", "path": f"{RECORDS}/AUD-DELAYED", "delay_ms": 2000}
    added = requests.post(f"{server.url}/_mock/faults", json=rule, timeout=5)
    assert added.status_code == 201, added.text
    rule_id = added.json()["data"][0]["id"]
    try:
        delayed = [
            threading.Thread(
                target=lambda: requests.get(
                    f"{server.url}{RECORDS}/AUD-DELAYED", headers=AUTH, timeout=10
                )
            )
            for _ in range(4)
        ]
        for thread in delayed:
            thread.start()
        time.sleep(0.2)  # the four are in their delay
        took = [_timed_get(server, f"{RECORDS}?limit=1") for _ in range(20)]
        # not served inside a turn: no request waited out the patience (50 ms) behind them
        assert statistics.median(took) < turns.PATIENCE * 0.8, took
        for thread in delayed:
            thread.join(10)
    finally:
        requests.delete(f"{server.url}/_mock/faults/{rule_id}", timeout=5)
