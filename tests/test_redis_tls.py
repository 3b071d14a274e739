"""The store on a Redis (and on a Valkey) that speaks TLS only (`rediss://`, docs/redis.md,
"TLS and ACL users"): a real server of two worker processes serves, streams, decides fault
rules and keeps its journal over it, the password never shown; a certificate the given CA
did not sign stops the start-up in one line naming the URL."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import trustme
from redis_server import ENGINES, RedisServer
from support import AUTH, MOCKSERVER, Server, free_port, new_record

RECORDS = "/audit/records"
PASSWORD = "tls-s3cret-pass"


@pytest.fixture(params=list(ENGINES))
def tls_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server (or valkey-server) of this test's own speaking TLS only, its certificate
    signed by a CA of this test's own, with a password."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    certificate, key, bundle = tmp_path / "redis.pem", tmp_path / "redis.key", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(certificate))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    binary = ENGINES[request.param]
    server = RedisServer(binary, password=PASSWORD, tls=(certificate, key), ca=bundle).start()
    yield server
    server.stop()


def test_a_server_of_two_processes_on_a_tls_redis(
    start_server: Callable[..., Server], tls_redis: RedisServer
) -> None:
    server = start_server(
        "--store-prefix", "tls", "--processes", "2", env={"MOCKSERVER_STORE": tls_redis.url}
    )
    rule = {"method": "GET", "path": "/public/v1" + RECORDS, "status": 503, "times": 2}
    assert requests.post(server.url + "/_mock/faults", json=rule, timeout=10).status_code == 201
    made = [
        requests.post(server.api_url + RECORDS, json=new_record(), headers=AUTH, timeout=10)
        for _ in range(3)
    ]
    assert [answer.status_code for answer in made] == [201, 201, 201]
    with requests.Session() as http:  # one connection: the two processes take turns at it
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
    assert health["store"]["url"].startswith("rediss://:***@127.0.0.1:")
    assert health["records"] == 3
    assert server.stop() == 0
    assert not [line for line in server.log if PASSWORD in line or "Traceback" in line]


def test_a_certificate_the_ca_did_not_sign_stops_the_start_up(
    tls_redis: RedisServer, tmp_path: Path
) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    url = tls_redis.url.replace(str(tls_redis.ca), str(other))
    done = subprocess.run(
        [str(MOCKSERVER), "--port", str(free_port()), "--store", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    masked = url.replace(PASSWORD, "***")
    assert line.startswith(f"mockserver: error: --store {masked}: cannot reach Redis (")
    assert "certificate verify failed" in line
    assert PASSWORD not in done.stdout + done.stderr
