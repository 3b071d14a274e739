"""Hostile input against a real server (the console script on uWSGI): each row of
tests/hostile_cases.py gets exactly its expected answer (a problem document in the platform's
shape, or a closed connection where uWSGI closes it), and the server serves on after every
one. Timings are bench/hostile.py's business, not this test's.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hostile_cases import CASES, SERVER_ARGS, TIMEOUT, Case, send
from support import AUTH, RECORDS, Server, nonconforming

from mockserver.problems import problem_type

TRACE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")
# statuses the spec does not declare yet (the server answers them for any operation)
UNDECLARED = re.compile(r"undocumented: .* -> (411|414):")


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    running = Server(SERVER_ARGS).start()
    yield running
    assert running.stop() == 0
    findings = nonconforming(running)
    assert not findings, "\n".join(findings)


def serves(server: Server) -> bool:
    answer = requests.get(f"{server.url}/_mock/health", timeout=TIMEOUT)
    return answer.status_code == 200 and answer.json()["status"] == "ok"


def subset(expected: Any, found: Any) -> bool:
    """Whether `found` holds every member of `expected` (objects), or equals it."""
    if isinstance(expected, dict):
        return isinstance(found, dict) and all(
            key in found and subset(value, found[key]) for key, value in expected.items()
        )
    return bool(expected == found)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request(server: Server, case: Case) -> None:
    outcome = send(case, "127.0.0.1", server.port)
    assert outcome.ended != "timeout", f"no answer and no close within {case.timeout} s"
    if case.status is None:
        assert outcome.status is None, f"answered {outcome.status}: {outcome.body[:300]!r}"
    else:
        assert outcome.status == case.status, outcome.body[:500]
        assert b"Traceback" not in outcome.body
        headers = {name.lower(): value for name, value in outcome.headers.items()}
        for name, value in case.answer_headers.items():
            assert headers.get(name.lower()) == value, name
        body = json.loads(outcome.body)
        if case.json is not None:
            assert headers["content-type"].startswith("application/json")
            assert subset(case.json, body), body
        else:
            assert headers["content-type"] == "application/problem+json; charset=utf-8"
            assert body["status"] == case.status
            assert body["type"] == problem_type(case.status)  # RFC 9110's, or about:blank
            assert TRACE.match(body["traceId"])
            assert body.get("errors") == case.errors
            if case.detail is not None:
                assert body["detail"] == case.detail
            if case.title is not None:
                assert body["title"] == case.title
    assert serves(server), f"the server stopped serving after {case.name}"


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


def test_the_server_served_on_and_logged_no_crash(server: Server) -> None:
    assert serves(server)
    assert server.process is not None
    assert server.process.poll() is None  # still running
    assert not [line for line in server.log if "Traceback" in line or " ERROR " in line]


def test_control_characters_cannot_forge_log_lines(server: Server) -> None:
    target = f"{server.url}{RECORDS}/AUD-2%0D%0AFORGED%20200"
    assert requests.get(target, headers=AUTH, timeout=TIMEOUT).status_code == 404
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not any("FORGED" in line for line in server.log):
        time.sleep(0.05)
    lines = [line for line in server.log if "FORGED" in line]
    assert lines
    assert all("AUD-2" in line for line in lines)  # the request's own line, not a second one
