"""Two real servers (the console script) on one Redis, as replicas: a session's fault rules and
journal are the same on both; the official client, retries included, works against the pair
behind a round-robin TCP proxy written here (each new connection goes to the next server)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication
from redis_server import RedisServer
from support import AUTH, TOKEN, Server, new_record

RECORDS = "/public/v1/audit/records"
Start = Callable[..., Server]


class RoundRobin:
    """A TCP proxy on a free loopback port: each connection it accepts goes to the next
    backend in turn; bytes are copied both ways until either side closes (a reset from a
    backend is passed on as a reset)."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.chosen: list[int] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/public/v1"

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            backend = self.backends[len(self.chosen) % len(self.backends)]
            self.chosen.append(backend)
            upstream = socket.create_connection(("127.0.0.1", backend))
            threading.Thread(target=_relay, args=(client, upstream), daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.listener.close()


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Copy bytes both ways, one thread for both sockets (a socket closed by another thread
    while this one waits on it would not close until the wait ends)."""
    peer = {client: upstream, upstream: client}
    open_ = {client, upstream}
    with selectors.DefaultSelector() as selector:
        for side in open_:
            selector.register(side, selectors.EVENT_READ)
        while open_:
            for key, _ in selector.select():
                side: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = side.recv(65536)
                except ConnectionResetError:  # passed on as a reset: no lingering on close
                    peer[side].setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_0)
                    open_.clear()
                    break
                if data:
                    peer[side].sendall(data)
                else:
                    selector.unregister(side)
                    open_.discard(side)
                    with contextlib.suppress(OSError):
                        peer[side].shutdown(socket.SHUT_WR)
    client.close()
    upstream.close()


LINGER_0 = struct.pack("ii", 1, 0)


@pytest.fixture
def replicas(start_server: Start, engine: RedisServer, engine_prefix: str) -> tuple[Server, Server]:
    store = ("--store", engine.url, "--store-prefix", engine_prefix)
    return start_server(*store), start_server(*store)


@pytest.fixture
def proxy(replicas: tuple[Server, Server]) -> Iterator[RoundRobin]:
    made = RoundRobin([server.port for server in replicas])
    yield made
    made.close()


def control(server: Server, method: str, path: str, **kw: Any) -> Any:
    answer = requests.request(method, f"{server.url}/_mock{path}", timeout=10, **kw)
    assert answer.ok, answer.text
    return answer.json() if answer.content else None


def test_a_session_s_faults_and_journal_are_seen_by_both(replicas: tuple[Server, Server]) -> None:
    one, two = replicas
    ci = {**AUTH, "X-Mock-Session": "ci"}
    rule = {"method": "POST", "path": RECORDS, "status": 503, "times": 1}
    [added] = control(one, "POST", "/faults?session=ci", json=rule)["data"]
    assert [r["id"] for r in control(two, "GET", "/faults?session=ci")["data"]] == [added["id"]]
    first = requests.post(two.api_url + "/audit/records", json=new_record(), headers=ci)
    second = requests.post(one.api_url + "/audit/records", json=new_record(), headers=ci)
    assert (first.status_code, second.status_code) == (503, 201)
    for server in (one, two):
        entries = control(server, "GET", "/requests?session=ci")["data"]
        assert [(e["status"], e["fault"]) for e in entries] == [(503, added["id"]), (201, None)]
        assert entries[1]["recordId"] == second.json()["id"]
        [state] = control(server, "GET", "/faults?session=ci")["data"]
        assert (state["fired"], state["active"]) == (1, False)
        names = [s["name"] for s in control(server, "GET", "/sessions")["data"]]
        assert sorted(names) == ["ci", "default"]
    assert control(one, "GET", "/requests")["data"] == []  # the default session's own


def test_the_official_client_with_its_retries_through_a_round_robin_proxy(
    replicas: tuple[Server, Server], proxy: RoundRobin
) -> None:
    """Two connection resets: the client retries on a new connection each time, which the
    proxy sends to the other server; the rule fires exactly twice across the pair, and the
    record made on the third try is read back through the proxy (from either server)."""
    one, two = replicas
    rule = {"method": "POST", "path": RECORDS, "fault": "connection_reset", "times": 2}
    [added] = control(one, "POST", "/faults", json=rule)["data"]
    client = MPTClient.from_config(BearerTokenAuthentication(TOKEN), base_url=proxy.api_url)
    record = client.audit.records.create(new_record(details="through the pair"))
    assert len(set(proxy.chosen)) == 2  # both servers served the client
    for server in (one, two):
        entries = control(server, "GET", "/requests")["data"]
        assert [(e["method"], e["status"], e["fault"]) for e in entries] == [
            ("POST", 0, added["id"]),
            ("POST", 0, added["id"]),
            ("POST", 201, None),
        ]
        assert control(server, "GET", "/faults")["data"][0]["fired"] == 2
    readers = [
        MPTClient.from_config(BearerTokenAuthentication(TOKEN), base_url=proxy.api_url)
        for _ in range(4)
    ]
    for reader in readers:  # four new connections: each server twice
        assert reader.audit.records.get(record.id).id == record.id
    assert proxy.chosen.count(one.port) >= 3
    assert proxy.chosen.count(two.port) >= 3
    for made in (client, *readers):
        made.http_client.httpx_client.close()
