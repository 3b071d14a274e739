"""The store on a Redis (and on a Valkey) that speaks TLS only (`rediss://`, docs/redis.md,
"TLS and ACL users"): a real server of two worker processes serves, streams, decides fault
rules and keeps its journal over it, the password never shown; a certificate the given CA
did not sign stops the start-up in one line naming the URL. And the same server on a Redis
that listens on a Unix socket only (`unix://`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import requests
import trustme
from redis_server import ENGINES, RedisServer
from support import AUTH, Server, new_record
from test_redis_store import started_on

RECORDS = "/audit/records"
PASSWORD = "tls-s3cret-pass"


def with_tls(binary: str, directory: Path) -> RedisServer:
    """A redis-server (or valkey-server: `binary`) of the caller's own speaking TLS only, its
    certificate signed by a CA of its own, with a password; not started."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    certificate, key = directory / "redis.pem", directory / "redis.key"
    bundle = directory / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(certificate))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    return RedisServer(binary, password=PASSWORD, tls=(certificate, key), ca=bundle)


@pytest.fixture(params=list(ENGINES))
def tls_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    server = with_tls(ENGINES[request.param], tmp_path).start()
    yield server
    server.stop()


@pytest.fixture(params=["tls-redis", "tls-valkey", "unix-redis"])
def other_transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis (or Valkey) of this test's own on TLS only, or on a Unix socket only."""
    transport, engine = request.param.split("-")
    if transport == "tls":
        server = with_tls(ENGINES[engine], tmp_path)
    else:
        server = RedisServer(ENGINES[engine], password=PASSWORD, unix=True)
    yield server.start()
    server.stop()


def test_a_server_of_two_processes_on_a_tls_or_unix_socket_redis(
    start_server: Callable[..., Server], other_transport: RedisServer
) -> None:
    redis = other_transport
    server = start_server(
        "--store-prefix", "transport", "--processes", "2", env={"MOCKSERVER_STORE": redis.url}
    )
    rule = {"method": "GET", "path": "/public/v1" + RECORDS, "status": 503, "times": 2}
    assert requests.post(server.url + "/_mock/faults", json=rule, timeout=10).status_code == 201
    made = [
        requests.post(server.api_url + RECORDS, json=new_record(), headers=AUTH, timeout=10)
        for _ in range(3)
    ]
    assert [answer.status_code for answer in made] == [201, 201, 201]
    with requests.Session() as http:  # one connection, kept alive
        statuses = [
            http.get(server.api_url + RECORDS, headers=AUTH, timeout=10).status_code
            for _ in range(4)
        ]
        record = made[0].json()
        fetched = http.get(f"{server.api_url}{RECORDS}/{record['id']}", headers=AUTH, timeout=10)
        streamed = http.get(
            server.api_url + RECORDS, headers={**AUTH, "MPT-Streaming": "true"}, timeout=10
        )
    assert statuses == [503, 503, 200, 200]
    assert fetched.json() == record
    lines = [json.loads(line) for line in streamed.text.splitlines() if line.strip()]
    assert sorted(line["id"] for line in lines) == sorted(answer.json()["id"] for answer in made)
    entries = requests.get(server.url + "/_mock/requests", timeout=10).json()["data"]
    assert [entry["status"] for entry in entries] == [201, 201, 201, 503, 503, 200, 200, 200, 200]
    health = server.health()
    assert health["store"]["reachable"] is True
    assert health["store"]["url"] == redis.url.replace(PASSWORD, "***")
    assert health["records"] == 3
    assert server.stop() == 0
    shown = [line for line in server.log if PASSWORD in line or "Traceback" in line]
    assert not shown, "\n".join(server.log)


def test_a_certificate_the_ca_did_not_sign_stops_the_start_up(
    tls_redis: RedisServer, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    url = tls_redis.url.replace(str(tls_redis.ca), str(other))
    done = started_on(url)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    masked = url.replace(PASSWORD, "***")
    assert line.startswith(f"mockserver: error: --store {masked}: cannot reach Redis (")
    assert "certificate verify failed" in line
    assert PASSWORD not in done.stdout + done.stderr


def test_the_copy_in_each_process_on_a_tls_or_unix_socket_redis(
    other_transport: RedisServer,
) -> None:
    """`--read-cache-bytes`'s listener on TLS (a non-blocking TLS read) or a Unix socket: a
    value kept is served without Redis, and forgotten once another client changed it."""
    from mockserver.storage.redis_connection import Link, Packed

    link = Link(other_transport.url, 2**20)
    assert link.cache is not None
    link.cache.open()
    other = redis.Redis.from_url(other_transport.url)
    other.hset("k", "a", b"1")
    command = Packed("HGET", "k").with_one("a")
    assert link.read_kept("k", "a", command) == b"1"
    for n in range(2, 12):
        assert link.cached("k", "a") == str(n - 1).encode()
        other.hset("k", "a", str(n).encode())
        other.ping()
        assert link.cached("k", "a") is None
        assert link.read_kept("k", "a", command) == str(n).encode()
    other.close()
