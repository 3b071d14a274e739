"""`mockserver.Client` and `mockserver.MockServer`: the control API from Python, and the mock
running in this process on a real socket (werkzeug's threaded server)."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
from mpt_api_client import MPTClient
from mpt_api_client.auth import BearerTokenAuthentication
from mpt_api_client.exceptions import MPTAPIError
from support import AUTH, RECORDS, TOKEN, new_record

from mockserver import Client, ControlError, MockServer

RECORD = f"{RECORDS}/{{id}}"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def server() -> Iterator[MockServer]:
    with MockServer(fault_seed=1) as running:
        yield running


@pytest.fixture
def control(server: MockServer) -> Client:
    """The control API on a session of this test's own."""
    client = server.client(f"client-{next(_names)}")
    client.reset()
    return client


def official(api_url: str, **config: Any) -> MPTClient:
    return MPTClient.from_config(BearerTokenAuthentication(TOKEN), base_url=api_url, **config)


# ---------------------------------------------------------------- the server


def test_the_server_listens_on_a_free_loopback_port(server: MockServer) -> None:
    assert server.url == f"http://127.0.0.1:{server.port}"
    assert server.port > 0
    assert server.api_url == f"{server.url}/public/v1"
    answer = requests.get(f"{server.url}/_mock/health", timeout=5)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_the_official_client_works_against_it(server: MockServer) -> None:
    client = official(server.api_url)
    created = client.audit.records.create(new_record(details="in-process"))
    assert client.audit.records.get(created.id).to_dict()["details"] == "in-process"


def test_settings_are_keywords_and_a_stopped_server_frees_its_port() -> None:
    with MockServer(seed_records=5, faker_seed=2, auth=False) as running:
        port = running.port
        assert running.client().health()["records"] == 5
        assert requests.get(running.url + RECORDS, timeout=5).status_code == 200  # auth off
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_an_unknown_setting_is_refused() -> None:
    with pytest.raises(TypeError, match="unknown MockServer option"):
        MockServer(seeds=5)


def test_a_server_not_started_has_no_port() -> None:
    with pytest.raises(RuntimeError, match="not running"):
        _ = MockServer().port


# ---------------------------------------------------------------- endpoints


def test_health_names_the_session(control: Client) -> None:
    health = control.health()
    assert health["session"] == control.session
    assert health["spec"]["title"].startswith("SoftwareOne Marketplace Audit API")
    assert (health["records"], health["faults"], health["journal"]) == (0, 0, 0)


def test_records_are_inserted_read_and_cleared(control: Client) -> None:
    fixture = {
        **new_record(details="fixture"),
        "id": "AUD-0000-0000-0000-0042",
        "timestamp": "2026-01-02T03:04:05.000Z",
    }
    [stored] = control.add_records(fixture)
    assert stored["id"] == "AUD-0000-0000-0000-0042"
    assert [r["id"] for r in control.records()] == ["AUD-0000-0000-0000-0042"]
    answer = requests.get(
        f"{control.url}{RECORDS}/AUD-0000-0000-0000-0042", headers={**AUTH, **control.headers}
    )
    assert answer.json()["timestamp"] == "2026-01-02T03:04:05.000Z"
    control.clear_records()
    assert control.records() == []


def test_faults_are_added_listed_and_removed(control: Client) -> None:
    first = control.fail(503, path=RECORDS, method="POST", times=2)
    second = control.delay(10)
    assert [f["id"] for f in control.faults()] == [first["id"], second["id"]]
    assert first["rule"] == {"status": 503, "path": RECORDS, "method": "POST", "times": 2}
    assert first["documented"] is False
    control.remove_fault(first["id"])
    assert [f["id"] for f in control.faults()] == [second["id"]]
    control.clear_faults()
    assert control.faults() == []


def test_a_refusal_carries_the_problem(control: Client) -> None:
    with pytest.raises(ControlError) as refused:
        control.fail(500, times=0)
    assert refused.value.status == 400
    assert refused.value.problem["status"] == 400
    assert "times" in refused.value.errors
    assert "POST /_mock/faults -> 400" in str(refused.value)
    assert "times:" in str(refused.value)


def test_an_unknown_rule_is_a_404_error(control: Client) -> None:
    with pytest.raises(ControlError) as refused:
        control.remove_fault("FLT-9999")
    assert refused.value.status == 404
    assert "FLT-9999" in str(refused.value)


def test_journal_count_and_clear(control: Client) -> None:
    headers = {**AUTH, **control.headers}
    requests.get(f"{control.url}{RECORDS}", headers=headers, timeout=5)
    requests.get(f"{control.url}{RECORDS}/AUD-0000-0000-0000-0001", headers=headers, timeout=5)
    entries = control.journal()
    assert [(e["method"], e["status"]) for e in entries] == [("GET", 200), ("GET", 404)]
    assert control.count(status=404) == 1
    assert control.count(path=RECORD) == 1
    assert control.count(operation="listAuditRecords") == 1
    control.clear_requests()
    assert control.journal() == []


def test_coverage_counts_the_session_answers(control: Client) -> None:
    requests.get(f"{control.url}{RECORDS}", headers={**AUTH, **control.headers}, timeout=5)
    report = control.coverage()
    [listing] = [op for op in report["operations"] if op["operation"] == "listAuditRecords"]
    assert listing["statuses"]["200"] == 1


def test_reset_brings_the_start_up_state_back(control: Client) -> None:
    control.add_records(new_record() | {"id": "AUD-0000-0000-0000-0007"})
    control.fail(500)
    health = control.reset()
    assert (health["records"], health["faults"]) == (0, 0)


# ---------------------------------------------------------------- sessions in the URL


def test_api_url_puts_a_client_in_its_session(server: MockServer) -> None:
    a, b = server.client("url-a"), server.client("url-b")
    a.reset()
    b.reset()
    assert a.api_url == f"{server.url}/_session/url-a/public/v1"
    created = official(a.api_url).audit.records.create(new_record(details="only in a"))
    assert [r["id"] for r in a.records()] == [created.id]
    assert b.records() == []
    assert official(a.api_url).audit.records.get(created.id).id == created.id
    # the official client keeps a base URL's path as a prefix: both forms reach the session
    assert official(f"{server.url}/_session/url-a").audit.records.get(created.id).id == created.id
    with pytest.raises(MPTAPIError) as missing:
        official(b.api_url).audit.records.get(created.id)
    assert missing.value.status == 404
    [entry] = a.requests(method="POST")
    assert entry["path"] == RECORDS  # journaled without the prefix
    assert entry["session"] == "url-a"


def test_the_location_header_keeps_the_session_prefix(control: Client) -> None:
    answer = requests.post(
        f"{control.api_url}/audit/records", json=new_record(), headers=AUTH, timeout=5
    )
    assert answer.status_code == 201
    location = answer.headers["Location"]
    assert location.startswith(f"{control.url}/_session/{control.session}/public/v1/audit/records/")
    assert requests.get(location, headers=AUTH, timeout=5).json() == answer.json()


def test_the_control_api_works_through_the_prefix(control: Client) -> None:
    answer = requests.get(f"{control.url}/_session/{control.session}/_mock/health", timeout=5)
    assert answer.json()["session"] == control.session


# ---------------------------------------------------------------- intent helpers


def test_fail_twice_then_the_official_client_succeeds(control: Client) -> None:
    control.fail(503, method="POST", path=RECORDS, times=2, headers={"Retry-After": "0"})
    created = official(control.api_url).audit.records.create(new_record(details="retried"))
    entries = control.assert_called(method="POST", path=RECORDS, times=3)
    assert [e["status"] for e in entries] == [503, 503, 201]
    assert [r["id"] for r in control.records()] == [created.id]


def test_delay_holds_the_answer(control: Client) -> None:
    control.delay(300, path=RECORDS)
    started = time.perf_counter()
    answer = requests.get(f"{control.api_url}/audit/records", headers=AUTH, timeout=5)
    assert answer.status_code == 200
    assert time.perf_counter() - started >= 0.29


@pytest.mark.parametrize(
    ("helper", "error"),
    [
        ("reset_connection", requests.ConnectionError),
        ("close_connection", requests.ConnectionError),
        ("send_garbage", requests.ConnectionError),
        ("hang", requests.ReadTimeout),
    ],
)
def test_connection_faults_happen_on_the_in_process_socket(
    control: Client, helper: str, error: type[Exception]
) -> None:
    getattr(control, helper)(path=RECORDS, times=1)
    with pytest.raises(error):
        requests.get(f"{control.api_url}/audit/records", headers=AUTH, timeout=0.5)
    answer = requests.get(f"{control.api_url}/audit/records", headers=AUTH, timeout=5)
    assert answer.status_code == 200  # the server goes on
    [faulted, served] = control.journal()
    assert (faulted["status"], served["status"]) == (0, 200)


def test_a_reset_connection_makes_the_official_client_retry(control: Client) -> None:
    control.reset_connection(method="POST", path=RECORDS, times=1)
    created = official(control.api_url).audit.records.create(new_record())
    assert [e["status"] for e in control.requests(method="POST")] == [0, 201]
    assert [r["id"] for r in control.records()] == [created.id]


def test_requests_filters_by_template_and_status(control: Client) -> None:
    with httpx.Client(base_url=control.api_url, headers=AUTH) as http:
        http.get("/audit/records")
        http.get("/audit/records/AUD-0000-0000-0000-0001")
        http.get("/audit/records/AUD-0000-0000-0000-0002")
    assert len(control.requests(path=RECORD)) == 2
    assert len(control.requests(path=RECORDS)) == 1
    assert len(control.requests(status=404, method="get")) == 2
    assert control.requests(operation="getAuditRecord", status=200) == []


def test_assert_called_lists_the_near_misses(control: Client) -> None:
    with httpx.Client(base_url=control.api_url, headers=AUTH) as http:
        http.get("/audit/records")
        http.post("/audit/records", json=new_record())
        http.get("/audit/records/AUD-0000-0000-0000-0001")
    with pytest.raises(AssertionError) as failed:
        control.assert_called(method="POST", path=RECORDS, times=2)
    message = str(failed.value)
    assert message.splitlines()[:2] == [
        f"expected POST {RECORDS} 2 time(s); it was called 1 time(s).",
        "near misses (closest first):",
    ]
    assert f"#1 GET {RECORDS} -> 200: method is GET, not POST" in message
    assert (
        f"#3 GET {RECORDS}/AUD-0000-0000-0000-0001 -> 404: method is GET, not POST; "
        f"path is {RECORDS}/AUD-0000-0000-0000-0001, not {RECORDS}"
    ) in message
    assert message.index("#1 GET") < message.index("#3 GET")  # fewer misses first


def test_assert_called_without_times_needs_one_call(control: Client) -> None:
    with pytest.raises(AssertionError, match="at least once; it was called 0 time"):
        control.assert_called(method="DELETE")
