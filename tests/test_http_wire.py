"""HTTP details the console script's server (uWSGI's HTTP/1.1 socket and `http.wire`) gets
right: an absolute-form target is served, a version we do not speak is answered 505 in
HTTP/1.1, an over-long target 414, too many header fields 431, and
`Expect: 100-continue` its `100 Continue` before the body is read."""

from __future__ import annotations

import json
import re
import socket

import pytest
from support import AUTH, RECORDS, Server, new_record

from mockserver.http.wire import MAX_FIELDS, MAX_HEADER_BYTES, MAX_TARGET

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


def chunked_post(body: bytes, size_line: bytes, trailer: bytes) -> bytes:
    head = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
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


def test_a_chunk_extension_is_refused_by_uwsgis_chunked_reader(server: Server) -> None:
    body = json.dumps(new_record()).encode()
    head, problem = head_and_body(exchange(server, chunked_post(body, b"%x;n=v" % len(body), b"")))
    assert head.startswith("HTTP/1.1 400 ")
    assert "Transfer-Encoding" in problem["errors"]  # type: ignore[operator]


HEALTH = b"GET /_mock/health HTTP/1.1\r\nHost: x\r\n\r\n"


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


def test_pipelined_requests_get_the_first_answer_with_connection_close(server: Server) -> None:
    """uWSGI answers the first of requests sent together and drops the rest: the answer says
    `Connection: close`, and the connection ends (the client retries the rest)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(HEALTH * 3)
        (head,) = answers(connection)
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close" in head


def test_a_pipelined_request_after_a_body_or_on_a_kept_connection_is_refused_visibly(
    server: Server,
) -> None:
    body = json.dumps(new_record()).encode()
    post = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(post)  # alone: answered, the connection kept
        first = connection.recv(65536)
        assert first.startswith(b"HTTP/1.1 201 ")
        assert b"Connection: close" not in first
        connection.sendall(post + HEALTH)  # then two at once
        (head,) = answers(connection)
    assert head.startswith(b"HTTP/1.1 201 ")
    assert b"\r\nConnection: close" in head


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
