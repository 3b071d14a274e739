"""Connection faults and the rest of fault injection, on the real server (the `mockserver`
console script on uWSGI), seen from real clients: `requests`, `httpx`, raw sockets and the
official `mpt-api-client`.

A connection fault cannot happen in Flask's test client: these tests start servers with
`start_server` and look at what arrives on the socket. Every server here is fresh, so the
journal, the store and the coverage hold only what the test did. Times are checked loosely:
"promptly" is well under a second (a fault that hung would take far longer), waits are
checked from below with a generous ceiling.
"""

from __future__ import annotations

import errno
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
import requests
from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication
from mpt_api_client.exceptions import MPTAPIError, MPTMaxRetryError
from support import AUTH, EVENT_TYPES, RECORDS, TOKEN, Server, new_record, nonconforming

StartServer = Callable[..., Server]

PROMPT = 1.0  # seconds: a fault that is "answered at once" takes far less
CLIENT_TIMEOUT = 0.5  # the clients' own timeout when the server says nothing
TRIES = 6  # the official client: 1 try + 5 retries
MISSING_RECORD = f"{RECORDS}/AUD-0000-0000-0000-0000"
SESSION = "X-Mock-Session"


# ---------------------------------------------------------------- helpers


def control(server: Server, method: str, path: str, session: str | None = None, **kw: Any) -> Any:
    """A control API call (`/_mock/...`); its JSON, or None for a 204."""
    params = {"session": session} if session else None
    answer = requests.request(method, f"{server.url}/_mock{path}", params=params, timeout=5, **kw)
    assert answer.ok, f"{method} {path}: {answer.status_code} {answer.text}"
    return answer.json() if answer.content else None


def add_rule(server: Server, rule: dict[str, Any], session: str | None = None) -> str:
    """Add one fault rule; its id."""
    added = control(server, "POST", "/faults", session, json=rule)["data"]
    assert len(added) == 1
    rule_id: str = added[0]["id"]
    return rule_id


def rules(server: Server, session: str | None = None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = control(server, "GET", "/faults", session)["data"]
    return found


def settled(entry: dict[str, Any]) -> bool:
    """Whether the server has finished with a journal entry (an entry is opened when the
    request arrives; its status and fault are filled in once it is answered or broken)."""
    return entry["status"] != 0 or entry["fault"] is not None


def journal(server: Server, session: str | None = None, expect: int | None = None) -> list[Any]:
    """The session's journal, once every entry in it is settled (and, with `expect`, once it
    holds that many entries): a `timeout` fault ends only after its client hangs up."""
    deadline = time.monotonic() + 5
    while True:
        answer = control(server, "GET", "/requests", session)
        entries: list[Any] = answer["data"]
        assert answer["total"] == len(entries)
        done = all(settled(e) for e in entries) and (expect is None or len(entries) >= expect)
        if done or time.monotonic() > deadline:
            return entries
        time.sleep(0.02)


def count(server: Server, matcher: dict[str, Any], session: str | None = None) -> int:
    found: int = control(server, "POST", "/requests/count", session, json=matcher)["count"]
    return found


def stored(server: Server, session: str | None = None) -> list[Any]:
    answer = control(server, "GET", "/records", session)
    assert answer["total"] == len(answer["data"])
    records: list[Any] = answer["data"]
    return records


def coverage(server: Server, session: str | None = None) -> dict[str, Any]:
    report: dict[str, Any] = control(server, "GET", "/coverage", session)
    return report


def statuses(report: dict[str, Any], operation: str) -> dict[str, int]:
    """The declared statuses of one operation and how many answers each had."""
    (found,) = [op for op in report["operations"] if op["operation"] == operation]
    answered: dict[str, int] = found["statuses"]
    return answered


def log_line(server: Server, pattern: str, timeout: float = 5.0) -> str:
    """The first line of the server's log matching the regular expression (the log is
    written by a thread every ~10 ms, so wait for it)."""
    wanted = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.log):
            if wanted.search(line):
                return line
        time.sleep(0.02)
    raise AssertionError(f"no log line matches {pattern!r}:\n" + "\n".join(server.log))


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything behind it: causes, contexts, and exceptions held in its
    arguments (urllib3 keeps the socket error in `ProtocolError.args`)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += [a for a in current.args if isinstance(a, BaseException)]
    return seen


def behind[E: BaseException](exc: BaseException, kind: type[E]) -> E:
    """The first exception of that kind behind `exc` (an AssertionError if there is none)."""
    found = [e for e in chain(exc) if isinstance(e, kind)]
    assert found, f"no {kind.__name__} behind {exc!r}: {chain(exc)!r}"
    return found[0]


def http_request(
    method: str = "GET",
    path: str = RECORDS,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """One HTTP/1.1 request as bytes, with the bearer token (a keep-alive connection)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Authorization: Bearer {TOKEN}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    data = json.dumps(body).encode() if body is not None else b""
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def connect(server: Server, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One whole response (status line and headers, body by Content-Length); the connection
    stays open."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    size = int(length.group(1)) if length else 0
    while len(body) < size:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed mid-body"
        body += chunk
    return head, body


class Timer:
    """`with Timer() as t: ...`, then `t.seconds`."""

    def __enter__(self) -> Timer:
        self.started = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.monotonic() - self.started


_CLIENTS: list[MPTClient] = []


def official(server: Server, session: str | None = None, **config: Any) -> MPTClient:
    """The official client, built as a user builds it (`timeout=` as `from_config` takes it);
    `session` adds the `X-Mock-Session` header to its connection."""
    client = MPTClient.from_config(
        BearerTokenAuthentication(TOKEN), base_url=server.api_url, **config
    )
    if session:
        client.http_client.httpx_client.headers[SESSION] = session
    _CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Idle keep-alive connections make a server slower to stop: close them first."""
    yield
    while _CLIENTS:
        _CLIENTS.pop().http_client.httpx_client.close()


def record_body(marker: str) -> dict[str, Any]:
    return new_record(details=marker)


# ---------------------------------------------------------------- 1. on the socket


def test_connection_reset_is_a_tcp_reset(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "GET", "path": RECORDS, "fault": "connection_reset"})

    with connect(server) as sock, Timer() as raw:
        sock.sendall(http_request())
        with pytest.raises(ConnectionResetError) as reset:
            sock.recv(65536)
    assert reset.value.errno == errno.ECONNRESET
    assert raw.seconds < PROMPT

    with Timer() as with_httpx, pytest.raises(httpx.ReadError) as read_error:
        httpx.get(server.url + RECORDS, headers=AUTH, timeout=5)
    assert behind(read_error.value, ConnectionResetError).errno == errno.ECONNRESET
    assert with_httpx.seconds < PROMPT

    with Timer() as with_requests, pytest.raises(requests.ConnectionError) as connection_error:
        requests.get(server.url + RECORDS, headers=AUTH, timeout=5)
    assert behind(connection_error.value, ConnectionResetError).errno == errno.ECONNRESET
    assert with_requests.seconds < PROMPT

    # three requests came, three were reset (no client retried behind our back)
    assert count(server, {"fault": rule}) == 3
    control(server, "DELETE", "/faults")
    assert requests.get(server.url + RECORDS, headers=AUTH, timeout=5).status_code == 200


def test_empty_response_closes_without_a_byte(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "GET", "path": RECORDS, "fault": "empty_response"})

    with connect(server) as sock, Timer() as raw:
        sock.sendall(http_request())
        assert sock.recv(65536) == b""  # end of file, and nothing before it
    assert raw.seconds < PROMPT

    with Timer() as with_httpx, pytest.raises(httpx.RemoteProtocolError) as protocol_error:
        httpx.get(server.url + RECORDS, headers=AUTH, timeout=5)
    assert "Server disconnected without sending a response" in str(protocol_error.value)
    assert with_httpx.seconds < PROMPT

    with Timer() as with_requests, pytest.raises(requests.ConnectionError) as connection_error:
        requests.get(server.url + RECORDS, headers=AUTH, timeout=5)
    behind(connection_error.value, http.client.RemoteDisconnected)
    assert with_requests.seconds < PROMPT

    assert count(server, {"fault": rule}) == 3
    control(server, "DELETE", "/faults")
    assert requests.get(server.url + RECORDS, headers=AUTH, timeout=5).status_code == 200


def test_malformed_response_sends_bytes_that_are_not_http(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "GET", "path": RECORDS, "fault": "malformed_response"})

    with connect(server) as sock, Timer() as raw:
        sock.sendall(http_request())
        answer = read_to_eof(sock)  # returns only at end of file: the server closed
    assert raw.seconds < PROMPT
    assert answer, "some bytes come before the connection closes"
    status_line = answer.split(b"\r\n", 1)[0]
    assert not re.match(rb"^HTTP/\d(\.\d)? \d{3}", status_line), answer

    with Timer() as with_httpx, pytest.raises(httpx.RemoteProtocolError) as protocol_error:
        httpx.get(server.url + RECORDS, headers=AUTH, timeout=5)
    assert "without sending a response" not in str(protocol_error.value)  # it sent something
    assert with_httpx.seconds < PROMPT

    with Timer() as with_requests, pytest.raises(requests.ConnectionError) as connection_error:
        requests.get(server.url + RECORDS, headers=AUTH, timeout=5)
    behind(connection_error.value, http.client.BadStatusLine)
    assert with_requests.seconds < PROMPT

    assert count(server, {"fault": rule}) == 3
    control(server, "DELETE", "/faults")
    assert requests.get(server.url + RECORDS, headers=AUTH, timeout=5).status_code == 200


def test_timeout_says_nothing_until_the_client_gives_up(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "GET", "path": RECORDS, "fault": "timeout"})

    with connect(server) as sock:
        sock.sendall(http_request())
        # meanwhile another client is served normally, and at once
        with Timer() as other:
            normal = httpx.get(server.url + EVENT_TYPES, headers=AUTH, timeout=5)  # no rule
        assert normal.status_code == 200
        assert other.seconds < PROMPT
        sock.settimeout(CLIENT_TIMEOUT)
        with pytest.raises(TimeoutError):
            sock.recv(65536)  # still nothing

    with Timer() as with_httpx, pytest.raises(httpx.ReadTimeout):
        httpx.get(server.url + RECORDS, headers=AUTH, timeout=CLIENT_TIMEOUT)
    assert CLIENT_TIMEOUT * 0.9 <= with_httpx.seconds < CLIENT_TIMEOUT + PROMPT

    with Timer() as with_requests, pytest.raises(requests.ReadTimeout):
        requests.get(server.url + RECORDS, headers=AUTH, timeout=CLIENT_TIMEOUT)
    assert CLIENT_TIMEOUT * 0.9 <= with_requests.seconds < CLIENT_TIMEOUT + PROMPT

    # the server noticed each client hang up (its holder thread does, a moment later), and is fine
    deadline = time.monotonic() + 2
    while True:
        faulted = [e for e in journal(server) if e["fault"] == rule]
        waited = all(e["durationMs"] >= CLIENT_TIMEOUT * 900 for e in faulted)
        if waited or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(faulted) == 3
    assert all(e["status"] == 0 for e in faulted)
    assert all(e["durationMs"] >= CLIENT_TIMEOUT * 900 for e in faulted)
    assert server.health()["status"] == "ok"
    control(server, "DELETE", "/faults")
    assert httpx.get(server.url + RECORDS, headers=AUTH, timeout=5).status_code == 200


def test_a_timeout_fault_frees_its_thread_once_the_client_hangs_up(
    start_server: StartServer,
) -> None:
    """With two threads, rounds of two hung requests: if a `timeout` fault kept its thread
    after its client left, the server could answer nothing at all afterwards."""
    server = start_server("--threads", "2")
    add_rule(server, {"method": "GET", "path": RECORDS, "fault": "timeout"})

    def hang() -> type[BaseException] | None:
        try:
            httpx.get(server.url + RECORDS, headers=AUTH, timeout=0.3)
        except httpx.HTTPError as exc:
            return type(exc)
        return None

    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            assert list(pool.map(lambda _: hang(), range(2))) == [httpx.ReadTimeout] * 2
    with Timer() as after:
        control(server, "DELETE", "/faults")
        answer = httpx.get(server.url + RECORDS, headers=AUTH, timeout=5)
    assert answer.status_code == 200
    assert after.seconds < PROMPT


def test_held_timeouts_take_no_thread_of_the_server(start_server: StartServer) -> None:
    """More clients waiting on `timeout` faults than the server has threads: each is held,
    silent, while the server goes on answering everyone else at once."""
    server = start_server("--threads", "2")
    add_rule(server, {"method": "GET", "path": RECORDS, "fault": "timeout"})
    held = [connect(server) for _ in range(6)]
    try:
        for sock in held:
            sock.sendall(http_request())
        time.sleep(0.3)
        with Timer() as other:
            answer = httpx.get(server.url + EVENT_TYPES, headers=AUTH, timeout=5)
        assert answer.status_code == 200
        assert other.seconds < PROMPT
        for sock in held:
            sock.settimeout(0.2)
            with pytest.raises(TimeoutError):
                sock.recv(1)  # still open, still silent
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize("fault", ["connection_reset", "empty_response", "malformed_response"])
def test_a_fault_on_a_kept_alive_connection(start_server: StartServer, fault: str) -> None:
    """The second request of a keep-alive connection is broken; the first was answered."""
    server = start_server()
    with connect(server) as sock:
        sock.sendall(http_request())
        head, body = read_response(sock)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert json.loads(body)["$meta"]["pagination"]["total"] == 0
        add_rule(server, {"method": "GET", "path": RECORDS, "fault": fault, "times": 1})
        sock.sendall(http_request())
        with Timer() as broken:
            if fault == "connection_reset":
                with pytest.raises(ConnectionResetError):
                    read_to_eof(sock)
            elif fault == "empty_response":
                assert read_to_eof(sock) == b""
            else:
                answer = read_to_eof(sock)
                assert answer
                assert not answer.startswith(b"HTTP/")
        assert broken.seconds < PROMPT
    assert requests.get(server.url + RECORDS, headers=AUTH, timeout=5).status_code == 200
    answered, broken_entry, _ = journal(server)
    assert answered["answer"]["bodySize"] == len(body)
    assert (broken_entry["status"], broken_entry["answer"]) == (0, None)  # nothing was sent


# ---------------------------------------------------------------- 2. the official client


def test_the_client_retries_503_and_creates_one_record(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "POST", "path": RECORDS, "status": 503, "times": 2})
    body = record_body("retried after two 503")

    record = official(server).audit.records.create(body)

    entries = journal(server)
    assert [(e["method"], e["path"], e["status"], e["fault"]) for e in entries] == [
        ("POST", RECORDS, 503, rule),
        ("POST", RECORDS, 503, rule),
        ("POST", RECORDS, 201, None),
    ]
    assert all(e["body"] == body for e in entries)  # the same create, sent three times
    assert entries[-1]["recordId"] == record.id
    assert count(server, {"method": "POST", "path": RECORDS}) == 3
    assert count(server, {"method": "POST", "status": 503}) == 2
    assert count(server, {"fault": rule}) == 2
    assert count(server, {"method": "POST", "status": 201}) == 1
    assert [r["id"] for r in stored(server)] == [record.id]
    (state,) = rules(server)
    assert (state["matched"], state["fired"], state["active"]) == (2, 2, False)
    assert state["documented"] is False  # the spec declares no 503 for the create


@pytest.mark.parametrize("fault", ["connection_reset", "empty_response", "malformed_response"])
def test_the_client_retries_a_broken_connection_and_creates_one_record(
    start_server: StartServer, fault: str
) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "POST", "path": RECORDS, "fault": fault, "times": 1})
    body = record_body(f"retried after {fault}")

    with Timer() as took:
        record = official(server).audit.records.create(body)

    assert took.seconds < PROMPT  # no backoff
    entries = journal(server)
    assert [(e["method"], e["status"], e["fault"]) for e in entries] == [
        ("POST", 0, rule),
        ("POST", 201, None),
    ]
    assert all(e["body"] == body for e in entries)
    assert count(server, {"method": "POST", "path": RECORDS}) == 2
    assert [r["id"] for r in stored(server)] == [record.id]
    assert stored(server)[0]["details"] == body["details"]


def test_the_client_honours_retry_after(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(
        server,
        {
            "method": "POST",
            "path": RECORDS,
            "status": 429,
            "headers": {"Retry-After": "1"},
            "times": 1,
        },
    )

    with Timer() as took:
        record = official(server).audit.records.create(record_body("after a 429"))

    assert 0.9 <= took.seconds < 3.0
    first, second = journal(server)
    assert (first["status"], first["fault"]) == (429, rule)
    assert (second["status"], second["fault"]) == (201, None)
    gap = (
        datetime.fromisoformat(second["time"]) - datetime.fromisoformat(first["time"])
    ).total_seconds()
    assert 0.9 <= gap < 3.0
    assert [r["id"] for r in stored(server)] == [record.id]


def test_the_client_gives_up_after_six_503(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "POST", "path": RECORDS, "status": 503})

    with Timer() as took, pytest.raises(MPTAPIError) as api_error:
        official(server).audit.records.create(record_body("never created"))

    assert api_error.value.status == 503
    assert took.seconds < 3.0  # backoff 0: six tries at once
    entries = journal(server)
    assert len(entries) == TRIES
    assert {(e["method"], e["status"], e["fault"]) for e in entries} == {("POST", 503, rule)}
    assert count(server, {"method": "POST", "path": RECORDS}) == TRIES
    assert stored(server) == []
    assert rules(server)[0]["fired"] == TRIES


def test_the_client_gives_up_after_six_timeouts(start_server: StartServer) -> None:
    server = start_server()
    rule = add_rule(server, {"method": "POST", "path": RECORDS, "fault": "timeout"})
    client = official(server, timeout=CLIENT_TIMEOUT)

    with Timer() as took, pytest.raises(MPTMaxRetryError) as gave_up:
        client.audit.records.create(record_body("timed out"))

    assert f"{TRIES} retry attempts" in str(gave_up.value)
    assert TRIES * CLIENT_TIMEOUT * 0.9 <= took.seconds < TRIES * CLIENT_TIMEOUT + 5
    entries = journal(server, expect=TRIES)
    assert len(entries) == TRIES
    assert {(e["method"], e["status"], e["fault"]) for e in entries} == {("POST", 0, rule)}
    assert stored(server) == []
    # the server is fine: without the rule the same client creates the record
    control(server, "DELETE", "/faults")
    record = client.audit.records.create(record_body("now created"))
    assert [r["id"] for r in stored(server)] == [record.id]


# ---------------------------------------------------------------- 3. journal and log


def test_the_journal_and_the_log_name_the_rule_of_each_fault(start_server: StartServer) -> None:
    server = start_server()
    kinds = ["connection_reset", "empty_response", "malformed_response", "timeout"]
    ids = [
        add_rule(server, {"method": "POST", "path": RECORDS, "fault": kind, "times": 1})
        for kind in kinds
    ]
    answered = add_rule(server, {"method": "POST", "path": RECORDS, "status": 503, "times": 1})
    body = record_body("journal")

    for _ in kinds:  # the rules fire in order, each once
        with pytest.raises(httpx.TransportError):
            httpx.post(server.url + RECORDS, headers=AUTH, json=body, timeout=CLIENT_TIMEOUT)
    assert httpx.post(server.url + RECORDS, headers=AUTH, json=body).status_code == 503
    assert httpx.post(server.url + RECORDS, headers=AUTH, json=body).status_code == 201

    entries = journal(server)
    assert [(e["status"], e["fault"]) for e in entries] == [
        *[(0, rule) for rule in ids],
        (503, answered),
        (201, None),
    ]
    for entry in entries:
        assert (entry["method"], entry["path"], entry["session"]) == ("POST", RECORDS, "default")
        assert entry["body"] == body  # what the broken request sent is kept
        assert entry["headers"]["Authorization"] == "Bearer idt:TKN-***"
    assert entries[3]["durationMs"] >= CLIENT_TIMEOUT * 900  # the timeout waited for its client
    for rule in [*ids, answered]:
        assert count(server, {"fault": rule}) == 1
    assert count(server, {"status": 0}) == len(kinds)

    # the log line of each: no status (`---`), and the rule with its fault
    for rule, kind in zip(ids, kinds, strict=True):
        log_line(server, rf'POST {RECORDS} --- [\d.]+ms fault="{rule} \({kind}\)"$')
    log_line(server, rf"POST {RECORDS} 503 [\d.]+ms fault={answered}$")


# ---------------------------------------------------------------- 4. coverage


def test_coverage_counts_answers_per_operation_and_status_and_fired_faults(
    start_server: StartServer,
) -> None:
    server = start_server()
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as client:
        assert client.post(RECORDS, json=new_record()).status_code == 201
        assert client.post(RECORDS, json=new_record()).status_code == 201
        assert client.post(RECORDS, json={"event": 42}).status_code == 400
        assert client.get(MISSING_RECORD).status_code == 404
        assert client.get(RECORDS, headers={"Authorization": ""}).status_code == 401
        reset = add_rule(server, {"method": "GET", "path": RECORDS, "fault": "connection_reset"})
        for _ in range(2):
            with pytest.raises(httpx.ReadError):
                client.get(RECORDS)
    control(server, "GET", "/health")  # control requests are not the API: not counted

    report = coverage(server)
    assert statuses(report, "createAuditRecord") == {
        "201": 2,
        "400": 1,
        "401": 0,
        "403": 0,
        "404": 0,
        "413": 0,
        "414": 0,
        "415": 0,
        "500": 0,
    }
    assert statuses(report, "getAuditRecord")["404"] == 1
    assert sum(statuses(report, "getAuditRecord").values()) == 1
    assert sum(statuses(report, "listAuditRecords").values()) == 1  # the 401
    assert statuses(report, "listAuditRecords")["401"] == 1
    assert sum(statuses(report, "updateAuditEventType").values()) == 0
    assert report["faults"] == [{"id": reset, "fired": 2}]
    for op in report["operations"]:  # every declared status is listed, answered or not
        assert op["statuses"], op
    # another session's coverage is its own
    other = coverage(server, session="someone-else")
    assert all(not any(op["statuses"].values()) for op in other["operations"])
    assert other["faults"] == []
    assert other["undocumented"] == []


def test_a_rule_answer_counts_under_its_operation(start_server: StartServer) -> None:
    server = start_server()
    add_rule(server, {"method": "POST", "path": RECORDS, "status": 500, "times": 1})
    add_rule(server, {"method": "POST", "path": RECORDS, "status": 503, "times": 1})
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as client:
        assert [client.post(RECORDS, json=new_record()).status_code for _ in range(3)] == [
            500,
            503,
            201,
        ]

    report = coverage(server)
    assert statuses(report, "createAuditRecord")["500"] == 1  # a declared status, answered
    assert statuses(report, "createAuditRecord")["201"] == 1
    assert {"operation": "createAuditRecord", "status": 503, "count": 1} in report["undocumented"]
    assert [e["operation"] for e in journal(server)] == ["createAuditRecord"] * 3
    assert count(server, {"operation": "createAuditRecord"}) == 3


def exercise(server: Server) -> str:
    """Two sessions' worth of requests; the id of the rule that fired (in the default one)."""
    rule = add_rule(server, {"method": "GET", "path": RECORDS, "fault": "empty_response"})
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=5) as client:
        assert client.post(RECORDS, json=new_record()).status_code == 201
        assert client.post(RECORDS, json={"event": 42}).status_code == 400
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(RECORDS)
        other = {SESSION: "other"}
        assert client.post(RECORDS, json=new_record(), headers=other).status_code == 201
        assert client.get(MISSING_RECORD, headers=other).status_code == 404
        assert client.get(RECORDS, headers=other).status_code == 200  # no rule there
    return rule


def test_the_coverage_report_is_json_written_at_sigterm(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "coverage.json"
    server = start_server("--coverage-report", str(path))
    rule = exercise(server)
    assert not path.exists()  # written when the server stops

    assert server.stop() == 0

    report = json.loads(path.read_text())
    # the counts of both sessions, as the worker that served them had them
    assert statuses(report, "createAuditRecord")["201"] == 2
    assert statuses(report, "createAuditRecord")["400"] == 1
    assert statuses(report, "getAuditRecord")["404"] == 1
    assert statuses(report, "listAuditRecords")["200"] == 1
    assert statuses(report, "getOpenApiDocument") == {"200": 0}
    assert report["faults"] == [{"id": rule, "fired": 1}]
    assert [line for line in server.log if "coverage report written" in line] == [
        line for line in server.log if f"coverage report written to {path}" in line
    ]
    assert len([line for line in server.log if "coverage report written" in line]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coverage.json"]  # no partial file
    assert not nonconforming(server)


def test_the_coverage_report_is_junit_xml_for_any_other_name(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "mock-coverage.xml"
    server = start_server("--coverage-report", str(path))
    exercise(server)
    assert server.stop() == 0

    root = ElementTree.fromstring(path.read_bytes())
    assert root.tag == "testsuites"
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    create = suites[f"POST {RECORDS}"]
    cases = {case.get("name", "").split()[0]: case for case in create.iter("testcase")}
    assert set(cases) == {"201", "400", "401", "403", "404", "413", "414", "415", "500"}
    assert all(case.get("classname") == "createAuditRecord" for case in cases.values())
    assert cases["201"].get("name") == "201 answered 2 times"
    assert cases["201"].find("skipped") is None
    assert cases["400"].find("skipped") is None
    never = cases["415"].find("skipped")  # a status never answered: a skipped test case
    assert never is not None
    assert never.get("message") == "status 415 never answered"
    assert (create.get("tests"), create.get("skipped")) == ("9", "7")
    spec_document = suites["GET /public/v1/audit/openapi.json"]
    assert (spec_document.get("tests"), spec_document.get("skipped")) == ("1", "1")
    assert len([line for line in server.log if f"coverage report written to {path}" in line]) == 1


def test_the_coverage_report_keeps_what_was_answered_before_a_reset(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "coverage.json"
    server = start_server("--coverage-report", str(path))
    assert httpx.post(server.url + RECORDS, headers=AUTH, json=new_record()).status_code == 201
    control(server, "POST", "/reset")
    assert httpx.get(server.url + MISSING_RECORD, headers=AUTH).status_code == 404
    assert server.stop() == 0

    report = json.loads(path.read_text())
    assert statuses(report, "getAuditRecord")["404"] == 1
    assert statuses(report, "createAuditRecord")["201"] == 1


def test_the_coverage_report_is_written_while_a_timeout_fault_holds_a_connection(
    start_server: StartServer, tmp_path: Path
) -> None:
    path = tmp_path / "coverage.json"
    server = start_server("--coverage-report", str(path))
    assert httpx.post(server.url + RECORDS, headers=AUTH, json=new_record()).status_code == 201
    add_rule(server, {"method": "GET", "path": RECORDS, "fault": "timeout"})
    with connect(server) as sock:
        sock.sendall(http_request())
        time.sleep(0.2)  # the request is held by the fault
        assert server.stop() == 0
    assert path.exists(), "\n".join(server.log)
    assert statuses(json.loads(path.read_text()), "createAuditRecord")["201"] == 1


def test_sigterm_lets_a_delayed_request_finish(start_server: StartServer) -> None:
    server = start_server()
    add_rule(server, {"method": "GET", "path": RECORDS, "delay_ms": 1500})
    outcome: list[object] = []

    def slow() -> None:
        try:
            outcome.append(httpx.get(server.url + RECORDS, headers=AUTH, timeout=10).status_code)
        except httpx.HTTPError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=slow)
    worker.start()
    deadline = time.monotonic() + 5  # stop once the request is in, held by its delay
    while not any(r["matched"] for r in rules(server)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.stop() == 0
    worker.join()
    assert outcome == [200]


# ---------------------------------------------------------------- 5. sessions


def test_a_fault_rule_in_one_session_does_not_touch_another(start_server: StartServer) -> None:
    server = start_server()
    reset = add_rule(
        server,
        {"method": "GET", "path": RECORDS, "fault": "connection_reset"},
        session="job-a",
    )
    # a rule naming its session, added through the default session's endpoint
    unavailable = add_rule(
        server, {"method": "POST", "path": RECORDS, "status": 503, "session": "job-a"}
    )
    assert rules(server) == []
    assert [r["id"] for r in rules(server, "job-a")] == [reset, unavailable]
    assert rules(server, "job-b") == []

    def client(session: str) -> httpx.Client:
        return httpx.Client(base_url=server.url, headers={**AUTH, SESSION: session}, timeout=5)

    with client("job-a") as a, client("job-b") as b:
        with pytest.raises(httpx.ReadError):
            a.get(RECORDS)
        assert b.get(RECORDS).status_code == 200
        assert b.post(RECORDS, json=new_record()).status_code == 201
        assert a.post(RECORDS, json=new_record()).status_code == 503
    assert httpx.get(server.url + RECORDS, headers=AUTH).status_code == 200  # default

    # the official client, in each session
    created = official(server, session="job-b").audit.records.create(record_body("in b"))
    with pytest.raises(MPTAPIError) as refused:
        official(server, session="job-a").audit.records.create(record_body("in a"))
    assert refused.value.status == 503

    in_a = journal(server, "job-a")
    assert [(e["method"], e["status"], e["fault"]) for e in in_a] == [
        ("GET", 0, reset),
        ("POST", 503, unavailable),
        *[("POST", 503, unavailable)] * TRIES,
    ]
    assert {e["session"] for e in in_a} == {"job-a"}
    in_b = journal(server, "job-b")
    assert [(e["method"], e["status"], e["fault"]) for e in in_b] == [
        ("GET", 200, None),
        ("POST", 201, None),
        ("POST", 201, None),
    ]
    assert {e["session"] for e in in_b} == {"job-b"}
    assert [(e["method"], e["status"]) for e in journal(server)] == [("GET", 200)]
    assert stored(server, "job-a") == []
    assert len(stored(server, "job-b")) == 2
    assert created.id in {r["id"] for r in stored(server, "job-b")}
    assert stored(server) == []
    assert coverage(server, "job-b")["faults"] == []
    assert coverage(server, "job-a")["faults"] == [
        {"id": reset, "fired": 1},
        {"id": unavailable, "fired": 1 + TRIES},
    ]


def test_reset_of_one_session_leaves_the_other(start_server: StartServer) -> None:
    server = start_server()
    sessions = ["x", "y"]
    for name in sessions:
        add_rule(server, {"method": "GET", "path": MISSING_RECORD, "fault": "empty_response"}, name)
        headers = {**AUTH, SESSION: name}
        assert httpx.post(server.url + RECORDS, headers=headers, json=new_record()).status_code == (
            201
        )
        with pytest.raises(httpx.RemoteProtocolError):
            httpx.get(server.url + MISSING_RECORD, headers=headers)
    assert httpx.post(server.url + RECORDS, headers=AUTH, json=new_record()).status_code == 201
    before = {name: server_state(server, name) for name in [*sessions, None]}
    assert before["x"] == before["y"] == (1, 1, 2, 1)

    health = control(server, "POST", "/reset", session="x")

    assert (health["session"], health["records"], health["faults"], health["journal"]) == (
        "x",
        0,
        0,
        0,
    )
    assert server_state(server, "x") == (0, 0, 0, 0)
    assert server_state(server, "y") == before["y"]
    assert server_state(server, None) == before[None]
    # x's rule is gone, y's still fires
    assert httpx.get(server.url + MISSING_RECORD, headers={**AUTH, SESSION: "x"}).status_code == (
        404
    )
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(server.url + MISSING_RECORD, headers={**AUTH, SESSION: "y"})


def server_state(server: Server, session: str | None) -> tuple[int, int, int, int]:
    """Records, rules, journal entries and faults fired in the coverage, of one session."""
    health = control(server, "GET", "/health", session)
    assert health["session"] == (session or "default")
    assert health["records"] == len(stored(server, session))
    fired = sum(fault["fired"] for fault in coverage(server, session)["faults"])
    return health["records"], health["faults"], health["journal"], fired
