"""Memory has bounds in bytes, not only in counts: the journal's byte budget and cut bodies,
sessions made only by requests that pass auth (copy-on-write, idle ones expiring, a cap, an
end), and a cap on each session's fault rules; `Prefer` applies only after auth."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import requests
from support import AUTH, CLOSE, RECORDS, new_record

from mockserver.query.expression import equalities, expression

SESSION = "X-Mock-Session"


def sessions(api: Any) -> dict[str, Any]:
    answer = api.get("/_mock/sessions")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return dict(answer.json)


def names(api: Any) -> list[str]:
    return [s["name"] for s in sessions(api)["data"]]


# ---------------------------------------------------------------- the journal


def test_a_large_body_is_journaled_cut_with_its_size_and_hash(make_app):
    api = make_app(strict_conformance=False).test_client()
    body = b"[" + b"1," * 200_000 + b"1]"  # 400 KB of JSON (refused: not an object)
    answer = api.post(RECORDS, data=body, headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400
    [entry] = api.get("/_mock/requests").json["data"]
    assert entry["bodySize"] == len(body)
    assert entry["bodyTruncated"] is True
    assert entry["bodySha256"] == hashlib.sha256(body).hexdigest()
    assert entry["body"] == body[: 64 * 1024].decode()


def test_the_journals_of_every_session_hold_at_most_journal_bytes(make_app):
    """Past the budget the oldest entries go, whichever session holds them."""
    api = make_app(journal_bytes=400_000).test_client()
    big = {**new_record(), "details": "x" * 60_000}
    for number in range(12):
        who = {**AUTH, SESSION: f"s{number % 3}"}
        assert api.post(RECORDS, json=big, headers=who).status_code == 201
    listed = sessions(api)
    assert listed["journalBytesLimit"] == 400_000
    assert 300_000 < listed["journalBytes"] <= 400_000
    held = {s["name"]: s["journal"] for s in listed["data"]}
    assert sum(held.values()) == 6  # the last six of twelve, ~61 KB each
    assert sum(s["journalBytes"] for s in listed["data"]) == listed["journalBytes"]
    kept = [e["id"] for e in api.get("/_mock/requests?session=s0").json["data"]]
    assert kept == [3, 4]  # s0's oldest two went: the oldest of the server


def test_ending_a_session_frees_its_journal_bytes(make_app):
    api = make_app().test_client()
    api.get(RECORDS, headers={**AUTH, SESSION: "gone-soon"})
    before = sessions(api)["journalBytes"]
    assert before > 0
    assert api.delete("/_mock/sessions/gone-soon").status_code == 204
    assert sessions(api)["journalBytes"] == 0
    assert api.delete("/_mock/sessions/gone-soon").status_code == 404


def test_large_bodies_do_not_grow_the_server(start_server):
    """2 000 POSTs of 900 KB took a worker from 67 MB to 1.8 GB: the journal kept them
    whole. 300 of them now leave it within its budget, and its memory flat."""
    server = start_server("--journal-bytes", str(8 * 1024 * 1024))
    body = b"{" + b"x" * 900_000  # invalid JSON, no token needed
    with requests.Session() as client:
        client.post(server.url + RECORDS, data=body, timeout=10)
        start = resident_mb(server)
        for _ in range(300):
            answer = client.post(server.url + RECORDS, data=body, timeout=10)
            assert answer.status_code in (400, 401)
        grown = resident_mb(server) - start
        listed = client.get(f"{server.url}/_mock/sessions", timeout=5, headers=CLOSE).json()
    assert listed["journalBytes"] <= 8 * 1024 * 1024
    assert grown < 60, f"the server grew by {grown:.0f} MB for 270 MB of bodies"


def resident_mb(server: Any) -> float:
    """The server's resident memory (its uWSGI master and worker), from /proc."""
    pids = [server.process.pid]
    children = Path(f"/proc/{pids[0]}/task/{pids[0]}/children")
    pids += [int(pid) for pid in children.read_text().split()]
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


# ---------------------------------------------------------------- the store


def store(api: Any, session: str | None = None) -> dict[str, Any]:
    headers = {SESSION: session} if session else {}
    return dict(api.get("/_mock/health", headers=headers).json["store"])


def test_the_store_holds_at_most_max_store_bytes(make_app, caplog):
    """Past its byte budget the oldest items go (logged), as past --max-records."""
    api = make_app(max_store_bytes=1024 * 1024).test_client()
    big = {**new_record(), "details": "x" * 9_000}
    ids = []
    with caplog.at_level(logging.INFO, logger="mockserver"):
        for _ in range(200):  # ~1.8 MB of records
            created = api.post(RECORDS, json=big, headers=AUTH)
            assert created.status_code == 201
            ids.append(created.json["id"])
    held = store(api)
    assert held["bytesLimit"] == 1024 * 1024
    assert 900_000 < held["bytes"] <= 1024 * 1024
    kept = api.get(RECORDS, headers=AUTH, query_string={"limit": 1}).json["$meta"]
    assert 90 < kept["pagination"]["total"] < 120
    assert api.get(f"{RECORDS}/{ids[0]}", headers=AUTH).status_code == 404
    assert api.get(f"{RECORDS}/{ids[-1]}", headers=AUTH).status_code == 200
    assert f"store full (--max-store-bytes): evicted the oldest item {ids[0]}" in caplog.text


def test_the_session_filling_the_store_loses_its_oldest_first(make_app):
    api = make_app(max_store_bytes=1024 * 1024).test_client()
    big = {**new_record(), "details": "x" * 9_000}
    quiet = [
        api.post(RECORDS, json=big, headers={**AUTH, SESSION: "quiet"}).json["id"]
        for _ in range(10)
    ]
    for _ in range(200):
        assert api.post(RECORDS, json=big, headers={**AUTH, SESSION: "flood"}).status_code == 201
    for item in quiet:  # the flooding session paid for the room it took
        assert api.get(f"{RECORDS}/{item}", headers={**AUTH, SESSION: "quiet"}).status_code == 200
    assert store(api)["bytes"] <= 1024 * 1024


def test_the_seed_is_counted_once_and_an_ended_session_frees_its_bytes(make_app):
    api = make_app(seed_records=500, faker_seed=3).test_client()
    seeded = store(api)["bytes"]
    assert seeded > 500 * 500
    for number in range(20):  # sessions share the seed: charged nothing for it
        assert api.get(RECORDS, headers={**AUTH, SESSION: f"s-{number}"}).status_code == 200
    assert store(api)["bytes"] == seeded
    assert api.post(RECORDS, json=new_record(), headers={**AUTH, SESSION: "s-1"}).status_code == 201
    added = store(api)["bytes"] - seeded
    assert 500 < added < 5_000
    assert api.delete("/_mock/sessions/s-1").status_code == 204
    assert store(api)["bytes"] == seeded  # at once, not when the collections are collected


def test_max_store_bytes_below_a_mebibyte_is_refused():
    from mockserver.settings import SettingsError, parser

    with pytest.raises(SettingsError, match="--max-store-bytes"):
        parser({}).parse_args(["--max-store-bytes", "1000"])
    with pytest.raises(SettingsError, match="MOCKSERVER_MAX_STORE_BYTES"):
        parser({"MOCKSERVER_MAX_STORE_BYTES": "1k"})


# ---------------------------------------------------------------- sessions


def test_reads_and_refused_requests_make_no_session(make_app):
    api = make_app().test_client()
    assert api.get("/_mock/health?session=peek-1").json["session"] == "peek-1"
    api.get("/_mock/requests?session=peek-2")
    api.get("/_mock/faults", headers={SESSION: "peek-3"})
    assert api.get(RECORDS, headers={SESSION: "no-token"}).status_code == 401
    assert api.get("/nowhere", headers={**AUTH, SESSION: "no-route"}).status_code == 404
    assert names(api) == ["default"]  # always there
    assert api.get(RECORDS, headers={**AUTH, SESSION: "made"}).status_code == 200
    api.post("/_mock/faults?session=written", json={"status": 500})
    assert sorted(names(api)) == ["default", "made", "written"]


def test_a_new_session_shares_the_seed_until_it_writes(make_app):
    """Each session copied the seed (14.7 MB each with 100 000 records)."""
    app = make_app(seed_records=3000, faker_seed=3)
    api = app.test_client()
    api.get(RECORDS, headers={**AUTH, SESSION: "warm"})
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(100):
            assert api.get(RECORDS, headers={**AUTH, SESSION: f"s-{number}"}).status_code == 200
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(names(api)) == 102  # and the default one
    assert grown < 100 * 40_000, f"{grown / 100:.0f} bytes a session"  # a copy: ~300 KB
    created = api.post(RECORDS, json=new_record(), headers={**AUTH, SESSION: "s-1"})
    assert created.status_code == 201
    record = f"{RECORDS}/{created.json['id']}"
    assert api.get(record, headers={**AUTH, SESSION: "s-1"}).status_code == 200
    assert api.get(record, headers={**AUTH, SESSION: "s-2"}).status_code == 404
    assert (
        api.get(RECORDS, headers={**AUTH, SESSION: "s-2"}).json["$meta"]["pagination"]["total"]
        == 3000
    )


def test_an_idle_session_expires(make_app):
    api = make_app(session_ttl=1).test_client()
    api.get(RECORDS, headers={**AUTH, SESSION: "idle"})
    assert names(api) == ["default", "idle"]
    time.sleep(2.2)
    api.get(RECORDS)  # any request looks for idle sessions, at most once a second
    assert names(api) == ["default"]


def test_max_sessions_refuses_one_more_with_a_429_naming_it(make_app):
    api = make_app(max_sessions=2, strict_conformance=False).test_client()
    for name in ("one", "two"):
        assert api.get(RECORDS, headers={**AUTH, SESSION: name}).status_code == 200
    refused = api.get(RECORDS, headers={**AUTH, SESSION: "three"})
    assert refused.status_code == 429
    assert "--max-sessions" in refused.json["detail"]
    assert refused.headers["Retry-After"] == "1"
    assert api.post("/_mock/faults?session=three", json={"status": 500}).status_code == 429
    assert api.get(RECORDS, headers={**AUTH, SESSION: "one"}).status_code == 200  # live ones
    api.delete("/_mock/sessions/two")
    assert api.get(RECORDS, headers={**AUTH, SESSION: "three"}).status_code == 200


def test_the_sessions_are_listed_with_what_they_hold(make_app):
    api = make_app().test_client()
    headers = {**AUTH, SESSION: "team-a"}
    api.post(RECORDS, json=new_record(), headers=headers)
    api.post("/_mock/faults?session=team-a", json={"status": 503, "method": "DELETE"})
    listed = sessions(api)
    assert listed["total"] == 2
    assert listed["limit"] == 1000
    [team] = [s for s in listed["data"] if s["name"] != "default"]
    assert team["name"] == "team-a"
    assert team["records"] == 1
    assert team["faults"] == 1
    assert team["journal"] == 1
    assert team["journalBytes"] > 0
    assert 0 <= team["idleSeconds"] < 5


# ---------------------------------------------------------------- fault rules


def test_a_session_holds_at_most_max_rules(make_app):
    api = make_app(max_rules=3).test_client()
    batch = [{"method": "GET", "status": 500, "times": 1}] * 2
    assert api.post("/_mock/faults", json=batch).status_code == 201
    refused = api.post("/_mock/faults", json=batch)  # 2 more than 3: none is added
    assert refused.status_code == 429
    assert "--max-rules" in refused.json["detail"]
    assert len(api.get("/_mock/faults").json["data"]) == 2
    assert api.post("/_mock/faults", json=batch[0]).status_code == 201


def test_rules_for_other_methods_are_not_tried(make_app):
    """A request meets the rules for its method and for any method only, in order."""
    api = make_app().test_client()
    rules = [{"method": "POST", "status": 503}] * 500 + [
        {"status": 500, "times": 1},
        {"method": "GET", "status": 404, "path": f"{RECORDS}/{{id}}"},
    ]
    assert api.post("/_mock/faults", json=rules).status_code == 201
    assert api.get(RECORDS).status_code == 500  # the any-method rule, first
    assert api.get(RECORDS).status_code == 200
    assert api.get(f"{RECORDS}/AUD-0000-0000-0000-0000").status_code == 404
    counts = {r["id"]: r["matched"] for r in api.get("/_mock/faults").json["data"]}
    assert counts["rule-1"] == 0  # a POST rule: never tried on a GET
    assert counts["rule-501"] == 1


# ---------------------------------------------------------------- Prefer after auth


@pytest.mark.parametrize("prefer", ["code=500", "delay=3000"])
def test_prefer_applies_only_after_auth(make_app, prefer):
    """64 requests with `Prefer: delay=120000` and no token held the server for 120 s."""
    api = make_app().test_client()
    started = time.monotonic()
    answer = api.get(RECORDS, headers={"Prefer": prefer})
    assert answer.status_code == 401
    assert time.monotonic() - started < 1
    assert api.get(RECORDS, headers={**AUTH, "Prefer": "code=500"}).status_code == 500


# ---------------------------------------------------------------- queries


@pytest.fixture(scope="module")
def seeded_app():
    from mockserver import Settings, create_app

    return create_app(Settings(seed_records=20_000, faker_seed=11, query_budget_ms=1))


def test_a_query_over_its_budget_is_a_400_naming_it(seeded_app):
    api = seeded_app.test_client()
    answer = api.get(f"{RECORDS}?ilike(details,*zzz-nowhere*)", headers=AUTH)
    assert answer.status_code == 400, answer.get_data(as_text=True)
    problem = answer.json
    assert "--query-budget-ms" in problem["detail"]
    assert "object.id" in problem["detail"]  # what to narrow it with
    assert problem["errors"] == {"rql": ["The query is too costly for the mock's query budget."]}
    # an indexed one is answered within the same budget
    assert api.get(f"{RECORDS}?eq(event,platform.nowhere)", headers=AUTH).status_code == 200


def test_an_or_of_array_members_is_answered_from_the_index(seeded_app):
    """An `or` of 99 eq(viewers.name, ...) over 100 000 records took 10.6 s (a scan)."""
    api = seeded_app.test_client()
    stored = api.get("/_mock/records?limit=20000").json["data"]
    held = Counter(v["name"] for r in stored for v in r.get("viewers") or [] if v.get("name"))
    rarest = sorted(held, key=lambda name: (held[name], name))[:5]
    wanted = rarest + [f"Nobody {n}" for n in range(94)]  # 99 in all
    expected = [r["id"] for r in stored if any(v.get("name") in wanted for v in r["viewers"])]
    assert 0 < len(expected) < len(stored)
    rql = "or(" + ",".join(f"eq(viewers.name,{quote_rql(n)})" for n in wanted) + ")"
    state = seeded_app.extensions["mockserver"]
    state.resources.query_budget = 0  # no limit: this test counts, it does not time
    try:
        answer = api.get(f"{RECORDS}?{rql}&limit=100", headers=AUTH)
    finally:
        state.resources.query_budget = 0.001
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.json["$meta"]["pagination"]["total"] == len(expected)
    assert {r["id"] for r in answer.json["data"]} <= set(expected)
    # the index gave the candidates: those holding one of the names, not all 20 000
    records = state.sessions.get().storage.open(RECORDS)
    known = state.resources._fields[RECORDS]
    where = equalities(expression([parse(unquote(rql))], known))
    assert where == [("viewers.name", wanted)]
    assert len(records._candidates(where)) == len(expected)


def parse(text: str) -> Any:
    from mockserver.query.rql import parse as parse_rql

    return parse_rql(text)


def quote_rql(text: str) -> str:
    from urllib.parse import quote

    return "'" + quote(text.replace("'", "\\'"), safe="") + "'"


# ---------------------------------------------------------------- HTTP details


def test_head_is_answered_wherever_get_is(start_server):
    """HEAD was a 405; its answer is GET's, without the body, on a connection kept alive."""
    import http.client

    server = start_server()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for path, headers, status in (
            (RECORDS, AUTH, 200),
            (RECORDS, {}, 401),  # the API's problem, without its body
            ("/_mock/health", {}, 200),
        ):
            connection.request("GET", path, headers=headers)
            got = connection.getresponse()
            body = got.read()
            connection.request("HEAD", path, headers=headers)
            head = connection.getresponse()
            assert head.status == got.status == status
            assert head.read() == b""
            assert head.getheader("Content-Type") == got.getheader("Content-Type")
            if path == RECORDS:
                assert int(head.getheader("Content-Length")) == len(body)
        connection.request("GET", "/_mock/health")  # the connection is still in step
        assert connection.getresponse().status == 200
    finally:
        connection.close()


# ---------------------------------------------------------------- the coverage tally


def test_the_coverage_tally_stays_small_and_counts_everything(tmp_path):
    """One line per answer grew the tally file for ever; past a bound a process writes its
    counts whole instead, and the report still counts every answer."""
    from mockserver.app import create_app
    from mockserver.sessions.tally import Tally, tally_files, write_report
    from mockserver.settings import Settings

    report = tmp_path / "coverage.json"
    app = create_app(Settings())
    tally = Tally(report, compact_bytes=4096)
    operations = app.extensions["mockserver"].router.operations
    for number in range(5000):
        tally.add("getAuditRecord", 200 if number % 5 else 404, None)
        tally.add(None, 401, "rule-1" if number % 2 else None)
    [path] = tally_files(report)
    assert path.stat().st_size < 4096 + 200
    tally.close()
    write_report(report, operations)
    written = json.loads(report.read_text())
    by_id = {op["operation"]: op["statuses"] for op in written["operations"]}
    assert by_id["getAuditRecord"]["200"] == 4000
    assert by_id["getAuditRecord"]["404"] == 1000
    assert written["undocumented"] == [{"operation": None, "status": 401, "count": 5000}]
    assert written["faults"] == [{"id": "rule-1", "fired": 2500}]
    assert tally_files(report) == []
