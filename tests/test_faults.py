"""Fault rules: the control API (/_mock/faults), scenario files, `Prefer`, sessions.

In-process apps (the Flask test client) cover what a rule matches and answers; the real server
(the console script on uWSGI) covers what needs it: exact counting when many clients come at
once, probabilities reproducible from `--fault-seed` across runs, connection faults, and
start-up errors of a bad scenario file. Delays are measured loosely: only that a request took
at least about as long as the rule asks, with generous upper bounds.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from support import (
    AUTH,
    EVENT_TYPES,
    MOCKSERVER,
    RECORDS,
    Server,
    free_port,
    new_record,
    nonconforming,
)

RECORD = f"{RECORDS}/{{id}}"  # the spec's template
MISSING_RECORD = f"{RECORDS}/AUD-0000-0000-0000-0001"
PROBLEM_JSON = "application/problem+json; charset=utf-8"
JSON = "application/json; charset=utf-8"
TRACE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
RFC9110 = "https://tools.ietf.org/html/rfc9110#section-"
SPEC_PROBLEMS = {  # status: (type, title), as the server writes them
    403: (f"{RFC9110}15.5.4", "Forbidden"),
    404: (f"{RFC9110}15.5.5", "Not Found"),
    429: ("https://tools.ietf.org/html/rfc6585#section-4", "Too Many Requests"),
    500: (f"{RFC9110}15.6.1", "An error occurred while processing your request."),
    502: (f"{RFC9110}15.6.3", "Bad Gateway"),
    503: (f"{RFC9110}15.6.4", "Service Unavailable"),
    504: (f"{RFC9110}15.6.5", "Gateway Timeout"),
}
VALID_PROBLEM = {
    "type": "https://example.com/probs/gone",
    "title": "Gone for lunch",
    "status": 404,
    "detail": "Come back later.",
    "traceId": "00-0123456789abcdef0123456789abcdef-0123456789abcdef-00",
}
EMPTY_PAGE = {"$meta": {"pagination": {"offset": 0, "limit": 10, "total": 0}}, "data": []}


# ---------------------------------------------------------------- helpers (in-process)


def _at(path: str, session: str | None) -> str:
    return f"{path}?session={session}" if session else path


def add(client: Any, rule: Any, session: str | None = None) -> list[dict[str, Any]]:
    """Add one rule or several; their states."""
    answer = client.post(_at("/_mock/faults", session), json=rule)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    data: list[dict[str, Any]] = answer.json["data"]
    return data


def rules(client: Any, session: str | None = None) -> list[dict[str, Any]]:
    answer = client.get(_at("/_mock/faults", session))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    data: list[dict[str, Any]] = answer.json["data"]
    return data


def rule_state(client: Any, rule_id: str, session: str | None = None) -> dict[str, Any]:
    (found,) = [rule for rule in rules(client, session) if rule["id"] == rule_id]
    return found


def counters(state: dict[str, Any]) -> tuple[int, int, bool]:
    return state["matched"], state["fired"], state["active"]


def count(client: Any, session: str | None = None, **matcher: Any) -> int:
    answer = client.post(_at("/_mock/requests/count", session), json=matcher)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    found: int = answer.json["count"]
    return found


def headers(session: str | None = None, **extra: str) -> dict[str, str]:
    sent = {**AUTH, **extra}
    if session:
        sent["X-Mock-Session"] = session
    return sent


def get(client: Any, path: str = RECORDS, session: str | None = None, **extra: str) -> Any:
    return client.get(path, headers=headers(session, **extra))


def statuses(client: Any, n: int, path: str = RECORDS, session: str | None = None) -> list[int]:
    return [get(client, path, session).status_code for _ in range(n)]


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    answer = call()
    return answer, time.monotonic() - started


def spec_problem(answer: Any, status: int) -> dict[str, Any]:
    """The answer is the spec-shaped problem for `status`: exactly type/title/status/traceId."""
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == PROBLEM_JSON
    body: dict[str, Any] = answer.json
    kind, title = SPEC_PROBLEMS[status]
    assert list(body) == ["type", "title", "status", "traceId"]
    assert body["type"] == kind
    assert body["title"] == title
    assert body["status"] == status
    assert TRACE.match(body["traceId"])
    return body


def bad_request(answer: Any) -> dict[str, list[str]]:
    """A 400 validation problem; its `errors`."""
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == PROBLEM_JSON
    body = answer.json
    assert body["type"] == f"{RFC9110}15.5.1"
    assert body["title"] == "Bad Request"
    assert body["status"] == 400
    assert TRACE.match(body["traceId"])
    errors: dict[str, list[str]] = body["errors"]
    assert errors
    assert all(
        isinstance(m, list) and m and all(isinstance(s, str) for s in m) for m in errors.values()
    )
    return errors


def create_record(client: Any, session: str | None = None) -> str:
    answer = client.post(RECORDS, json=new_record(), headers=headers(session))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    record_id: str = answer.json["id"]
    return record_id


def write_scenario(directory: Path, rules_: list[Any], suffix: str, wrapped: bool) -> Path:
    data: Any = {"rules": rules_} if wrapped else rules_
    path = directory / f"scenario{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(data), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# ---------------------------------------------------------------- matching


def test_a_rule_matches_its_method_only(api):
    add(api, {"method": "get", "path": RECORDS, "status": 503})  # any case
    assert api.post(RECORDS, json=new_record()).status_code == 201
    assert get(api).status_code == 503
    assert counters(rules(api)[0]) == (1, 1, True)


def test_an_exact_path_matches_that_path_only(api):
    record = create_record(api)
    add(api, {"path": RECORDS, "status": 503})
    assert get(api, f"{RECORDS}/{record}").status_code == 200
    assert get(api, EVENT_TYPES).status_code == 200
    assert get(api).status_code == 503
    assert get(api, f"{RECORDS}/").status_code == 503  # a trailing slash is the same route
    assert get(api, "/PUBLIC/v1/Audit/Records").status_code == 503  # routes ignore case
    assert counters(rules(api)[0]) == (3, 3, True)


def test_a_spec_template_matches_every_id_but_not_the_collection(api):
    record = create_record(api)
    add(api, {"method": "GET", "path": RECORD, "status": 404})
    spec_problem(get(api, f"{RECORDS}/{record}"), 404)
    spec_problem(get(api, f"{RECORDS}/AUD-9999-9999-9999-9999"), 404)
    assert get(api).status_code == 200
    assert get(api, f"{EVENT_TYPES}/AET-6491-7370").status_code == 200
    assert counters(rules(api)[0]) == (2, 2, True)


def test_when_headers_match_names_in_any_case_and_values_exactly(api):
    add(api, {"path": RECORDS, "when": {"headers": {"X-Client-Id": "abc"}}, "status": 503})
    assert get(api).status_code == 200
    assert get(api, **{"X-Client-Id": "other"}).status_code == 200
    assert get(api, **{"x-client-id": "abc"}).status_code == 503
    assert get(api, **{"X-CLIENT-ID": "abc"}).status_code == 503
    assert counters(rules(api)[0]) == (2, 2, True)


def test_when_headers_given_in_lower_case_match_any_spelling(api):
    add(api, {"path": RECORDS, "when": {"headers": {"x-tenant": "t1"}}, "status": 503})
    assert get(api, **{"X-Tenant": "t1"}).status_code == 503
    assert get(api, **{"X-Tenant": "T1"}).status_code == 200


def test_when_query_matches_parameter_values(api):
    add(api, {"method": "GET", "path": RECORDS, "when": {"query": {"limit": "5"}}, "status": 503})
    assert api.get(f"{RECORDS}?limit=5").status_code == 503
    assert api.get(f"{RECORDS}?offset=0&limit=5").status_code == 503
    assert api.get(f"{RECORDS}?limit=6").status_code == 200
    assert api.get(RECORDS).status_code == 200
    assert counters(rules(api)[0]) == (2, 2, True)


def test_when_body_is_a_subset_match_of_nested_objects(api):
    when = {"body": {"object": {"objectType": "Order"}}}
    add(api, {"method": "POST", "path": RECORDS, "when": when, "status": 503})
    invoice = new_record(object={"id": "INV-1111-2222", "objectType": "Invoice"})
    created = api.post(RECORDS, json=invoice)
    assert created.status_code == 201  # the body reached the app intact
    assert created.json["object"] == invoice["object"]
    assert api.post(RECORDS, json=new_record()).status_code == 503  # more members: still a match
    assert api.post(RECORDS, json={"event": "x", "object": "Order"}).status_code == 400
    assert api.post(RECORDS, data="not json", content_type="application/json").status_code == 400
    assert counters(rules(api)[0]) == (1, 1, True)


def test_when_body_values_compare_with_their_json_type(api):
    when = {"body": {"object": {"name": "1"}}}
    add(api, {"method": "POST", "path": RECORDS, "when": when, "status": 503})
    numbered = new_record(object={"id": "ORD-1", "name": "1"})
    assert api.post(RECORDS, json=numbered).status_code == 503
    other = new_record(object={"id": "ORD-1", "name": "10"})
    assert api.post(RECORDS, json=other).status_code == 201


# ---------------------------------------------------------------- what a rule answers


def test_a_declared_status_gets_the_spec_problem(api):
    [state] = add(api, {"method": "GET", "path": RECORD, "status": 404})
    assert state == {
        "id": "rule-1",
        "rule": {"method": "GET", "path": RECORD, "status": 404},
        "matched": 0,
        "fired": 0,
        "documented": True,
        "active": True,
    }
    body = spec_problem(get(api, f"{RECORDS}/{create_record(api)}"), 404)
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    traced = spec_problem(get(api, MISSING_RECORD, traceparent=parent), 404)
    assert traced["traceId"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert traced["traceId"] != body["traceId"]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_an_undocumented_status_is_allowed_and_marked(api, status):
    [state] = add(api, {"method": "GET", "path": RECORDS, "status": status})
    assert state["documented"] is False
    spec_problem(get(api), status)
    assert count(api, status=status, fault="rule-1") == 1


@pytest.mark.parametrize(
    ("rule", "documented"),
    [
        ({"method": "GET", "path": RECORD, "status": 404}, True),
        ({"method": "GET", "path": f"{RECORDS}/AUD-1234-1234-1234-1234", "status": 404}, True),
        ({"method": "POST", "path": RECORDS, "status": 415}, True),
        ({"method": "GET", "path": RECORDS, "status": 404}, False),  # list: no 404 declared
        ({"method": "PUT", "path": f"{EVENT_TYPES}/{{id}}", "status": 409}, True),
        ({"method": "GET", "path": RECORDS, "delay_ms": 1}, True),  # no status
        ({"path": "/nowhere", "status": 404}, False),  # no operation
    ],
)
def test_documented_is_whether_the_spec_declares_the_status(api, rule, documented):
    assert add(api, rule)[0]["documented"] is documented


def test_rule_headers_are_sent(api):
    rule = {"method": "GET", "path": RECORDS, "status": 503, "headers": {"Retry-After": "7"}}
    add(api, rule)
    answer = get(api)
    spec_problem(answer, 503)
    assert answer.headers["Retry-After"] == "7"


def test_a_given_body_is_sent_as_is(api):
    page = {"$meta": {"pagination": {"offset": 0, "limit": 10, "total": 99}}, "data": []}
    rule = {"method": "GET", "path": RECORDS, "status": 200, "body": page, "headers": {"X-A": "1"}}
    [state] = add(api, rule)
    assert state["documented"] is True
    answer = get(api)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == JSON
    assert answer.headers["X-A"] == "1"
    assert answer.json == page


def test_a_given_body_for_a_declared_error_is_sent_as_is(api):
    add(api, {"method": "GET", "path": RECORD, "status": 404, "body": VALID_PROBLEM})
    answer = get(api, MISSING_RECORD)
    assert answer.status_code == 404
    assert answer.json == VALID_PROBLEM


def test_a_given_body_has_the_media_type_the_spec_declares(api):
    add(api, {"method": "GET", "path": RECORD, "status": 404, "body": VALID_PROBLEM})
    assert get(api, MISSING_RECORD).headers["Content-Type"] == PROBLEM_JSON


def test_an_undocumented_status_may_have_any_body(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "body": {"anything": [1, "x"]}})
    answer = get(api)
    assert answer.status_code == 503
    assert answer.json == {"anything": [1, "x"]}


def test_a_rule_content_type_header_replaces_the_default(api):
    rule = {
        "method": "GET",
        "path": RECORDS,
        "status": 503,
        "body": "down",
        "headers": {"Content-Type": "text/plain"},
    }
    add(api, rule)
    answer = get(api)
    assert answer.status_code == 503
    assert answer.headers.getlist("Content-Type") == ["text/plain"]


@pytest.mark.parametrize(
    ("rule", "errors"),
    [
        (
            {
                "method": "GET",
                "path": RECORD,
                "status": 404,
                "body": {**VALID_PROBLEM, "status": "x"},
            },
            {"body.status": ["The value must be an integer, not a string."]},
        ),
        (
            {"method": "GET", "path": RECORD, "status": 404, "body": {"title": "x"}},
            {
                "body.type": ["The type field is required."],
                "body.status": ["The status field is required."],
                "body.traceId": ["The traceId field is required."],
            },
        ),
        (
            {"method": "POST", "path": RECORDS, "status": 201, "body": {"id": "x"}},
            {
                "body.id": [
                    "The value 'x' does not match the pattern ^AUD-\\d{4}-\\d{4}-\\d{4}-\\d{4}$."
                ]
            },
        ),
        (
            {"method": "GET", "path": RECORDS, "status": 200, "body": {"data": 5}},
            {
                "body.$meta": ["The $meta field is required."],
                "body.data": ["The value must be an array, not an integer."],
            },
        ),
    ],
)
def test_a_given_body_is_checked_against_the_spec_when_the_rule_is_added(api, rule, errors):
    assert bad_request(api.post("/_mock/faults", json=rule)) == errors
    assert rules(api) == []


def test_a_body_is_checked_for_each_operation_that_declares_the_status(api):
    rule = {"method": "GET", "status": 404, "body": {"title": 5}}
    errors = bad_request(api.post("/_mock/faults", json=rule))
    assert "body.title" in errors
    assert rules(api) == []


def test_a_2xx_status_without_body_is_the_normal_answer_with_that_status(make_app):
    api = make_app(strict_conformance=False).test_client()  # 202 is not declared
    [state] = add(api, {"method": "POST", "path": RECORDS, "status": 202, "times": 1})
    assert state["documented"] is False
    answer = api.post(RECORDS, json=new_record())
    assert answer.status_code == 202
    record = answer.json
    assert re.match(r"^AUD-\d{4}-\d{4}-\d{4}-\d{4}$", record["id"])
    assert answer.headers["Location"].endswith(f"{RECORDS}/{record['id']}")
    assert get(api, f"{RECORDS}/{record['id']}").json == record  # really created
    assert api.post(RECORDS, json=new_record()).status_code == 201  # times: 1 is used up
    assert count(api, status=202) == 1


def test_a_2xx_status_keeps_an_error_answer(api):
    add(api, {"method": "GET", "path": RECORD, "status": 200})
    answer = get(api, MISSING_RECORD)
    assert answer.status_code == 404  # the app's answer is an error: the rule does not hide it
    assert answer.json["detail"] == "Audit record AUD-0000-0000-0000-0001 not found."


def test_a_2xx_status_without_body_keeps_the_rule_headers(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 200, "headers": {"X-Rule": "on"}})
    answer = get(api)
    assert answer.status_code == 200
    assert answer.json == EMPTY_PAGE
    assert answer.headers.get("X-Rule") == "on"


# ---------------------------------------------------------------- delays


def test_a_fixed_delay_delays_the_normal_answer(api):
    [state] = add(api, {"method": "GET", "path": RECORDS, "delay_ms": 250})
    assert state["documented"] is True
    answer, took = timed(lambda: get(api))
    assert answer.status_code == 200
    assert answer.json == EMPTY_PAGE
    assert 0.24 <= took < 10
    entry = api.get("/_mock/requests").json["data"][-1]
    assert entry["fault"] == "rule-1"
    assert entry["status"] == 200
    assert entry["durationMs"] >= 240
    assert get(api, EVENT_TYPES).status_code == 200  # only what the rule matches waits
    assert api.get("/_mock/requests").json["data"][-1]["fault"] is None


def test_a_delay_with_a_status(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "delay_ms": 200})
    answer, took = timed(lambda: get(api))
    spec_problem(answer, 503)
    assert 0.19 <= took < 10


def test_a_uniform_delay_stays_in_its_range(make_app):
    api = make_app(fault_seed=3).test_client()
    add(api, {"method": "GET", "path": RECORDS, "delay_ms": {"uniform": [150, 250]}})
    for _ in range(3):
        answer, took = timed(lambda: get(api))
        assert answer.status_code == 200
        assert 0.14 <= took < 10


def test_a_lognormal_delay_without_spread_is_its_median(api):
    add(
        api,
        {"method": "GET", "path": RECORDS, "delay_ms": {"lognormal": {"median": 200, "sigma": 0}}},
    )
    answer, took = timed(lambda: get(api))
    assert answer.status_code == 200
    assert 0.19 <= took < 10


def test_a_lognormal_delay_waits_around_its_median(make_app):
    api = make_app(fault_seed=11).test_client()
    delay = {"lognormal": {"median": 80, "sigma": 0.4}}
    add(api, {"method": "GET", "path": RECORDS, "delay_ms": delay})
    took = []
    for _ in range(4):
        answer, seconds = timed(lambda: get(api))
        assert answer.status_code == 200
        took.append(seconds)
    assert all(0.005 <= t < 10 for t in took)  # 80 ms * e^(0.4 * 4) is about 0.4 s
    assert sum(took) >= 0.04


# ---------------------------------------------------------------- times, after, probability


def test_times_applies_to_the_next_n_then_expires(api):
    [state] = add(api, {"method": "GET", "path": RECORDS, "status": 503, "times": 2})
    assert counters(state) == (0, 0, True)
    assert statuses(api, 2) == [503, 503]
    assert counters(rules(api)[0]) == (2, 2, False)
    assert statuses(api, 3) == [200, 200, 200]
    state = rules(api)[0]
    assert state["fired"] == 2
    assert state["active"] is False
    assert count(api, fault="rule-1") == 2
    assert count(api, path=RECORDS, status=200) == 3


def test_after_lets_n_through_first(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "after": 2})
    assert statuses(api, 2) == [200, 200]
    assert counters(rules(api)[0]) == (2, 0, True)
    assert statuses(api, 2) == [503, 503]
    assert counters(rules(api)[0]) == (4, 2, True)
    assert count(api, fault="rule-1") == 2


def test_after_and_times_together(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "after": 3, "times": 2})
    assert statuses(api, 5) == [200, 200, 200, 503, 503]
    assert counters(rules(api)[0]) == (5, 2, False)
    assert statuses(api, 3) == [200, 200, 200]
    assert rules(api)[0]["fired"] == 2
    assert count(api, fault="rule-1") == 2


def test_probability_zero_never_fires(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "probability": 0})
    assert statuses(api, 10) == [200] * 10
    assert counters(rules(api)[0]) == (10, 0, True)


def test_probability_one_always_fires(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "probability": 1})
    assert statuses(api, 10) == [503] * 10
    assert counters(rules(api)[0]) == (10, 10, True)


def _coin_flips(make_app: Callable[..., Any], seed: int, n: int = 40) -> list[int]:
    api = make_app(fault_seed=seed).test_client()
    add(api, {"method": "GET", "path": RECORDS, "status": 503, "probability": 0.5})
    flips = statuses(api, n)
    assert counters(rules(api)[0]) == (n, flips.count(503), True)
    return flips


def test_probability_half_is_reproducible_with_a_seed(make_app):
    first = _coin_flips(make_app, 2024)
    assert set(first) == {200, 503}
    assert 8 <= first.count(503) <= 32
    assert _coin_flips(make_app, 2024) == first
    assert _coin_flips(make_app, 2025) != first


# ---------------------------------------------------------------- order


def test_the_first_rule_that_fires_wins(api):
    add(
        api,
        [
            {"method": "GET", "path": RECORDS, "status": 500},
            {"method": "GET", "status": 503},
        ],
    )
    spec_problem(get(api), 500)
    spec_problem(get(api, EVENT_TYPES), 503)
    first, second = rules(api)
    assert first["fired"] == 1
    assert second["fired"] == 1


def test_a_rule_that_lets_a_request_through_leaves_it_to_the_next(api):
    add(
        api,
        [
            {"method": "GET", "path": RECORDS, "status": 500, "after": 1},
            {"method": "GET", "path": RECORDS, "status": 502, "probability": 0},
            {"method": "GET", "path": RECORDS, "status": 503},
        ],
    )
    spec_problem(get(api), 503)  # 1st lets it through (after), 2nd does not fire
    spec_problem(get(api), 500)
    first, second, third = rules(api)
    assert counters(first) == (2, 1, True)
    assert counters(second) == (1, 0, True)
    assert third["fired"] == 1


def test_an_expired_rule_leaves_requests_to_the_next(api):
    add(
        api,
        [
            {"method": "GET", "path": RECORDS, "status": 500, "times": 1},
            {"method": "GET", "path": RECORDS, "status": 503, "times": 1},
        ],
    )
    assert statuses(api, 3) == [500, 503, 200]
    assert [counters(rule) for rule in rules(api)] == [(1, 1, False), (1, 1, False)]


def test_rules_added_later_are_tried_after(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 500})
    add(api, {"method": "GET", "path": RECORDS, "status": 503})
    assert [rule["id"] for rule in rules(api)] == ["rule-1", "rule-2"]
    assert get(api).status_code == 500


def test_removing_a_rule_leaves_the_others_in_order(api):
    add(api, [{"path": RECORDS, "status": 500}, {"path": RECORDS, "status": 502}])
    add(api, {"path": RECORDS, "status": 503})
    removed = api.delete("/_mock/faults/rule-1")
    assert removed.status_code == 204
    assert [rule["id"] for rule in rules(api)] == ["rule-2", "rule-3"]
    assert get(api).status_code == 502
    assert api.get("/_mock/health").json["faults"] == 2
    assert api.delete("/_mock/faults").status_code == 204
    assert rules(api) == []
    assert get(api).status_code == 200


# ---------------------------------------------------------------- Prefer


def test_prefer_code_answers_the_spec_problem(api):
    spec_problem(get(api, Prefer="code=403"), 403)
    spec_problem(get(api, MISSING_RECORD, Prefer="code=404"), 404)
    assert count(api, fault="prefer", status=403) == 1


def test_prefer_delay_delays_the_normal_answer(api):
    answer, took = timed(lambda: get(api, Prefer="delay=200"))
    assert answer.status_code == 200
    assert answer.json == EMPTY_PAGE
    assert 0.19 <= took < 10


def test_prefer_code_and_delay_together(api):
    answer, took = timed(lambda: get(api, Prefer="code=403, delay=200"))
    spec_problem(answer, 403)
    assert 0.19 <= took < 10


def test_prefer_applies_when_no_rule_matches(api):
    add(api, {"method": "POST", "path": RECORDS, "status": 503})
    spec_problem(get(api, Prefer="code=403"), 403)
    assert counters(rules(api)[0]) == (0, 0, True)


def test_a_requests_own_prefer_wins_over_the_sessions_rules(api):
    """A catch-all rule (here a long delay) does not silently override what one request asks
    for: no rule is consulted for it, and no rule's counters move."""
    add(api, [{"delay_ms": 60_000}, {"status": 500}])
    answer, took = timed(lambda: get(api, Prefer="code=403"))
    spec_problem(answer, 403)
    assert took < 10
    assert [counters(rule) for rule in rules(api)] == [(0, 0, True), (0, 0, True)]
    assert count(api, fault="prefer", status=403) == 1


def test_a_prefer_header_without_code_or_delay_leaves_the_request_to_the_rules(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503})
    assert get(api, Prefer="return=minimal").status_code == 503
    assert counters(rules(api)[0]) == (1, 1, True)


# ---------------------------------------------------------------- --strict


def test_strict_refuses_an_undocumented_status(make_app):
    api = make_app(strict=True).test_client()
    errors = bad_request(
        api.post("/_mock/faults", json={"method": "GET", "path": RECORDS, "status": 503})
    )
    assert list(errors) == ["status"]
    assert "503" in errors["status"][0]
    assert "GET /public/v1/audit/records" in errors["status"][0]
    assert rules(api) == []
    [state] = add(api, {"method": "GET", "path": RECORD, "status": 404})
    assert state["documented"] is True
    add(api, {"method": "GET", "path": RECORDS, "delay_ms": 1})
    assert len(rules(api)) == 2


def test_strict_refuses_a_batch_with_one_undocumented_status(make_app):
    api = make_app(strict=True).test_client()
    batch = [
        {"method": "GET", "path": RECORD, "status": 404},
        {"method": "GET", "path": RECORDS, "status": 503},
    ]
    assert list(bad_request(api.post("/_mock/faults", json=batch))) == ["status"]
    assert rules(api) == []


# ---------------------------------------------------------------- control API errors


MALFORMED = [
    pytest.param({"status": 503, "bogus": 1}, "bogus", id="unknown-member"),
    pytest.param({"method": "GET", "path": RECORDS}, "status", id="no-status-fault-or-delay"),
    pytest.param({"status": 700}, "status", id="status-700"),
    pytest.param({"status": "503"}, "status", id="status-string"),
    pytest.param({"delay_ms": {"uniform": [100]}}, "delay_ms", id="uniform-one-bound"),
    pytest.param({"delay_ms": {"normal": {"median": 1}}}, "delay_ms", id="unknown-distribution"),
    pytest.param({"delay_ms": -5}, "delay_ms", id="negative-delay"),
    pytest.param({"fault": "explode"}, "fault", id="unknown-fault"),
    pytest.param({"status": 503, "times": 0}, "times", id="times-0"),
    pytest.param({"status": 503, "after": -1}, "after", id="after-negative"),
    pytest.param({"status": 503, "probability": 2}, "probability", id="probability-2"),
    pytest.param({"status": 503, "path": "records"}, "path", id="relative-path"),
    pytest.param({"status": 503, "session": "a b"}, "session", id="bad-session"),
    pytest.param({"status": 503, "when": {"cookies": {}}}, "when.cookies", id="unknown-condition"),
    pytest.param([{"status": 503}, {"status": 700}], "[1].status", id="second-of-two"),
]


@pytest.mark.parametrize(("rule", "field"), MALFORMED)
def test_a_malformed_rule_is_a_400_problem(api, rule, field):
    bad_request(api.post("/_mock/faults", json=rule))
    assert rules(api) == []


@pytest.mark.parametrize(("rule", "field"), MALFORMED)
def test_a_malformed_rule_problem_names_the_field(api, rule, field):
    errors = bad_request(api.post("/_mock/faults", json=rule))
    if field == "status" and "status" not in rule:  # none of status, fault, delay_ms
        named = " ".join([*errors, *(m for ms in errors.values() for m in ms)])
        assert all(name in named for name in ("status", "fault", "delay_ms")), errors
    else:
        assert any(key == field or key.startswith(f"{field}.") for key in errors), errors


def test_a_body_that_is_not_json_is_a_400_at_the_root(api):
    errors = bad_request(
        api.post("/_mock/faults", data="{status: 503", content_type="application/json")
    )
    assert list(errors) == ["$"]
    assert errors["$"][0].startswith("The body is not valid JSON")
    assert rules(api) == []


def test_another_media_type_is_a_415(api):
    answer = api.post("/_mock/faults", data='{"status": 503}', content_type="text/plain")
    assert answer.status_code == 415
    assert answer.headers["Content-Type"] == PROBLEM_JSON
    assert answer.json["status"] == 415
    assert answer.json["title"] == "Unsupported Media Type"
    assert TRACE.match(answer.json["traceId"])
    assert rules(api) == []


def test_an_empty_batch_is_a_400(api):
    bad_request(api.post("/_mock/faults", json=[]))


def test_a_batch_is_all_or_nothing(api):
    batch = [
        {"method": "GET", "path": RECORDS, "status": 503},
        {"method": "GET", "path": RECORD, "status": 404, "body": {**VALID_PROBLEM, "status": "x"}},
    ]
    errors = bad_request(api.post("/_mock/faults", json=batch))
    assert any(key.endswith("body.status") for key in errors), errors
    assert rules(api) == []
    assert get(api).status_code == 200


def test_deleting_an_unknown_rule_is_a_404_problem(api):
    add(api, {"path": RECORDS, "status": 503})
    answer = api.delete("/_mock/faults/rule-99")
    assert answer.status_code == 404
    assert answer.headers["Content-Type"] == PROBLEM_JSON
    body = answer.json
    assert body["type"] == f"{RFC9110}15.5.5"
    assert body["title"] == "Not Found"
    assert body["status"] == 404
    assert "rule-99" in body["detail"]
    assert TRACE.match(body["traceId"])
    assert len(rules(api)) == 1


# ---------------------------------------------------------------- sessions


def test_a_rule_for_a_session_touches_only_that_session(api):
    add(api, {"method": "GET", "path": RECORDS, "status": 503}, session="A")
    assert get(api).status_code == 200
    assert get(api, session="B").status_code == 200
    spec_problem(get(api, session="A"), 503)
    assert rules(api) == []
    assert rules(api, "B") == []
    assert counters(rules(api, "A")[0]) == (1, 1, True)
    assert count(api, "A", status=503) == 1
    assert count(api, "A") == 1
    assert count(api, "B") == 1
    assert count(api, status=503) == 0


def test_the_session_member_of_a_rule_picks_its_session(api):
    [state] = add(api, {"method": "GET", "path": RECORDS, "status": 503, "session": "A"})
    assert state["rule"]["session"] == "A"
    assert rules(api) == []
    assert [rule["id"] for rule in rules(api, "A")] == [state["id"]]
    assert get(api).status_code == 200
    assert get(api, session="A").status_code == 503


def test_the_session_header_works_on_the_control_api(api):
    answer = api.post(
        "/_mock/faults", json={"path": RECORDS, "status": 503}, headers={"X-Mock-Session": "A"}
    )
    assert answer.status_code == 201
    assert len(rules(api, "A")) == 1
    assert rules(api) == []


def test_rule_ids_belong_to_their_session(api):
    add(api, {"path": RECORDS, "status": 500})
    add(api, {"path": RECORDS, "status": 503}, session="A")
    assert api.delete("/_mock/faults/rule-1?session=A").status_code == 204
    assert rules(api, "A") == []
    assert [rule["id"] for rule in rules(api)] == ["rule-1"]
    assert api.delete("/_mock/faults/rule-1?session=A").status_code == 404
    assert api.delete("/_mock/faults?session=B").status_code == 204
    assert len(rules(api)) == 1


def test_sessions_keep_separate_records(api):
    record = create_record(api, session="A")
    assert get(api, f"{RECORDS}/{record}", session="A").status_code == 200
    assert get(api, f"{RECORDS}/{record}", session="B").status_code == 404
    assert get(api, f"{RECORDS}/{record}").status_code == 404
    assert get(api, session="A").json["$meta"]["pagination"]["total"] == 1
    assert get(api, session="B").json["$meta"]["pagination"]["total"] == 0
    assert api.get("/_mock/records?session=A").json["total"] == 1
    assert api.get("/_mock/records").json["total"] == 0


def test_an_invalid_session_header_is_a_400(api):
    answer = get(api, session="no spaces!")
    errors = bad_request(answer)
    assert list(errors) == ["X-Mock-Session"]
    long = get(api, session="x" * 65)
    assert list(bad_request(long)) == ["X-Mock-Session"]


def test_an_invalid_session_parameter_is_a_400(api):
    errors = bad_request(api.get("/_mock/faults?session=no!"))
    assert list(errors) == ["session"]
    errors = bad_request(api.post("/_mock/faults?session=no!", json={"status": 503}))
    assert list(errors) == ["session"]


def test_an_invalid_session_header_on_the_control_api_is_a_400(api):
    answer = api.post(
        "/_mock/faults", json={"status": 503}, headers={"X-Mock-Session": "no spaces!"}
    )
    assert list(bad_request(answer)) == ["X-Mock-Session"]


# ---------------------------------------------------------------- scenario files


SCENARIO = [
    {"method": "GET", "path": RECORD, "status": 404, "times": 1},
    {"method": "GET", "path": RECORDS, "status": 503, "headers": {"Retry-After": "3"}},
    {"method": "GET", "status": 500, "session": "A"},
]


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
@pytest.mark.parametrize("wrapped", [False, True], ids=["list", "rules"])
def test_a_scenario_file_loads_its_rules(make_app, tmp_path, suffix, wrapped):
    path = write_scenario(tmp_path, SCENARIO, suffix, wrapped)
    api = make_app(scenario=path).test_client()
    assert rules(api) == [
        {
            "id": "rule-1",
            "rule": SCENARIO[0],
            "matched": 0,
            "fired": 0,
            "documented": True,
            "active": True,
        },
        {
            "id": "rule-2",
            "rule": SCENARIO[1],
            "matched": 0,
            "fired": 0,
            "documented": False,
            "active": True,
        },
    ]
    [in_a] = rules(api, "A")
    assert in_a["rule"] == SCENARIO[2]
    assert in_a["documented"] is False
    assert api.get("/_mock/health").json["faults"] == 2
    record = create_record(api)
    spec_problem(get(api, f"{RECORDS}/{record}"), 404)
    assert get(api, f"{RECORDS}/{record}").status_code == 200  # times: 1
    answer = get(api)
    spec_problem(answer, 503)
    assert answer.headers["Retry-After"] == "3"
    spec_problem(get(api, EVENT_TYPES, session="A"), 500)
    assert get(api, EVENT_TYPES, session="B").status_code == 200


def test_a_handwritten_yaml_scenario(make_app, tmp_path):
    path = tmp_path / "flaky.yaml"
    path.write_text(
        """\
# the list is slow, then refuses twice
rules:
  - method: GET
    path: /public/v1/audit/records
    delay_ms: {uniform: [100, 200]}
    status: 429
    headers: {Retry-After: "1"}
    after: 1
    times: 2
""",
        encoding="utf-8",
    )
    api = make_app(scenario=path).test_client()
    assert get(api).status_code == 200
    answer, took = timed(lambda: get(api))
    spec_problem(answer, 429)
    assert answer.headers["Retry-After"] == "1"
    assert 0.09 <= took < 10
    assert statuses(api, 2) == [429, 200]


def test_reset_brings_back_the_scenario_rules_and_drops_added_ones(make_app, tmp_path):
    path = write_scenario(
        tmp_path, [{"method": "GET", "path": RECORDS, "status": 503, "times": 1}], ".yaml", True
    )
    api = make_app(scenario=path).test_client()
    assert statuses(api, 2) == [503, 200]
    assert counters(rules(api)[0]) == (1, 1, False)
    add(api, {"method": "POST", "path": RECORDS, "status": 500})
    assert len(rules(api)) == 2
    answer = api.post("/_mock/reset")
    assert answer.status_code == 200
    assert answer.json["faults"] == 1
    assert answer.json["journal"] == 0
    assert rules(api) == [
        {
            "id": "rule-1",
            "rule": {"method": "GET", "path": RECORDS, "status": 503, "times": 1},
            "matched": 0,
            "fired": 0,
            "documented": False,
            "active": True,
        }
    ]
    assert statuses(api, 2) == [503, 200]
    assert api.post(RECORDS, json=new_record()).status_code == 201


def test_reset_of_one_session_leaves_the_others(make_app, tmp_path):
    path = write_scenario(
        tmp_path, [{"path": RECORDS, "status": 503, "session": "A"}], ".json", False
    )
    api = make_app(scenario=path).test_client()
    add(api, {"path": RECORDS, "status": 500}, session="A")
    add(api, {"path": RECORDS, "status": 500})
    assert api.post("/_mock/reset?session=A").json["faults"] == 1
    assert [rule["rule"]["status"] for rule in rules(api, "A")] == [503]
    assert [rule["rule"]["status"] for rule in rules(api)] == [500]


def test_reset_without_a_scenario_clears_the_rules(api):
    add(api, {"path": RECORDS, "status": 503})
    assert api.post("/_mock/reset").json["faults"] == 0
    assert rules(api) == []
    assert get(api).status_code == 200


# ---------------------------------------------------------------- scenario errors at start-up


BAD_SCENARIOS = [
    pytest.param(
        "bad.yaml",
        "rules: [ {method: GET\n",
        [],
        "bad.yaml:2:1: expected ',' or '}'",
        id="unparsable-yaml",
    ),
    pytest.param(
        "bad.json", '[{"status": 503},', [], "bad.json:1:18: Expecting value", id="unparsable-json"
    ),
    pytest.param(
        "bad.yaml",
        "- {method: GET, status: 503}\n- {status: 500, bogus: 1}\n",
        [],
        "rule 2 is not valid: bogus:",
        id="unknown-member",
    ),
    pytest.param(
        "bad.json",
        json.dumps(
            [
                {
                    "method": "GET",
                    "path": RECORD,
                    "status": 404,
                    "body": {**VALID_PROBLEM, "status": "x"},
                }
            ]
        ),
        [],
        "rule 1 is not valid: body.status: The value must be an integer, not a string.",
        id="bad-body",
    ),
    pytest.param(
        "bad.yaml",
        "rules:\n  - {path: /public/v1/audit/records, delay_ms: 5}\n  - {path: /x, status: 700}\n",
        [],
        "rule 2 is not valid: status: The value must be 599 or less.",
        id="status-700",
    ),
    pytest.param(
        "bad.yaml",
        "- {method: GET, path: /public/v1/audit/records, status: 503}\n",
        ["--strict"],
        "rule 1 is not valid: status:",
        id="strict-undocumented",
    ),
    pytest.param("bad.yaml", "rules: 5\n", [], "a scenario is a list of rules", id="not-a-list"),
]


@pytest.mark.parametrize(("name", "text", "args", "message"), BAD_SCENARIOS)
def test_a_bad_scenario_stops_start_up_naming_the_file_and_rule(
    tmp_path, name, text, args, message
):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    done = subprocess.run(
        [str(MOCKSERVER), "--scenario", str(path), "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"mockserver: error: {path}:"), done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- the real server


@pytest.fixture(scope="module")
def live() -> Iterator[Server]:
    """One real server (uWSGI, 8 threads) for this module; each test works in its own session."""
    running = Server(["--fault-seed", "7"]).start()
    yield running
    assert running.stop() == 0
    assert not nonconforming(running), "\n".join(nonconforming(running))


def live_add(server: Server, session: str, rule: dict[str, Any]) -> str:
    answer = requests.post(f"{server.url}/_mock/faults?session={session}", json=rule, timeout=10)
    assert answer.status_code == 201, answer.text
    rule_id: str = answer.json()["data"][0]["id"]
    return rule_id


def live_rule(server: Server, session: str, rule_id: str) -> dict[str, Any]:
    answer = requests.get(f"{server.url}/_mock/faults?session={session}", timeout=10)
    (found,) = [rule for rule in answer.json()["data"] if rule["id"] == rule_id]
    return found


def live_count(server: Server, session: str, **matcher: Any) -> int:
    url = f"{server.url}/_mock/requests/count?session={session}"
    found: int = requests.post(url, json=matcher, timeout=10).json()["count"]
    return found


def at_once(server: Server, session: str, n: int = 16) -> Counter[int]:
    """n clients send a request at the same moment; the statuses they get."""
    barrier = threading.Barrier(n)
    sent = headers(session)

    def one(_: int) -> int:
        with requests.Session() as client:
            barrier.wait(timeout=30)
            return client.get(f"{server.url}{RECORDS}", headers=sent, timeout=30).status_code

    with ThreadPoolExecutor(n) as pool:
        return Counter(pool.map(one, range(n)))


@pytest.mark.parametrize("round_", range(3))
def test_times_is_exact_under_concurrency(live, round_):
    session = f"times-{round_}"
    rule = live_add(live, session, {"method": "GET", "path": RECORDS, "status": 503, "times": 5})
    assert at_once(live, session) == {503: 5, 200: 11}
    state = live_rule(live, session, rule)
    assert (state["fired"], state["active"]) == (5, False)
    assert live_count(live, session, fault=rule) == 5
    assert live_count(live, session, path=RECORDS, status=503) == 5
    assert live_count(live, session, path=RECORDS) == 16


@pytest.mark.parametrize("round_", range(3))
def test_after_and_times_are_exact_under_concurrency(live, round_):
    session = f"after-{round_}"
    rule = {"method": "GET", "path": RECORDS, "status": 503, "after": 3, "times": 2}
    rule_id = live_add(live, session, rule)
    assert at_once(live, session) == {503: 2, 200: 14}
    state = live_rule(live, session, rule_id)
    assert (state["fired"], state["active"]) == (2, False)
    assert live_count(live, session, fault=rule_id) == 2


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("connection_reset", requests.ConnectionError),
        ("empty_response", requests.ConnectionError),
        ("malformed_response", requests.ConnectionError),
        ("timeout", requests.ReadTimeout),
    ],
)
def test_connection_faults(live, fault, error):
    session = f"fault-{fault}"
    rule_id = live_add(
        live, session, {"method": "GET", "path": RECORDS, "fault": fault, "times": 1}
    )
    with pytest.raises(error):
        requests.get(f"{live.url}{RECORDS}", headers=headers(session), timeout=(5, 0.5))
    answer = requests.get(f"{live.url}{RECORDS}", headers=headers(session), timeout=10)
    assert answer.status_code == 200
    assert counters(live_rule(live, session, rule_id)) == (1, 1, False)
    assert live_count(live, session, fault=rule_id) == 1


def test_a_rule_delay_on_the_real_server(live):
    session = "delay"
    live_add(live, session, {"method": "GET", "path": RECORDS, "status": 504, "delay_ms": 200})
    answer, took = timed(
        lambda: requests.get(f"{live.url}{RECORDS}", headers=headers(session), timeout=10)
    )
    assert answer.status_code == 504
    assert answer.headers["Content-Type"] == PROBLEM_JSON
    assert 0.19 <= took < 10


def _live_flips(server: Server, n: int = 40) -> list[int]:
    with requests.Session() as client:
        flips = [
            client.get(f"{server.url}{RECORDS}", headers=AUTH, timeout=10).status_code
            for _ in range(n)
        ]
    state = requests.get(f"{server.url}/_mock/faults", timeout=10).json()["data"][0]
    assert (state["matched"], state["fired"]) == (n, flips.count(503))
    return flips


def test_probability_is_reproducible_across_runs_with_the_same_seed(start_server, tmp_path):
    scenario = write_scenario(
        tmp_path,
        [{"method": "GET", "path": RECORDS, "status": 503, "probability": 0.5}],
        ".yaml",
        False,
    )
    first = start_server("--scenario", str(scenario), "--fault-seed", "1234")
    flips = _live_flips(first)
    assert set(flips) == {200, 503}
    assert requests.post(f"{first.url}/_mock/reset", timeout=10).status_code == 200
    assert _live_flips(first) == flips  # a reset starts the run again
    assert first.stop() == 0
    second = start_server("--scenario", str(scenario), "--fault-seed", "1234")
    assert _live_flips(second) == flips
