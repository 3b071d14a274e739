"""HTTP details the console script's server (`serving.front` on uWSGI's raw socket, and
`http.wire`) gets right: an absolute-form target is served, a version we do not speak is
answered 505 in HTTP/1.1, an over-long target 414 and too many header fields 431 (also past
64 KiB), `Expect: 100-continue` its `100 Continue` before the body is read, chunk extensions
and trailers accepted, pipelined requests answered in order; a connection's read and write
timeouts kept by the kernel (no poll before each), a silent read and an unread answer still
given up."""

from __future__ import annotations

import json
import re
import socket
import time
from unittest.mock import patch

import pytest
from support import AUTH, RECORDS, Server, new_record

from mockserver.http.wire import MAX_FIELDS, MAX_HEADER_BYTES, MAX_TARGET
from mockserver.serving.front import HEAD_LIMIT, Connection, path_info
from mockserver.sockets import timed_by_the_kernel

TOKEN = AUTH["Authorization"]


def exchange(server: Server, request: bytes, timeout: float = 10) -> bytes:
    """Send `request` on a new connection; everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def head_and_body(answer: bytes) -> tuple[str, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), json.loads(body) if body else {}


def test_an_absolute_form_target_is_served_as_its_path(server: Server) -> None:
    target = f"http://127.0.0.1:{server.port}{RECORDS}?limit=1"
    answer = exchange(
        server,
        f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        "Connection: close\r\n\r\n".encode(),
    )
    head, body = head_and_body(answer)
    assert head.startswith("HTTP/1.1 200 ")
    assert "data" in body


@pytest.mark.parametrize("version", ["HTTP/2.0", "HTTP/3.7", "HTTP/1.2"])
def test_a_version_we_do_not_speak_is_answered_505_in_http_1_1(
    server: Server, version: str
) -> None:
    answer = exchange(server, f"GET /_mock/health {version}\r\nHost: x\r\n\r\n".encode())
    head, body = head_and_body(answer)
    assert head.startswith("HTTP/1.1 505 HTTP Version Not Supported\r\n")
    assert "Connection: close" in head
    assert body["status"] == 505
    assert body["traceId"]


def test_a_target_over_the_limit_is_answered_414(server: Server) -> None:
    query = "a" * (MAX_TARGET + 1)
    answer = exchange(
        server,
        f"GET /_mock/health?{query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode(),
    )
    head, body = head_and_body(answer)
    assert head.startswith("HTTP/1.1 414 ")
    assert body["status"] == 414


def test_too_many_header_fields_are_answered_431(server: Server) -> None:
    fields = "".join(f"X-Field-{n}: v\r\n" for n in range(MAX_FIELDS + 1))
    answer = exchange(
        server,
        f"GET /_mock/health HTTP/1.1\r\nHost: x\r\n{fields}Connection: close\r\n\r\n".encode(),
    )
    head, body = head_and_body(answer)
    assert head.startswith("HTTP/1.1 431 ")
    assert "header fields" in str(body["detail"])


def test_header_fields_over_the_limit_in_bytes_are_answered_431(server: Server) -> None:
    """Four fields of 9 000 bytes: fewer than MAX_FIELDS, more than MAX_HEADER_BYTES together
    (and within uWSGI's 64 KiB buffer)."""
    fields = "".join(f"X-Big-{n}: {'v' * 9000}\r\n" for n in range(4))
    answer = exchange(
        server,
        f"GET /_mock/health HTTP/1.1\r\nHost: x\r\n{fields}Connection: close\r\n\r\n".encode(),
    )
    head, body = head_and_body(answer)
    assert head.startswith("HTTP/1.1 431 ")
    assert "Connection: close" in head
    assert body["detail"] == (
        f"The request's header fields take {4 * (9000 + 9 + 2) + 9 + 19} bytes, more than the "
        f"limit of {MAX_HEADER_BYTES} bytes (32 KiB)."
    )


def test_expect_100_continue_gets_its_100_before_the_body_is_sent(server: Server) -> None:
    body = json.dumps(new_record()).encode()
    head = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head)
        assert connection.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"  # no body sent yet
        connection.sendall(body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201 ")


def chunked_post(body: bytes, size_line: bytes, trailer: bytes, close: bool = False) -> bytes:
    head = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        f"{'Connection: close' + chr(13) + chr(10) if close else ''}\r\n"
    ).encode()
    return head + size_line + b"\r\n" + body + b"\r\n0\r\n" + trailer + b"\r\n"


def test_a_chunked_body_with_trailers_is_accepted_and_the_connection_kept(server: Server) -> None:
    body = json.dumps(new_record()).encode()
    request = chunked_post(body, b"%x" % len(body), b"X-Checksum: 1\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request)
        assert connection.recv(65536).startswith(b"HTTP/1.1 201 ")
        connection.sendall(b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n")  # the same one
        assert connection.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_a_chunk_extension_is_accepted(server: Server) -> None:
    """RFC 9112 7.1.1: a chunk's size line may carry extensions, which a server ignores."""
    body = json.dumps(new_record()).encode()
    head, record = head_and_body(
        exchange(server, chunked_post(body, b"%x;name=value;x" % len(body), b"", close=True))
    )
    assert head.startswith("HTTP/1.1 201 ")
    assert record["event"] == json.loads(body)["event"]


HEALTH = b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n"
CLOSE = b"GET /_mock/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def answers(connection: socket.socket) -> list[bytes]:
    """The answers read until the server closes the connection (each a head and its body)."""
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    found = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head)[1])  # type: ignore[index]
        found.append(head)
        data = rest[length:]
    return found


def test_pipelined_requests_are_all_answered_in_order(server: Server) -> None:
    """Requests sent together (RFC 9112 9.3.2) get their answers in the order sent, on the
    same connection, kept open until a request says `Connection: close`."""
    body = json.dumps(new_record()).encode()
    post = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(HEALTH + post + HEALTH * 2 + post + CLOSE)
        heads = answers(connection)
    statuses = [head.split(b" ", 2)[1] for head in heads]
    assert statuses == [b"200", b"201", b"200", b"200", b"201", b"200"]
    assert [b"Connection: close" in head for head in heads] == [False] * 5 + [True]


def test_a_head_past_every_limit_is_answered_and_the_connection_closed(server: Server) -> None:
    """A request line and header fields past HEAD_LIMIT are not read further: 431 (or 414
    for the target alone), then the connection closes without a reset losing the answer."""
    huge = b"X-Huge: " + b"h" * (HEAD_LIMIT + 1) + b"\r\n"
    head, body = head_and_body(exchange(server, b"GET /_mock/health HTTP/1.1\r\n" + huge + b"\r\n"))
    assert head.startswith("HTTP/1.1 431 ")
    assert "Connection: close" in head
    assert body["detail"] == f"The request's line and header fields are over {HEAD_LIMIT} bytes."
    target = b"/_mock/health?" + b"q" * (HEAD_LIMIT + 1)
    head, body = head_and_body(exchange(server, b"GET " + target + b" HTTP/1.1\r\n\r\n"))
    assert head.startswith("HTTP/1.1 414 ")
    assert body["detail"] == f"The request target is longer than {HEAD_LIMIT} bytes."


@pytest.mark.parametrize(("field", "status"), [("X-Url", 414), ("Cookie", 431)])
def test_a_128_kb_url_is_414_and_a_100_kb_cookie_431(
    server: Server, field: str, status: int
) -> None:
    """Past uWSGI's 64 KiB buffer (a TCP reset before `serving.front`): answered."""
    target, fields = "/_mock/health", ""
    if field == "X-Url":
        target += "?" + "u" * 128 * 1024
    else:
        fields = f"Cookie: {'c' * 100 * 1024}\r\n"
    answer = exchange(server, f"GET {target} HTTP/1.1\r\nHost: x\r\n{fields}\r\n".encode())
    head, body = head_and_body(answer)
    assert head.startswith(f"HTTP/1.1 {status} ")
    assert body["status"] == status


def test_a_body_over_the_limit_is_answered_413_unread(server: Server) -> None:
    """The app answers 413 from the Content-Length alone; the body is not waited for."""
    head = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {50 * 2**20}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + b"{")  # 50 MiB announced, one byte sent
        answer = connection.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"Connection: close" in answer


def test_requests_one_after_the_other_keep_the_connection(server: Server) -> None:
    """No false alarm: a client that waits for each answer (bodies, many header fields, a
    field sent twice) keeps its connection."""
    import requests

    with requests.Session() as client:
        for n in range(3):
            answer = client.post(
                server.url + RECORDS,
                json=new_record(),
                headers={**AUTH, "X-Long": "v" * 5000, "X-Seq": str(n)},
                timeout=10,
            )
            assert answer.status_code == 201
            assert "Connection" not in answer.headers
            assert client.get(server.url + "/_mock/health", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/", "/"),
        ("/a//b", "/a/b"),
        ("/a/./b/", "/a/b/"),
        ("/a/b/..", "/a/"),
        (f"{RECORDS}/../../../_mock/health", "/public/_mock/health"),
        (f"{RECORDS}/%2e%2e%2f_mock", f"{RECORDS}/../_mock"),
        ("/a%20b#frag", "/a b"),
        ("/..", "/"),
    ],
)
def test_the_path_is_decoded_as_uwsgi_decoded_it(target: str, path: str) -> None:
    """Repeated slashes made one, dot segments sent as such resolved, `%2e` kept a name."""
    assert path_info(target) == path


# ---------------------------------------------------------------- timeouts kept by the kernel


def test_a_connection_s_timeouts_are_the_kernel_s_and_end_a_silent_read() -> None:
    """No timeout of Python's own (it polls before every read and write), and a read of a
    silent client still ends after the time given."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        timed_by_the_kernel(ours, 0.3)
        assert ours.gettimeout() is None
        started = time.monotonic()
        with pytest.raises(BlockingIOError):
            ours.recv(1)
        assert 0.25 < time.monotonic() - started < 3


def test_an_answer_to_a_client_that_never_reads_is_given_up() -> None:
    """An answer larger than the sockets' buffers, to a client that reads nothing: the write
    gives up (the connection goes) within about twice the connection's time, not never."""
    ours, theirs = socket.socketpair()
    with ours, theirs:
        timed_by_the_kernel(ours, 0.3)
        connection = Connection.__new__(Connection)
        connection.sock = ours
        started = time.monotonic()
        with patch("mockserver.serving.front.IDLE_TIMEOUT", 0.3):
            assert connection._send(b"x" * 8_000_000) is False
        assert time.monotonic() - started < 3
        theirs.setblocking(False)
        assert len(theirs.recv(1 << 20)) > 0  # what fitted was written
