"""A small upstream that answers like the platform, with deliberate divergences from the spec
(and from the mock), for the proxy's, the drift report's and the diff's tests.

Each divergence has a request of its own (the same in every run):

- `POST /records`: a valid 201, and an extra header (`MPT-Debug: on`);
- `GET /records/AUD-0000-0000-0000-0001`: a wrong type (`event` is an integer);
- `GET /records?...`: a missing member (`$meta.pagination.total`);
- `GET /records` with `MPT-Streaming: true`: JSON lines, the second with a wrong type (after
  `X-Pause` seconds);
- `GET /event-types/AET-6491-7370`: an undeclared status (418);
- `GET /records/AUD-0000-0000-0000-0002`: a slow answer (after SLOW seconds);
- `GET /records/AUD-0000-0000-0000-0003`: a reset connection.

Every other request is a 404 problem. The requests it saw (method, target, headers, body) are
kept in `seen`, raw, to check what the proxy forwarded.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

RECORDS = "/public/v1/audit/records"
CREATED_ID = "AUD-0000-0000-0000-0001"
SLOW_ID = "AUD-0000-0000-0000-0002"
RESET_ID = "AUD-0000-0000-0000-0003"
EVENT_TYPE = "/public/v1/audit/event-types/AET-6491-7370"
SLOW = 3.0
ACTOR = {
    "id": "TKN-1234-5678",
    "name": "API Token TKN-1234-5678",
    "account": {"id": "ACC-0000-0001", "name": "Mock Account", "accountType": "Vendor"},
}
VIEWERS = [{"id": "ACC-0000-0001", "name": "Mock Account", "type": "Vendor"}]


def record(body: dict[str, Any], record_id: str = CREATED_ID) -> dict[str, Any]:
    """The record the mock would make of `body` (its server-set members)."""
    return {
        "id": record_id,
        "event": body["event"],
        **({"details": body["details"]} if "details" in body else {}),
        "timestamp": "2026-01-02T03:04:05.678Z",
        "type": "Public",
        "object": body["object"],
        "actor": ACTOR,
        "viewers": VIEWERS,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Divergent

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        media = "application/problem+json" if status >= 400 else "application/json"
        self.send_header("Content-Type", f"{media}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _seen(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append((self.command, self.path, dict(self.headers.items()), body))
        return body

    def do_POST(self) -> None:
        body = self._seen()
        if self.path == RECORDS:
            created = record(json.loads(body))
            location = f"http://{self.headers['Host']}{RECORDS}/{CREATED_ID}"
            self._answer(201, created, {"Location": location, "MPT-Debug": "on"})
        else:
            self._not_found()

    def do_GET(self) -> None:
        self._seen()
        path = self.path.split("?", 1)[0]
        if path == f"{RECORDS}/{CREATED_ID}":
            self._answer(200, {**self.server.created(), "event": 42})
        elif path == RECORDS and self.headers.get("MPT-Streaming") == "true":
            self._stream()
        elif path == RECORDS:
            meta = {"pagination": {"offset": 0, "limit": 10}}
            self._answer(200, {"$meta": meta, "data": [self.server.created()]})
        elif path == EVENT_TYPE:
            self._answer(418, {"type": "about:blank", "title": "Teapot", "status": 418})
        elif path == f"{RECORDS}/{SLOW_ID}":
            time.sleep(SLOW)
            self._answer(200, self.server.created())
        elif path == f"{RECORDS}/{RESET_ID}":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        else:
            self._not_found()

    def _stream(self) -> None:
        first = self.server.created()
        lines = [first, {**first, "id": "AUD-0000-0000-0000-0009", "event": 42}]
        self.send_response(200)
        self.send_header("Content-Type", "application/jsonl; charset=utf-8")
        self.send_header("MPT-Streaming", "true")
        self.send_header("MPT-Item-Count", str(len(lines)))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        pause = float(self.headers.get("X-Pause", "0"))  # seconds between two lines
        for number, line in enumerate(lines):
            if number:
                time.sleep(pause)
            data = json.dumps(line).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _not_found(self) -> None:
        body = {"type": "about:blank", "title": "Not Found", "status": 404, "traceId": "00-x"}
        self._answer(404, body)


class Divergent(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.tls = tls
        self.body = {
            "event": "platform.commerce.order.created",
            "object": {"id": "ORD-DIV-1", "objectType": "Order"},
        }

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
        return conn, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client gone (a timed-out proxy) is expected

    def created(self) -> dict[str, Any]:
        return record(self.body)

    @property
    def url(self) -> str:
        scheme = "https" if self.tls is not None else "http"
        host = "localhost" if self.tls is not None else "127.0.0.1"
        return f"{scheme}://{host}:{self.server_address[1]}"

    def start(self) -> Divergent:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self


def exchanges(url: str, auth: dict[str, str], query_secret: str | None = None) -> None:
    """One request through a proxy at `url` for each of the upstream's answers, in order."""
    body = {
        "event": "platform.commerce.order.created",
        "object": {"id": "ORD-DIV-1", "objectType": "Order"},
    }
    assert requests.post(f"{url}{RECORDS}", json=body, headers=auth).status_code == 201
    assert requests.get(f"{url}{RECORDS}/{CREATED_ID}", headers=auth).status_code == 200
    listed = f"{url}{RECORDS}?eq(object.id,ORD-DIV-1)"
    if query_secret is not None:  # a token-like parameter, for the recording to mask
        listed += f"&access_token={query_secret}"
    assert requests.get(listed, headers=auth).status_code == 200
    assert requests.get(f"{url}{EVENT_TYPE}", headers=auth).status_code == 418
    assert requests.get(f"{url}{RECORDS}/{SLOW_ID}", headers=auth).status_code == 504
    assert requests.get(f"{url}{RECORDS}/{RESET_ID}", headers=auth).status_code == 502
    streamed = {**auth, "MPT-Streaming": "true"}
    lines = requests.get(f"{url}{RECORDS}?eq(object.id,ORD-DIV-1)", headers=streamed)
    assert len(lines.content.splitlines()) == 2
