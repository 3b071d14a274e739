"""Sessions on a Redis store: two servers (in-process apps) on one store and prefix see the same
sessions, journal, coverage and resets; a session only looked at makes nothing in Redis; the
journal keeps its bounds (`--journal-size` per session, `--journal-bytes` for all)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from redis_server import RedisServer
from support import AUTH, new_record

RECORDS = "/public/v1/audit/records"
MakeApp = Callable[..., Flask]


def pair(make_app: MakeApp, url: str, prefix: str, **settings: Any) -> tuple[Any, Any]:
    return tuple(  # type: ignore[return-value]
        make_app(store=url, store_prefix=prefix, **settings).test_client() for _ in range(2)
    )


def in_session(name: str) -> dict[str, str]:
    return {**AUTH, "X-Mock-Session": name}


def journal(client: Any, session: str) -> list[dict[str, Any]]:
    answer = client.get(f"/_mock/requests?session={session}")
    assert answer.status_code == 200, answer.json
    return list(answer.json["data"])


def names(client: Any) -> list[str]:
    return [session["name"] for session in client.get("/_mock/sessions").json["data"]]


def test_a_session_s_journal_coverage_and_records_are_seen_by_both_servers(
    make_app: MakeApp, engine: RedisServer, engine_prefix: str
) -> None:
    one, two = pair(make_app, engine.url, engine_prefix)
    created = one.post(RECORDS, json=new_record(), headers=in_session("ci"))
    assert created.status_code == 201
    assert two.get(RECORDS, headers=in_session("ci")).json["$meta"]["pagination"]["total"] == 1
    assert two.get(RECORDS, headers=AUTH).json["$meta"]["pagination"]["total"] == 0
    assert one.post(RECORDS, json={}, headers=in_session("ci")).status_code == 400
    for client in (one, two):
        entries = journal(client, "ci")
        assert [(e["id"], e["method"], e["status"]) for e in entries] == [
            (1, "POST", 201),
            (2, "GET", 200),
            (3, "POST", 400),
        ]
        assert entries[0]["recordId"] == created.json["id"]
        assert entries[0]["headers"]["Authorization"].endswith("***")  # masked, as in memory
        assert entries[2]["valid"] is False
        refused = {"status": 400}
        assert client.post("/_mock/requests/count?session=ci", json=refused).json == {"count": 1}
        coverage = client.get("/_mock/coverage?session=ci").json
        statuses = {op["operation"]: op["statuses"] for op in coverage["operations"]}
        create = entries[0]["operation"]
        assert (statuses[create]["201"], statuses[create]["400"]) == (1, 1)
    assert [e["session"] for e in journal(one, "default")] == ["default"]  # its own GET
    assert sorted(names(two)) == ["ci", "default"]


def test_a_reset_or_an_end_on_one_server_is_seen_by_the_other(
    make_app: MakeApp, engine: RedisServer, engine_prefix: str
) -> None:
    one, two = pair(make_app, engine.url, engine_prefix)
    assert one.post(RECORDS, json=new_record(), headers=in_session("ci")).status_code == 201
    assert len(journal(two, "ci")) == 1
    assert two.post("/_mock/reset?session=ci").status_code in (200, 204)
    assert journal(one, "ci") == []
    assert one.get(RECORDS, headers=in_session("ci")).json["$meta"]["pagination"]["total"] == 0
    assert [e["id"] for e in journal(two, "ci")] == [1]  # ids start again after a reset
    assert two.delete("/_mock/sessions/ci").status_code == 204
    assert names(one) == ["default"]
    assert one.delete("/_mock/sessions/ci").status_code == 404
    leftover = list(engine.client().scan_iter(match=f"{engine_prefix}:{{session.ci}}*"))
    assert leftover == []


def test_a_session_only_looked_at_makes_nothing_in_redis(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = pair(make_app, redis_server.url, redis_prefix)
    assert one.get("/_mock/faults?session=ghost").json == {"data": []}
    assert one.get("/_mock/requests?session=ghost").json["data"] == []
    assert one.get("/_mock/records?session=ghost").status_code == 200
    unauthorised = {"X-Mock-Session": "ghost"}
    assert one.get(RECORDS, headers=unauthorised).status_code == 401
    assert names(two) == ["default"]
    made = list(redis_server.client().scan_iter(match=f"{redis_prefix}:{{session.ghost}}*"))
    assert made == []


def test_the_journal_keeps_its_bounds_across_servers(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str
) -> None:
    """At most --journal-size entries per session; past --journal-bytes (all sessions of all
    servers together) the oldest entries of any session go first."""
    one, two = pair(make_app, redis_server.url, redis_prefix, journal_size=3)
    for n in range(5):
        (one if n % 2 else two).get(RECORDS, headers=in_session("a"))
    assert [e["id"] for e in journal(one, "a")] == [3, 4, 5]
    one.get(RECORDS, headers=in_session("measure"))
    cost = one.get("/_mock/sessions").json["data"][-1]["journalBytes"]
    assert cost > 0
    budget = int(cost * 3.5)  # three entries' worth
    small = pair(make_app, redis_server.url, redis_prefix + "b", journal_bytes=budget)
    for n in range(4):
        small[n % 2].get(RECORDS, headers=in_session("first"))
    for n in range(4):
        small[n % 2].get(RECORDS, headers=in_session("second"))
    listed = small[0].get("/_mock/sessions").json
    assert 2.5 * cost < listed["journalBytes"] <= budget  # sizes differ by a few digits
    assert listed["journalBytesLimit"] == budget
    assert journal(small[1], "first") == []  # the oldest, of whichever session, went first
    assert [e["id"] for e in journal(small[1], "second")] == [2, 3, 4]
    for client in small:
        client.delete("/_mock/sessions/first")
        client.delete("/_mock/sessions/second")
    redis_server.client().delete(*redis_server.client().keys(redis_prefix + "b:*"))
