"""A change on Redis decided on the fault rules a server last read (none): its script checks
the rules' version and writes nothing when it moved (`storage.redis_scripts.CHANGE`, guarded);
the front then decides again on the rules read now and answers the rule that applies, or
serves the request anew (`http.middleware.Front._read_deferred`). A POST is two round trips
(the insert with the version, then the journal); a rule another server adds just before it, or
between its decision and its insert, still acts on it, and nothing is written twice."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from redis_server import RedisServer, count_round_trips
from support import AUTH, EVENT_TYPES, RECORDS

from mockserver.storage import redis_scripts
from mockserver.storage.redis_connection import Link

MakeApp = Callable[..., Flask]
RECORD = {"event": "platform.commerce.order.created", "object": {"id": "ORD-1"}}


def _link(client: Any) -> Link:
    link: Link = client.application.extensions["mockserver"].sessions.shared.link
    return link


def _total(client: Any) -> int:
    answer = client.get(f"{RECORDS}?limit=0", headers=AUTH)
    assert answer.status_code == 200
    return int(answer.json["$meta"]["pagination"]["total"])


def _rules(client: Any) -> list[dict[str, Any]]:
    return list(client.get("/_mock/faults").json["data"])


def _journal(client: Any, method: str, path: str) -> list[tuple[int, str | None]]:
    entries = client.get("/_mock/requests?limit=1000").json["data"]
    return [
        (entry["status"], entry.get("fault"))
        for entry in entries
        if (entry["method"], entry["path"]) == (method, path)
    ]


def _before_change(monkeypatch: pytest.MonkeyPatch, client: Any, act: Callable[[], None]) -> None:
    """`act` done once, after the request was decided and before its change goes to Redis."""
    link = _link(client)
    real = link.guard_change
    done: list[bool] = []

    def guard_change() -> Any:
        if not done:
            done.append(True)
            act()
        return real()

    monkeypatch.setattr(link, "guard_change", guard_change)


def _pair(make_app: MakeApp, url: str, prefix: str) -> tuple[Any, Any]:
    one, two = (make_app(store=url, store_prefix=prefix).test_client() for _ in range(2))
    assert one.post(RECORDS, headers=AUTH, json=RECORD).status_code == 201  # rules (none) read
    return one, two


def test_a_post_is_two_round_trips_its_insert_checking_the_rules_version(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = _pair(make_app, redis_server.url, redis_prefix)
    trips = count_round_trips(monkeypatch)
    made = one.post(RECORDS, headers=AUTH, json=RECORD)
    assert made.status_code == 201
    assert trips == [1, 1]  # the insert (with the version), then the journal's script
    monkeypatch.undo()
    assert two.get(f"{RECORDS}/{made.json['id']}", headers=AUTH).json == made.json


def test_a_rule_added_between_the_decision_and_the_insert_acts_and_nothing_is_written(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = _pair(make_app, redis_server.url, redis_prefix)
    before = _total(two)

    def add_rule() -> None:
        rule = {"method": "POST", "path": RECORDS, "status": 429, "times": 1}
        assert two.post("/_mock/faults", json=[rule]).status_code == 201

    _before_change(monkeypatch, one, add_rule)
    assert one.post(RECORDS, headers=AUTH, json=RECORD).status_code == 429  # the rule's answer
    assert _total(two) == before  # the insert refused: nothing written
    [state] = _rules(two)
    assert (state["matched"], state["fired"], state["active"]) == (1, 1, False)
    assert one.post(RECORDS, headers=AUTH, json=RECORD).status_code == 201  # spent
    assert _total(two) == before + 1
    assert _journal(one, "POST", RECORDS)[-2:] == [(429, "rule-1"), (201, None)]


def test_a_rule_added_meanwhile_that_does_not_apply_lets_the_post_in_once(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = _pair(make_app, redis_server.url, redis_prefix)
    before = _total(two)

    def add_rule() -> None:
        rule = {"method": "GET", "path": EVENT_TYPES, "status": 503}
        assert two.post("/_mock/faults", json=[rule]).status_code == 201

    _before_change(monkeypatch, one, add_rule)
    made = one.post(RECORDS, headers=AUTH, json=RECORD)
    assert made.status_code == 201  # refused, decided again (nothing applies), served anew
    assert _total(one) == before + 1  # once
    assert two.get(f"{RECORDS}/{made.json['id']}", headers=AUTH).status_code == 200
    assert made.headers["Location"].endswith(made.json["id"])
    [state] = _rules(two)
    assert (state["matched"], state["fired"]) == (0, 0)
    assert _journal(one, "POST", RECORDS)[-1] == (201, None)
    assert one.get(EVENT_TYPES, headers=AUTH).status_code == 503  # and it holds now


def test_a_change_after_a_read_that_found_the_rules_changed_is_refused_unsent(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PUT reads the item first (the version goes with it): a rule added before that read
    is found there, and the change is refused without going to Redis; the PUT is decided
    again, and answered by the rule, or made once when the rule does not apply to it."""
    one, two = _pair(make_app, redis_server.url, redis_prefix)
    url = f"{EVENT_TYPES}/AET-6491-7370"  # platform.commerce.order.created
    link = _link(one)
    real_calls = link.calls
    rules = iter(
        [
            {"method": "PUT", "path": url, "status": 409, "times": 1},
            {"method": "DELETE", "path": url, "status": 500},
        ]
    )
    change = hashlib.sha1(redis_scripts.CHANGE.encode()).hexdigest()
    changes: list[bool] = []

    def calls(commands: Any, again: bool = True) -> list[Any]:
        if getattr(link._own, "guard", None) is not None:  # the request's first command
            assert two.post("/_mock/faults", json=[next(rules)]).status_code == 201
        changes.extend(tuple(command[:2]) == ("EVALSHA", change) for command in commands)
        return real_calls(commands, again)

    monkeypatch.setattr(link, "calls", calls)
    assert one.put(url, headers=AUTH, json={"name": "First"}).status_code == 409
    assert not any(changes)  # the change was never sent
    assert two.get(url, headers=AUTH).json["name"] != "First"
    changed = one.put(url, headers=AUTH, json={"name": "Second"})  # the rule is held: decided first
    assert changed.status_code == 200
    assert two.get(url, headers=AUTH).json["name"] == "Second"
    assert one.delete("/_mock/faults").status_code == 204
    assert one.get(RECORDS, headers=AUTH).status_code == 200  # the rules (none) read
    changes.clear()
    assert one.put(url, headers=AUTH, json={"name": "Third"}).status_code == 200  # refused, anew
    assert changes.count(True) == 1  # sent once, unguarded, after the rules were read
    assert two.get(url, headers=AUTH).json["name"] == "Third"
    assert [(s["matched"], s["fired"]) for s in _rules(two)] == [(0, 0)]
    assert [status for status, _ in _journal(one, "PUT", url)] == [409, 200, 200]


def test_rules_added_under_concurrent_posts_on_two_servers_stay_exact(
    make_app: MakeApp, redis_server: RedisServer, redis_prefix: str
) -> None:
    """16 clients post on two servers while a rule with `times: 5` is added: it fires exactly
    five times, every 201 is one record (none written twice, none lost), and a POST sent
    once the rule is added meets it (until it is spent)."""
    one, two = _pair(make_app, redis_server.url, redis_prefix)
    before = _total(one)
    clients = [one, two]

    def post(n: int) -> int:
        return int(clients[n % 2].post(RECORDS, headers=AUTH, json=RECORD).status_code)

    with ThreadPoolExecutor(16) as pool:
        first = list(pool.map(post, range(64)))
        rule = {"method": "POST", "path": RECORDS, "status": 429, "times": 5}
        added = pool.submit(two.post, "/_mock/faults", json=[rule])
        second = list(pool.map(post, range(64, 160)))
        assert added.result().status_code == 201
    after = [post(n) for n in range(5)]  # sent once the rule is added: they meet it, if unspent
    statuses = Counter(first + second + after)
    [state] = _rules(one)
    assert state["fired"] == 5
    assert statuses[429] == 5
    assert set(statuses) == {201, 429}
    assert after.count(429) == 5 - (first + second).count(429)
    assert _total(two) == before + statuses[201]  # each 201 one record
    journaled = Counter(status for status, _ in _journal(two, "POST", RECORDS))
    assert journaled == {201: statuses[201] + 1, 429: 5}  # with the pair's first
