"""docker-compose.yml's commands are the ones tested: Redis and two mock replicas behind one
port. No Docker engine runs here, so its commands run on the host: `redis-server` with the
compose file's arguments (on a free loopback port), the image's `mockserver` twice with the
image's environment and the compose file's (the Redis host and the address moved to
loopback), and a round-robin proxy of the test's own (`test_redis_replicas.RoundRobin`) where
haproxy stands, whose configuration is checked to balance the same two replicas."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import yaml
from redis_server import REDIS_SERVER, RedisServer
from support import AUTH, MOCKSERVER, ROOT, Server, free_port, new_record
from test_dockerfile import exec_form, image_env, values
from test_redis_replicas import RoundRobin

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
REPLICAS = ["mock-1", "mock-2"]


def test_the_file_has_redis_two_replicas_and_one_port() -> None:
    assert set(SERVICES) == {"redis", *REPLICAS, "balancer"}
    assert SERVICES["redis"]["image"].startswith("redis:7")
    for name in REPLICAS:
        replica = SERVICES[name]
        assert replica["build"] == "."
        assert replica["command"] == exec_form(values("CMD")[0]) == ["mockserver"]
        assert replica["environment"]["MOCKSERVER_STORE"] == "redis://redis:6379/0"
        assert replica["depends_on"] == ["redis"]
    assert SERVICES["mock-1"] == SERVICES["mock-2"]  # one definition: same store and prefix
    assert SERVICES["balancer"]["ports"] == ["8080:8080"]
    config = (ROOT / "deploy" / "haproxy.cfg").read_text()
    assert "balance roundrobin" in config
    port = image_env()["MOCKSERVER_PORT"]
    servers = re.findall(r"^\s*server (\S+) (\S+):(\d+)", config, re.MULTILINE)
    assert servers == [(name, name, port) for name in REPLICAS]


@pytest.fixture
def compose_redis() -> Iterator[RedisServer]:
    """The compose file's redis-server command, on a loopback port of its own."""
    command = SERVICES["redis"]["command"]
    assert command[0] == "redis-server"
    server = RedisServer()
    directory = Path(tempfile.mkdtemp(prefix="compose-redis-"))
    server.process = subprocess.Popen(
        [REDIS_SERVER, *command[1:], "--port", str(server.port), "--bind", "127.0.0.1",
         "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = server.client()
    deadline = time.monotonic() + 10
    while not _answers(client) and time.monotonic() < deadline:
        time.sleep(0.02)
    yield server
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


def replica(name: str, redis_port: int) -> Server:
    """A replica as compose starts it: the image's command and environment, then the
    service's, with Redis and the address on loopback (`Server` adds `--port` and
    `--check-responses`, as for every server the tests start)."""
    env = {**image_env(), **SERVICES[name]["environment"]}
    env["MOCKSERVER_STORE"] = env["MOCKSERVER_STORE"].replace(
        "redis:6379", f"127.0.0.1:{redis_port}"
    )
    env["MOCKSERVER_HOST"] = "127.0.0.1"
    port = free_port()
    env["MOCKSERVER_PORT"] = str(port)
    command = SERVICES[name]["command"]
    assert command == [MOCKSERVER.name]
    running = Server([], env, port=port)
    running.start()
    return running


def test_the_compose_commands_serve_one_mock_behind_one_port(
    compose_redis: RedisServer,
) -> None:
    servers = [replica(name, compose_redis.port) for name in REPLICAS]
    balancer = RoundRobin([server.port for server in servers])
    try:
        assert {s.health()["store"]["kind"] for s in servers} == {"redis"}
        rule = {"method": "GET", "path": "/public/v1/audit/records/{id}", "status": 503}
        added = requests.post(f"{servers[0].url}/_mock/faults", json={**rule, "times": 3})
        assert added.status_code == 201
        created = requests.post(
            balancer.api_url + "/audit/records", json=new_record(), headers=AUTH, timeout=10
        )
        assert created.status_code == 201
        item = f"{balancer.api_url}/audit/records/{created.json()['id']}"
        statuses = Counter(
            requests.get(item, headers={**AUTH, "Connection": "close"}, timeout=10).status_code
            for _ in range(10)
        )
        assert statuses == Counter({200: 7, 503: 3})  # the rule's count shared by both
        assert set(balancer.chosen) == {server.port for server in servers}
        assert all(server.health()["records"] == 1 for server in servers)
    finally:
        balancer.close()
        for server in servers:
            server.stop()
