"""Fault rules on a Redis store: every server on the same store and prefix holds the same rules
and counters, and each decision is taken in Redis, so `times`, `after` and a seeded
`probability` are exact across servers (in-process apps here; real servers, concurrent clients
and several worker processes in `test_redis_servers.py`)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from redis_server import RedisServer
from support import AUTH, Server

RECORDS = "/public/v1/audit/records"
MakeApp = Callable[..., Flask]


def pair(make_app: MakeApp, url: str, prefix: str, **settings: Any) -> tuple[Any, Any]:
    """Two servers' test clients on one store and prefix."""
    return tuple(  # type: ignore[return-value]
        make_app(store=url, store_prefix=prefix, **settings).test_client() for _ in range(2)
    )


def add(client: Any, *rules: dict[str, Any], session: str | None = None) -> list[dict[str, Any]]:
    query = f"?session={session}" if session else ""
    added = client.post(f"/_mock/faults{query}", json=list(rules))
    assert added.status_code == 201, added.json
    return list(added.json["data"])


def listed(client: Any, session: str | None = None) -> list[dict[str, Any]]:
    query = f"?session={session}" if session else ""
    return list(client.get(f"/_mock/faults{query}").json["data"])


def test_a_rule_added_on_one_server_is_held_by_the_other(
    make_app: MakeApp, engine: RedisServer, engine_prefix: str
) -> None:
    one, two = pair(make_app, engine.url, engine_prefix)
    [rule] = add(one, {"method": "GET", "path": RECORDS, "status": 503, "times": 2})
    assert rule["id"] == "rule-1"
    assert [r["id"] for r in listed(two)] == ["rule-1"]
    assert two.get(RECORDS, headers=AUTH).status_code == 503
    assert one.get(RECORDS, headers=AUTH).status_code == 503
    assert two.get(RECORDS, headers=AUTH).status_code == 200  # fired twice: spent
    for client in (one, two):
        [state] = listed(client)
        assert (state["matched"], state["fired"], state["active"]) == (2, 2, False)
    [second] = add(two, {"method": "POST", "path": RECORDS, "status": 429})
    assert second["id"] == "rule-2"  # ids from one counter
    assert two.delete("/_mock/faults/rule-1").status_code == 204
    assert [r["id"] for r in listed(one)] == ["rule-2"]
    assert one.delete("/_mock/faults/rule-1").status_code == 404
    assert one.delete("/_mock/faults").status_code == 204
    assert listed(two) == []
    assert two.get(RECORDS, headers=AUTH).status_code == 200


def test_times_after_and_probability_are_exact_across_servers(
    make_app: MakeApp, engine: RedisServer, engine_prefix: str
) -> None:
    """16 threads on each of two servers: `after: 3, times: 5` lets 3 through, then fires
    exactly 5 times; every match is counted once."""
    one, two = pair(make_app, engine.url, engine_prefix)
    add(one, {"method": "GET", "path": RECORDS, "status": 503, "after": 3, "times": 5})

    def hit(n: int) -> int:
        return int((one if n % 2 else two).get(RECORDS, headers=AUTH).status_code)

    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(hit, range(64)))
    assert statuses.count(503) == 5
    assert statuses.count(200) == 59
    [state] = listed(two)
    assert (state["matched"], state["fired"]) == (8, 5)  # 3 let through, 5 fired, then spent


def fires(clients: list[Any], count: int) -> list[bool]:
    return [
        clients[n % len(clients)].get(RECORDS, headers=AUTH).status_code == 503
        for n in range(count)
    ]


def test_a_seeded_probability_gives_the_same_run_on_one_server_or_two(
    make_app: MakeApp, engine: RedisServer, engine_prefix: str
) -> None:
    rule = {"method": "GET", "path": RECORDS, "status": 503, "probability": 0.5}
    alone = make_app(store=engine.url, store_prefix=engine_prefix + "a", fault_seed=7)
    add(alone.test_client(), rule)
    one, two = pair(make_app, engine.url, engine_prefix, fault_seed=7)
    add(one, rule)
    first = fires([alone.test_client()], 40)
    assert 5 < sum(first) < 35  # a coin, not a constant
    assert fires([one, two], 40) == first
    engine.client().delete(*engine.client().keys(engine_prefix + "a:*"))


def test_a_session_s_rules_are_its_own_and_a_reset_gives_the_scenario_back(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str, tmp_path: Path
) -> None:
    """A scenario's rules go into a session once, however many servers join it; a reset on one
    gives every server the scenario's rules again, with fresh counters."""
    scenario = tmp_path / "scenario.json"
    rule = {"method": "GET", "path": RECORDS, "status": 503, "times": 1, "session": "ci"}
    scenario.write_text(json.dumps({"rules": [rule]}))
    one, two = pair(make_app, redis_server.url, redis_prefix, scenario=scenario)
    ci = {**AUTH, "X-Mock-Session": "ci"}
    assert one.get(RECORDS, headers=ci).status_code == 503
    assert two.get(RECORDS, headers=ci).status_code == 200  # joined: the rule is spent
    assert len(listed(two, "ci")) == 1
    add(two, {"method": "GET", "path": RECORDS, "status": 500}, session="other")
    assert listed(one, "ci")[0]["fired"] == 1
    assert one.get(RECORDS, headers={**AUTH, "X-Mock-Session": "other"}).status_code == 500
    assert one.get(RECORDS, headers=AUTH).status_code == 200  # the default session has none
    assert two.post("/_mock/reset?session=ci").status_code in (200, 204)
    [state] = listed(one, "ci")
    assert (state["id"], state["fired"]) == ("rule-1", 0)
    assert one.get(RECORDS, headers=ci).status_code == 503


def test_the_bound_on_rules_holds_across_servers(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = pair(make_app, redis_server.url, redis_prefix, max_rules=2)
    add(one, {"path": RECORDS, "status": 500})
    add(two, {"path": RECORDS, "status": 501})
    refused = one.post("/_mock/faults", json={"path": RECORDS, "status": 502})
    assert refused.status_code == 429
    assert "--max-rules" in refused.json["detail"]
    assert len(listed(two)) == 2


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_a_state_file_keeps_the_rules_and_their_counters(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str, tmp_path: Path, store: str
) -> None:
    url = redis_server.url if store == "redis" else "memory"
    saved = tmp_path / "state.jsonl"
    first = make_app(store=url, store_prefix=redis_prefix)
    api = first.test_client()
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "times": 3})
    assert api.get(RECORDS, headers=AUTH).status_code == 503
    from mockserver.sessions import state_file

    state_file.save(saved, first.extensions["mockserver"].sessions, "audit")
    again = make_app(store=url, store_prefix=redis_prefix + "b", state_file=saved).test_client()
    [state] = listed(again)
    assert (state["id"], state["matched"], state["fired"], state["active"]) == (
        "rule-1",
        1,
        1,
        True,
    )
    [newer] = add(again, {"path": RECORDS, "status": 500})
    assert newer["id"] == "rule-2"


# ---------------------------------------------------------------- real servers


def hammer(urls: list[str], clients: int, each: int) -> Counter[int]:
    """`clients` threads, each with its own connection, `each` GETs of the records, spread over
    the servers; the statuses counted."""

    def client(n: int) -> list[int]:
        with requests.Session() as http:
            url = urls[n % len(urls)] + "/audit/records"
            return [http.get(url, headers=AUTH, timeout=30).status_code for _ in range(each)]

    with ThreadPoolExecutor(clients) as pool:
        return Counter(
            status for statuses in pool.map(client, range(clients)) for status in statuses
        )


def test_times_is_exact_with_32_clients_on_two_real_servers(
    start_server: Callable[..., Server], engine: RedisServer, engine_prefix: str
) -> None:
    store = ("--store", engine.url, "--store-prefix", engine_prefix)
    one, two = start_server(*store), start_server(*store)
    rule = {"method": "GET", "path": RECORDS, "status": 503, "times": 5, "after": 2}
    assert requests.post(two.url + "/_mock/faults", json=rule, timeout=10).status_code == 201
    statuses = hammer([one.api_url, two.api_url], 32, 4)
    assert statuses == Counter({200: 123, 503: 5})
    [state] = requests.get(one.url + "/_mock/faults", timeout=10).json()["data"]
    assert (state["matched"], state["fired"], state["active"]) == (7, 5, False)
