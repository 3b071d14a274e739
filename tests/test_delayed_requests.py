"""Delayed requests (`Prefer: delay=`, a rule's `delay_ms`) hold no worker thread, against the
console script: more delayed requests than `--threads` leave health and the API answering;
each is answered after its delay as it would have been at once (status, headers, body, a
stream, a connection fault), on a connection then closed; a client that leaves during its
delay ends it (499, nothing made); SIGTERM ends them all within the grace; what is held is
bounded (503 naming the limit).

Times are liveness checks with generous bounds (the figures are bench/slow_clients.py's)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from typing import Any

import pytest
import requests
from support import AUTH, CLOSE, RECORDS, TOKEN, Server, new_record

from mockserver.faults import delay_loop
from mockserver.serving.stop import SHUTDOWN_GRACE

StartServer = Callable[..., Server]
THREADS = "4"  # the server's threads: every test opens more delayed requests than that


def raw(port: int, request: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=30)
    connection.sendall(request)
    return connection


def delayed_get(millis: int, path: str = RECORDS, extra: str = "") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Prefer: delay={millis}\r\n{extra}\r\n"
    ).encode()


def read_all(connection: socket.socket) -> bytes:
    """What the server sent until it closed the connection."""
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    connection.close()
    return answer


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {}
    for field in fields:
        name, _, value = field.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split(" ")[1]), headers, body


def add_rule(server: Server, rule: dict[str, Any]) -> None:
    answer = requests.post(f"{server.url}/_mock/faults", json=rule, timeout=5)
    assert answer.status_code == 201, answer.text


def journal(server: Server) -> list[dict[str, Any]]:
    answer = requests.get(f"{server.url}/_mock/requests?limit=1000", timeout=5)
    entries: list[dict[str, Any]] = answer.json()["data"]
    return entries


def lines(server: Server, pattern: str) -> list[str]:
    return [line for line in list(server.log) if re.search(pattern, line)]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_more_delayed_requests_than_threads_leave_the_server_answering(
    start_server: StartServer,
) -> None:
    """40 requests delayed 4 s on a server of 4 threads: health and a POST answer at once,
    then each delayed request gets its answer after its delay, logged once with the delay
    in its time."""
    server = start_server("--threads", THREADS)
    made = requests.post(server.url + RECORDS, json=new_record(), headers=AUTH, timeout=5)
    path = f"{RECORDS}/{made.json()['id']}"
    started = time.monotonic()
    held = [raw(server.port, delayed_get(4000, path)) for _ in range(40)]
    health = requests.get(f"{server.url}/_mock/health", headers=CLOSE, timeout=2)
    assert health.status_code == 200
    posted = requests.post(server.url + RECORDS, json=new_record(), headers=AUTH, timeout=2)
    assert posted.status_code == 201
    assert time.monotonic() - started < 3, "answered only after the delays"
    answers = [parse(read_all(connection)) for connection in held]
    assert time.monotonic() - started >= 4
    for status, headers, body in answers:
        assert status == 200
        assert headers["connection"] == "close"
        assert int(headers["content-length"]) == len(body)
        assert json.loads(body) == made.json()
    pattern = rf"GET {re.escape(path)} 200 .*delay_ms=4000"
    assert wait_for(lambda: len(lines(server, pattern)) == 40, 5), "\n".join(server.log)
    logged = lines(server, pattern)
    millis = [float(re.search(r" (\d+\.\d)ms", line).group(1)) for line in logged]  # type: ignore[union-attr]
    assert min(millis) >= 4000
    entries = [e for e in journal(server) if e["path"] == path and e["delayMs"] == 4000]
    assert len(entries) == 40
    assert all(e["status"] == 200 and e["durationMs"] >= 4000 for e in entries)
    assert all(e["answer"]["body"] == made.json() for e in entries)


def test_a_delayed_answer_is_the_one_given_at_once(start_server: StartServer) -> None:
    """The same request, at once and delayed: the same status, headers (but `Connection`)
    and body; a rule's own answer keeps its status and headers; a HEAD has no body."""
    server = start_server("--threads", THREADS)
    made = requests.post(server.url + RECORDS, json=new_record(), headers=AUTH, timeout=5)
    path = f"{RECORDS}/{made.json()['id']}"
    at_once = requests.get(server.url + path, headers={**AUTH, **CLOSE}, timeout=5)
    late = requests.get(server.url + path, headers={**AUTH, "Prefer": "delay=300"}, timeout=5)
    assert (late.status_code, late.content) == (at_once.status_code, at_once.content)
    assert {k: v for k, v in late.headers.items() if k != "Connection"} == {
        k: v for k, v in at_once.headers.items() if k != "Connection"
    }
    assert late.elapsed.total_seconds() >= 0.3

    add_rule(
        server,
        {
            "method": "POST",
            "path": RECORDS,
            "status": 503,
            "headers": {"Retry-After": "7"},
            "delay_ms": 300,
        },
    )
    refused = requests.post(server.url + RECORDS, json=new_record(), headers=AUTH, timeout=5)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "7"
    assert refused.json()["status"] == 503
    assert refused.elapsed.total_seconds() >= 0.3

    head = read_all(raw(server.port, delayed_get(200, path).replace(b"GET ", b"HEAD ", 1)))
    status, headers, body = parse(head)
    assert (status, body) == (200, b"")
    assert headers["content-length"] == at_once.headers["Content-Length"]


def test_a_kept_alive_client_goes_on_after_a_delayed_answer(start_server: StartServer) -> None:
    """The connection of a delayed answer is closed (`Connection: close`): a session opens a
    new one for its next request, transparently."""
    server = start_server("--threads", THREADS)
    with requests.Session() as session:
        session.headers.update(AUTH)
        first = session.post(server.url + RECORDS, json=new_record(), timeout=5)
        late = session.get(
            f"{server.url}{RECORDS}/{first.json()['id']}",
            headers={"Prefer": "delay=200"},
            timeout=5,
        )
        assert late.status_code == 200
        assert late.headers["Connection"] == "close"
        after = [session.post(server.url + RECORDS, json=new_record(), timeout=5)]
        after += [session.get(server.url + RECORDS, timeout=5) for _ in range(3)]
        assert [a.status_code for a in after] == [201, 200, 200, 200]
    assert (
        requests.get(server.url + RECORDS, headers=AUTH, timeout=5).json()["$meta"]["pagination"][
            "total"
        ]
        == 2
    )


def ended(entry: dict[str, Any]) -> float:
    """When a journal entry's request ended, in seconds since the epoch (its `time` is when
    it started, to the millisecond)."""
    started = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
    return float(started + entry["durationMs"] / 1000)


def test_a_client_leaving_during_its_delay_makes_nothing(start_server: StartServer) -> None:
    """POSTs delayed 3 s whose clients leave after 0.5 s: each ends at once (499 in the log
    and the journal), no record is made, and no thread was held meanwhile."""
    server = start_server("--threads", THREADS)
    body = json.dumps(new_record()).encode()
    request = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Prefer: delay=3000\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    started = time.monotonic()
    leaving = [raw(server.port, request) for _ in range(10)]
    time.sleep(0.5)
    for connection in leaving:
        connection.close()
    closed = time.time()
    assert wait_for(lambda: len(lines(server, f"POST {RECORDS} 499 ")) == 10, 2), server.log
    assert time.monotonic() - started < 2.5, "the delays ran to their end"
    assert requests.get(f"{server.url}/_mock/health", headers=CLOSE, timeout=2).ok
    listed = requests.get(server.url + RECORDS, headers=AUTH, timeout=5).json()
    assert listed["$meta"]["pagination"]["total"] == 0
    entries = [e for e in journal(server) if e["method"] == "POST"]
    assert [e["status"] for e in entries] == [499] * 10
    # each ended when its client left: its start (the server's clock) plus its duration is
    # the moment the connections were closed (a loaded server starts them later, not ends)
    ends = [ended(entry) - closed for entry in entries]
    assert all(-0.05 <= end < 1.0 for end in ends), ends
    time.sleep(3)  # past the delays: nothing is made later either
    listed = requests.get(server.url + RECORDS, headers=AUTH, timeout=5).json()
    assert listed["$meta"]["pagination"]["total"] == 0
    assert len(lines(server, f"POST {RECORDS} ")) == 10  # one line each, no more


def test_a_stream_after_a_delay_is_whole_and_a_cut_still_cuts(start_server: StartServer) -> None:
    server = start_server("--threads", THREADS, "--seed-records", "500")
    streaming = "MPT-Streaming: true\r\n"
    status, headers, body = parse(read_all(raw(server.port, delayed_get(300, RECORDS, streaming))))
    assert (status, headers["transfer-encoding"], headers["mpt-item-count"]) == (
        200,
        "chunked",
        "500",
    )
    assert len(dechunked(body).splitlines()) == 500
    add_rule(
        server, {"method": "GET", "path": RECORDS, "delay_ms": 300, "stream": {"cut_after": 7}}
    )
    answer = read_all(
        raw(
            server.port, delayed_get(300, RECORDS, streaming).replace(b"Prefer: delay=300\r\n", b"")
        )
    )
    status, headers, body = parse(answer)
    assert status == 200
    assert not body.endswith(b"0\r\n\r\n"), "the stream was not cut"
    parts = body.split(b"\r\n")
    items = [p for p in parts[1::2] if p.startswith(b"{")]
    assert len(items) == 7


def dechunked(body: bytes) -> bytes:
    whole, rest = b"", body
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            return whole
        whole, rest = whole + rest[:length], rest[length + 2 :]
    raise AssertionError("no last chunk")


@pytest.mark.parametrize(
    ("fault", "seen"),
    [
        ("connection_reset", ConnectionResetError),
        ("empty_response", None),
        ("timeout", TimeoutError),  # no answer at all: the client gives up
    ],
)
def test_a_connection_fault_after_a_delay(
    start_server: StartServer, fault: str, seen: type[Exception] | None
) -> None:
    server = start_server("--threads", THREADS)
    add_rule(server, {"method": "GET", "path": RECORDS, "delay_ms": 400, "fault": fault})
    started = time.monotonic()
    connection = raw(server.port, delayed_get(400).replace(b"Prefer: delay=400\r\n", b""))
    connection.settimeout(2)
    if seen is None:
        assert read_all(connection) == b""
    else:
        with pytest.raises(seen):
            read_all(connection)
        connection.close()
    assert time.monotonic() - started >= 0.4
    assert wait_for(lambda: bool(lines(server, rf"GET {RECORDS} --- .*\({fault}\)"))), "\n".join(
        server.log
    )
    assert requests.get(f"{server.url}/_mock/health", headers=CLOSE, timeout=2).ok


def test_sigterm_ends_many_delays_within_the_grace(start_server: StartServer) -> None:
    """200 requests delayed 60 s on a server of 4 threads: SIGTERM answers them all and the
    server exits within the grace."""
    server = start_server("--threads", THREADS)
    held = [raw(server.port, delayed_get(60_000)) for _ in range(200)]
    assert wait_for(lambda: requests.get(f"{server.url}/_mock/health", headers=CLOSE).ok)
    time.sleep(0.5)  # every one handed over
    started = time.monotonic()
    assert server.stop() == 0
    took = time.monotonic() - started
    assert took < SHUTDOWN_GRACE + 2, f"SIGTERM took {took:.1f} s"
    statuses = []
    for connection in held:
        with suppress(OSError):
            statuses.append(parse(read_all(connection))[0])
    assert statuses == [200] * 200


def test_the_bodies_held_are_bounded(start_server: StartServer) -> None:
    """Delayed requests whose bodies would pass `delay_loop.BYTES` together are refused
    (503 naming the limit, `Retry-After`); the others are answered after their delay."""
    server = start_server("--threads", THREADS)
    size = 1024 * 1024  # the largest body the server reads (--max-body-bytes)
    fit = delay_loop.BYTES // size
    request = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Prefer: delay=3000\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    ).encode() + b" " * size
    held = [raw(server.port, request) for _ in range(fit)]
    time.sleep(0.5)
    refused = raw(server.port, request)
    status, headers, body = parse(read_all(refused))
    assert (status, headers["retry-after"]) == (503, "1")
    assert f"limit of {delay_loop.BYTES} bytes" in json.loads(body)["detail"]
    statuses = {parse(read_all(connection))[0] for connection in held}
    assert statuses == {400}  # a body of spaces is no JSON: answered, after the delay


def test_the_delayed_requests_held_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop holds at most LIMIT requests: the next one is refused, naming the limit; the
    loop's count goes down as each is answered."""
    monkeypatch.setattr(delay_loop, "LIMIT", 2)
    ended = threading.Semaphore(0)
    pairs = [socket.socketpair() for _ in range(3)]
    for ours, _ in pairs[:2]:
        delay_loop.hold(ours, 0.2, 10, ended.release, ended.release)
    assert delay_loop.busy() == 2
    with pytest.raises(delay_loop.Full, match=r"its limit \(2\)"):
        delay_loop.hold(pairs[2][0], 0.2, 10, ended.release, ended.release)
    assert ended.acquire(timeout=5)
    assert ended.acquire(timeout=5)
    assert wait_for(lambda: delay_loop.busy() == 0, 2)
    for ours, theirs in pairs:
        ours.close()
        theirs.close()
