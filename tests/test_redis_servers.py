"""Real servers (the console script) on a real Redis: two servers on one store and prefix
share the default session's records; a Redis lost under load gives 503s naming the store,
never a hang or a traceback, and service resumes by itself; a password in the URL is never
shown (log, health, errors). The first two and the outage run on Valkey too."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import requests
from redis_server import ENGINES, RedisServer
from support import AUTH, Server, new_record

RECORDS = "/audit/records"
EVENT_TYPES = "/audit/event-types"
STREAM = {**AUTH, "MPT-Streaming": "true"}
Start = Callable[..., Server]


@pytest.fixture(params=list(ENGINES))
def own_redis(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A redis-server (or valkey-server) of this test's own (it is stopped and started again),
    with a password."""
    server = RedisServer(binary=ENGINES[request.param], password="s3cret-pass-word").start()
    yield server
    server.stop()


def on_redis(start_server: Start, url: str, prefix: str, *more: str) -> Server:
    return start_server("--store", url, "--store-prefix", prefix, *more)


def test_two_servers_on_one_redis_share_the_records(
    start_server: Start, engine: RedisServer, engine_prefix: str
) -> None:
    """Created on one, listed, fetched and streamed on the other; an item updated on the
    other is seen changed on the first."""
    one = on_redis(start_server, engine.url, engine_prefix)
    two = on_redis(start_server, engine.url, engine_prefix)
    created = requests.post(one.api_url + RECORDS, json=new_record(), headers=AUTH, timeout=10)
    assert created.status_code == 201
    record = created.json()
    item = f"{RECORDS}/{record['id']}"

    listed = requests.get(two.api_url + RECORDS, headers=AUTH, timeout=10).json()
    assert [found["id"] for found in listed["data"]] == [record["id"]]
    found = requests.get(f"{two.api_url}{RECORDS}?eq(object.id,{record['object']['id']})",
                         headers=AUTH, timeout=10).json()  # fmt: skip
    assert found["data"] == [record]
    assert requests.get(two.api_url + item, headers=AUTH, timeout=10).json() == record

    streamed = requests.get(two.api_url + RECORDS, headers=STREAM, timeout=10)
    assert streamed.status_code == 200
    assert streamed.headers["MPT-Item-Count"] == "1"
    assert streamed.headers["MPT-Streaming"] == "true"
    lines = [json.loads(line) for line in streamed.text.splitlines() if line.strip()]
    assert lines == [record]

    # records are never changed through the API; event types are, in the same store
    kinds = requests.get(one.api_url + EVENT_TYPES, headers=AUTH, timeout=10).json()["data"]
    kind = f"{EVENT_TYPES}/{kinds[0]['id']}"
    changed = requests.put(two.api_url + kind, json={"name": "Renamed on two"}, headers=AUTH)
    assert changed.status_code == 200
    assert requests.get(one.api_url + kind, headers=AUTH).json()["name"] == "Renamed on two"
    assert one.health()["records"] == two.health()["records"] == 1
    assert two.health()["store"] == {
        "kind": "redis",
        "url": engine.url,
        "reachable": True,
    }


def test_servers_on_other_prefixes_share_nothing(
    start_server: Start, redis_server: RedisServer, redis_prefix: str
) -> None:
    one = on_redis(start_server, redis_server.url, redis_prefix)
    two = on_redis(start_server, redis_server.url, redis_prefix + "-other")
    assert requests.post(one.api_url + RECORDS, json=new_record(), headers=AUTH).status_code == 201
    assert two.health()["records"] == 0
    assert one.health()["records"] == 1


def test_redis_lost_under_load_answers_503_then_service_resumes(
    start_server: Start, own_redis: RedisServer
) -> None:
    server = on_redis(start_server, own_redis.url, "outage")
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load() -> None:
        with requests.Session() as client:
            while not stop.is_set():
                for method in ("POST", "GET"):
                    answer = client.request(
                        method,
                        server.api_url + RECORDS,
                        json=new_record() if method == "POST" else None,
                        headers=AUTH,
                        timeout=15,
                    )
                    with lock:
                        statuses[answer.status_code] += 1
                        if answer.status_code == 503:
                            problems.append(answer.json()["detail"])

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        own_redis.stop()
        time.sleep(1.5)
        down = requests.get(f"{server.url}/_mock/health", timeout=10)
        assert down.status_code == 503
        assert down.json()["status"] == "store-unavailable"
        assert down.json()["store"]["reachable"] is False
        own_redis.start()
        time.sleep(1.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)  # no request hung
    assert set(statuses) <= {200, 201, 503}, statuses
    assert statuses[503] > 0, statuses
    assert statuses[201] > 0, statuses
    assert statuses[200] > 0, statuses
    url = "redis://:***@127.0.0.1:"
    assert all(
        detail.startswith(f"The store Redis at {url}{own_redis.port}/0") for detail in problems
    )

    created = requests.post(server.api_url + RECORDS, json=new_record(), headers=AUTH, timeout=10)
    assert created.status_code == 201  # resumed by itself
    assert requests.get(f"{server.url}/_mock/health", timeout=10).json()["status"] == "ok"
    server.stop()
    assert not [line for line in server.log if "Traceback" in line]
    assert not [line for line in server.log if "s3cret" in line]


def test_a_password_in_the_url_is_never_shown(start_server: Start, own_redis: RedisServer) -> None:
    server = start_server(
        "--log-level", "debug", env={"MOCKSERVER_STORE": own_redis.url}
    )  # fmt: skip
    assert server.health()["store"]["url"] == f"redis://:***@127.0.0.1:{own_redis.port}/0"
    assert (
        requests.post(server.api_url + RECORDS, json=new_record(), headers=AUTH).status_code == 201
    )
    assert requests.get(server.api_url + RECORDS, headers=AUTH).status_code == 200
    own_redis.stop()
    assert requests.get(server.api_url + RECORDS, headers=AUTH).status_code == 503
    server.stop()
    assert server.log  # the log was read
    assert not [line for line in server.log if own_redis.password in line]  # type: ignore[operator]


def test_a_stopped_server_leaves_the_sessions_and_takes_its_start_up_state(
    start_server: Start, redis_server: RedisServer, redis_prefix: str
) -> None:
    server = on_redis(start_server, redis_server.url, redis_prefix)
    assert (
        requests.post(server.api_url + RECORDS, json=new_record(), headers=AUTH).status_code == 201
    )
    client = redis_server.client()
    assert list(client.scan_iter(f"{redis_prefix}:{{base.*"))
    assert server.stop() == 0
    assert not list(client.scan_iter(f"{redis_prefix}:{{base.*"))
    assert client.hlen(f"{redis_prefix}:{{session.default}}:c:/public/v1/audit/records:items") == 1
