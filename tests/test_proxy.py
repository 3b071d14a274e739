"""The validating proxy (`--upstream`), as the console script runs it: in front of a second
mock, and of a small upstream that diverges from the spec on purpose (`divergent.py`).

What is checked: answers pass unchanged (streams as they come); the mock's front still works
(sessions, journal, fault rules, `Prefer`); a request that breaks the spec never reaches the
upstream (unless `--forward-invalid`); the drift report catches exactly the upstream's
divergences (GET /_mock/drift, and `--drift-report` at SIGTERM as JSON and JUnit XML);
`--record` writes HAR 1.2 that survives SIGTERM and kill -9; `--seed-from` loads it; TLS is
verified (`--upstream-ca` with a throwaway CA); secrets appear in no journal, log, HAR or report.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson
import pytest
import requests
import trustme
from divergent import CREATED_ID, RESET_ID, SLOW_ID, Divergent, exchanges
from mpt_api_client import MPTClient, RQLQuery
from mpt_api_client.auth import BearerTokenAuthentication
from support import CLOSE, MOCKSERVER, RECORDS, Server, new_record

from mockserver.proxy import har

SECRET = "s3cr3t-proxy-SECRETPART"
TOKEN = f"idt:TKN-1234-5678:{SECRET}"
AUTH = {"Authorization": f"Bearer {TOKEN}", **CLOSE}
QUERY_SECRET = "tok-0000-QUERYSECRET"


def started(*args: str) -> Server:
    return Server(list(args)).start()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Server]:
    """A second mock: the platform, as far as these tests go."""
    server = started()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxy(upstream: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("proxy")
    server = started("--upstream", upstream.url, "--record", str(folder / "rec.har"))
    yield server
    server.stop()


@pytest.fixture
def divergent() -> Iterator[Divergent]:
    server = Divergent().start()
    yield server
    server.shutdown()
    server.server_close()


def journal(server: Server, **query: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{server.url}/_mock/requests", params=query, headers=CLOSE, timeout=5)
    data: list[dict[str, Any]] = answer.json()["data"]
    return data


# ---------------------------------------------------------------- passing through


def test_answers_pass_through_unchanged(proxy: Server, upstream: Server) -> None:
    created = requests.post(proxy.api_url + "/audit/records", json=new_record(), headers=AUTH)
    assert created.status_code == 201
    record = created.json()
    assert created.headers["Location"] == f"{upstream.url}{RECORDS}/{record['id']}"
    direct = requests.get(f"{upstream.url}{RECORDS}/{record['id']}", headers=AUTH)
    through = requests.get(f"{proxy.url}{RECORDS}/{record['id']}", headers=AUTH)
    assert through.status_code == direct.status_code == 200
    assert through.content == direct.content == created.content
    assert through.headers["Content-Type"] == direct.headers["Content-Type"]
    entry = journal(proxy, method="GET")[-1]
    assert entry["upstream"] == {"status": 200, "drift": [], "forwardedInvalid": False}
    assert entry["headers"]["Authorization"] == "Bearer idt:TKN-***"


def test_a_stream_passes_through_as_it_comes(proxy: Server, upstream: Server) -> None:
    for number in range(3):
        body = new_record(object={"id": f"ORD-STREAM-{number}", "objectType": "Order"})
        requests.post(f"{proxy.url}{RECORDS}", json=body, headers=AUTH).raise_for_status()
    target = RECORDS + "?like(object.id,ORD-STREAM-*)&order=object.id"
    streamed = {**AUTH, "MPT-Streaming": "true"}
    direct = requests.get(upstream.url + target, headers=streamed)
    through = requests.get(proxy.url + target, headers=streamed, stream=True)
    lines = list(through.iter_lines())
    assert through.status_code == 200
    assert through.headers["MPT-Item-Count"] == "3"
    assert through.headers["Content-Type"] == "application/jsonl; charset=utf-8"
    assert lines == direct.content.splitlines()
    assert [json.loads(line)["object"]["id"] for line in lines] == [
        f"ORD-STREAM-{n}" for n in range(3)
    ]


def test_each_line_of_a_stream_is_passed_on_as_it_comes(divergent: Divergent) -> None:
    server = started("--upstream", divergent.url)
    try:
        headers = {**AUTH, "MPT-Streaming": "true", "X-Pause": "1.5"}
        started_at = time.monotonic()
        with requests.get(f"{server.url}{RECORDS}", headers=headers, stream=True) as answer:
            lines = answer.iter_lines()
            first = json.loads(next(lines))
            first_at = time.monotonic() - started_at
            second = json.loads(next(lines))
            second_at = time.monotonic() - started_at
    finally:
        server.stop()
    assert first["id"] == CREATED_ID
    assert second["event"] == 42
    assert first_at < 1.0  # before the upstream sent the second line
    assert second_at >= 1.5


def test_the_official_client_works_through_the_proxy(proxy: Server) -> None:
    client = MPTClient.from_config(
        BearerTokenAuthentication(TOKEN), base_url=f"{proxy.url}/public/v1"
    )
    record = client.audit.records.create(
        {"event": "platform.commerce.order.created", "object": {"id": "ORD-CLIENT-1"}}
    )
    assert client.audit.records.get(record.id).id == record.id
    found = list(client.audit.records.filter(RQLQuery(object__id="ORD-CLIENT-1")).iterate())
    assert [r.id for r in found] == [record.id]
    assert {e["upstream"]["status"] for e in journal(proxy) if "upstream" in e} >= {200, 201}


def test_an_invalid_request_is_refused_before_the_upstream(
    divergent: Divergent, tmp_path: Path
) -> None:
    server = started("--upstream", divergent.url)
    try:
        refused = requests.post(
            f"{server.url}{RECORDS}", json={"event": 42, "object": {"id": "O"}}, headers=AUTH
        )
        unknown = requests.get(f"{server.url}/public/v1/audit/nothing", headers=AUTH)
    finally:
        server.stop()
    assert refused.status_code == 400
    assert refused.json()["errors"] == {"event": ["The value must be a string, not an integer."]}
    assert unknown.status_code == 404
    assert divergent.seen == []


def test_forward_invalid_passes_it_on_flagged(divergent: Divergent) -> None:
    server = started("--upstream", divergent.url, "--forward-invalid")
    try:
        body = {**divergent.body, "event": 42}
        forwarded = requests.post(f"{server.url}{RECORDS}", json=body, headers=AUTH)
        entry = journal(server)[-1]
    finally:
        server.stop()
    assert forwarded.status_code == 201  # the upstream's answer
    assert [(method, path) for method, path, _, _ in divergent.seen] == [("POST", RECORDS)]
    assert json.loads(divergent.seen[0][3])["event"] == 42
    assert entry["valid"] is False
    assert entry["violations"] == {"event": ["The value must be a string, not an integer."]}
    assert entry["upstream"]["forwardedInvalid"] is True
    assert any("forwardedInvalid=" in line for line in server.log)


def test_authorization_goes_upstream_as_it_came(divergent: Divergent) -> None:
    server = started("--upstream", divergent.url)
    try:
        headers = {**AUTH, "X-Mock-Session": "mine", "X-Custom": "kept"}
        requests.post(f"{server.url}{RECORDS}", json=divergent.body, headers=headers)
    finally:
        server.stop()
    _, _, sent, body = divergent.seen[0]
    assert sent["Authorization"] == f"Bearer {TOKEN}"
    assert sent["X-Custom"] == "kept"
    assert "X-Mock-Session" not in sent  # the mock's own
    assert json.loads(body) == divergent.body


# ---------------------------------------------------------------- the front still applies


def test_fault_rules_and_prefer_apply_in_front_of_the_upstream(
    divergent: Divergent,
) -> None:
    server = started("--upstream", divergent.url)
    try:
        rule = {"method": "POST", "path": RECORDS, "status": 503, "times": 1}
        requests.post(f"{server.url}/_mock/faults", json=rule, headers=CLOSE).raise_for_status()
        first = requests.post(f"{server.url}{RECORDS}", json=divergent.body, headers=AUTH)
        reached_after_rule = len(divergent.seen)
        second = requests.post(f"{server.url}{RECORDS}", json=divergent.body, headers=AUTH)
        started_at = time.monotonic()
        delayed = requests.post(
            f"{server.url}{RECORDS}",
            json=divergent.body,
            headers={**AUTH, "Prefer": "delay=300"},
        )
        waited = time.monotonic() - started_at
        preferred = requests.get(f"{server.url}{RECORDS}", headers={**AUTH, "Prefer": "code=403"})
        entries = journal(server)
    finally:
        server.stop()
    assert first.status_code == 503
    assert reached_after_rule == 0  # the rule answered; the upstream never saw it
    assert second.status_code == 201
    assert second.headers["MPT-Debug"] == "on"
    assert delayed.status_code == 201
    assert waited >= 0.3
    assert preferred.status_code == 403
    assert len(divergent.seen) == 2
    assert "Prefer" not in divergent.seen[1][2]
    assert [e["status"] for e in entries] == [503, 201, 201, 403]
    assert [e["fault"] for e in entries] == ["rule-1", None, "prefer", "prefer"]


def test_sessions_keep_their_own_journals(proxy: Server) -> None:
    url = f"{proxy.url}/_session/proxied-one{RECORDS}?limit=1"
    requests.get(url, headers=AUTH).raise_for_status()
    entries = journal(proxy, session="proxied-one")
    assert [(e["method"], e["status"], e["upstream"]["status"]) for e in entries] == [
        ("GET", 200, 200)
    ]


# ---------------------------------------------------------------- upstream failures


def test_an_upstream_that_is_down_is_a_502_naming_it() -> None:
    gone = Server([])  # a free port nobody listens on
    server = started("--upstream", gone.url)
    try:
        answer = requests.get(f"{server.url}{RECORDS}", headers=AUTH)
        entry = journal(server)[-1]
    finally:
        server.stop()
    assert answer.status_code == 502
    problem = answer.json()
    assert problem["status"] == 502
    assert problem["traceId"].startswith("00-")
    assert f"The upstream {gone.url} failed" in problem["detail"]
    assert entry["status"] == 502
    assert entry["upstream"]["status"] == 0


def test_a_slow_upstream_is_a_504_and_a_reset_a_502(divergent: Divergent) -> None:
    server = started("--upstream", divergent.url, "--upstream-timeout", "1")
    try:
        started_at = time.monotonic()
        slow = requests.get(f"{server.url}{RECORDS}/{SLOW_ID}", headers=AUTH)
        waited = time.monotonic() - started_at
        reset = requests.get(f"{server.url}{RECORDS}/{RESET_ID}", headers=AUTH)
        entries = journal(server)
    finally:
        server.stop()
    assert slow.status_code == 504
    assert slow.json()["detail"] == f"The upstream {divergent.url} did not answer in time."
    assert 1 <= waited < 3
    assert reset.status_code == 502
    assert f"The upstream {divergent.url} failed" in reset.json()["detail"]
    assert [e["status"] for e in entries] == [504, 502]
    assert any(" 504 " in line and "did not answer in time" in line for line in server.log)


# ---------------------------------------------------------------- TLS


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[tuple[Divergent, Path]]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    server = Divergent(tls=context).start()
    yield server, bundle
    server.shutdown()
    server.server_close()


def test_a_tls_upstream_is_verified_with_the_given_ca(
    tls_upstream: tuple[Divergent, Path],
) -> None:
    upstream, bundle = tls_upstream
    trusted = started("--upstream", upstream.url, "--upstream-ca", str(bundle))
    untrusted = started("--upstream", upstream.url)
    try:
        ok = requests.post(f"{trusted.url}{RECORDS}", json=upstream.body, headers=AUTH)
        refused = requests.post(f"{untrusted.url}{RECORDS}", json=upstream.body, headers=AUTH)
    finally:
        trusted.stop()
        untrusted.stop()
    assert ok.status_code == 201
    assert ok.json()["id"] == CREATED_ID
    assert refused.status_code == 502
    assert "CERTIFICATE_VERIFY_FAILED" in refused.json()["detail"]
    assert len(upstream.seen) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--upstream", "ftp://example.com"], "--upstream ftp://example.com: not an http"),
        (["--upstream", "http://x", "--upstream-ca", "/nonexistent.pem"], "--upstream-ca"),
        (["--upstream", "http://x", "--upstream-timeout", "0"], "--upstream-timeout: '0' is not"),
        (["--seed-from", "/nonexistent.har"], "/nonexistent.har: cannot read it"),
        (["--record", "x.har"], "--record needs --upstream"),
        (["--drift-report", "d.json"], "--drift-report needs --upstream"),
    ],
)
def test_bad_proxy_options_stop_start_up_with_one_line(args: list[str], message: str) -> None:
    done = subprocess.run(
        [str(MOCKSERVER), "--port", "1", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode in (1, 2)
    lines = done.stderr.strip().splitlines()
    assert message in lines[-1], done.stderr


# ---------------------------------------------------------------- drift


EXPECTED_DRIFT = {
    ("createAuditRecord", 201): [],
    ("getAuditRecord", 200): [("event", "string", "integer")],
    ("listAuditRecords", 200): [
        ("$meta.pagination.total", "present", "missing"),
        ("[1].event", "string", "integer"),
    ],
    ("getAuditEventType", 418): [("status", "declared", "undeclared")],
}


def drift_found(report: dict[str, Any]) -> dict[tuple[str, int], list[tuple[str, str, str]]]:
    return {
        (p["operation"], p["status"]): [
            (v["field"], v["expected"], v["found"]) for v in p["violations"]
        ]
        for p in report["operations"]
    }


def test_the_drift_report_catches_exactly_the_upstreams_divergences(
    divergent: Divergent, tmp_path: Path
) -> None:
    report = tmp_path / "drift.json"
    server = started(
        "--upstream", divergent.url, "--upstream-timeout", "1", "--drift-report", str(report)
    )
    try:
        exchanges(server.url, AUTH, QUERY_SECRET)
        shown = requests.get(f"{server.url}/_mock/drift", headers=CLOSE).json()
        entries = journal(server)
    finally:
        assert server.stop() == 0
    assert drift_found(shown) == EXPECTED_DRIFT
    assert shown["upstream"] == divergent.url
    assert shown["violations"] == 4
    assert shown["responses"] == 5
    typed = next(p for p in shown["operations"] if p["operation"] == "getAuditRecord")
    assert json.loads(typed["sample"])["event"] == 42
    assert typed["firstSeen"] <= typed["lastSeen"]
    written = json.loads(report.read_text())
    assert drift_found(written) == EXPECTED_DRIFT
    assert not list(tmp_path.glob(".*drift*"))  # the sidecar is gone
    # flagged in the journal and in the log line
    flagged = {e["path"]: e["upstream"]["drift"] for e in entries if e.get("upstream")}
    assert flagged[f"{RECORDS}/{CREATED_ID}"] == ["event: expected string, found integer"]
    assert any(f"{CREATED_ID} 200" in line and "drift=" in line for line in server.log)
    assert any("upstream stream does not conform" in line for line in server.log)
    assert SECRET not in json.dumps(written) + json.dumps(entries) + "\n".join(server.log)
    assert QUERY_SECRET not in json.dumps(entries) + "\n".join(server.log)


def test_the_drift_report_is_junit_xml_for_any_other_name(
    divergent: Divergent, tmp_path: Path
) -> None:
    report = tmp_path / "drift.xml"
    server = started(
        "--upstream", divergent.url, "--upstream-timeout", "1", "--drift-report", str(report)
    )
    try:
        exchanges(server.url, AUTH, QUERY_SECRET)
    finally:
        assert server.stop() == 0
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("classname"): case for case in suite.iter("testcase")}
    assert suite.get("tests") == "4"
    assert suite.get("failures") == "3"
    assert cases["createAuditRecord"].find("failure") is None
    failure = cases["getAuditRecord"].find("failure")
    assert failure is not None
    assert failure.get("message") == "event: expected string, found integer (1x)"


def test_drift_is_empty_without_an_upstream(upstream: Server) -> None:
    shown = requests.get(f"{upstream.url}/_mock/drift", headers=CLOSE).json()
    assert shown == {"upstream": None, "responses": 0, "violations": 0, "operations": []}


def test_a_second_mock_shows_no_drift(proxy: Server) -> None:
    requests.get(f"{proxy.url}{RECORDS}?limit=2", headers=AUTH).raise_for_status()
    shown = requests.get(f"{proxy.url}/_mock/drift", headers=CLOSE).json()
    assert shown["responses"] >= 1
    assert shown["violations"] == 0


# ---------------------------------------------------------------- recording and seeding


def test_the_recording_is_whole_har_after_sigterm_with_secrets_masked(
    divergent: Divergent, tmp_path: Path
) -> None:
    recording = tmp_path / "rec.har"
    server = started(
        "--upstream", divergent.url, "--upstream-timeout", "1", "--record", str(recording)
    )
    try:
        exchanges(server.url, AUTH, QUERY_SECRET)
    finally:
        assert server.stop() == 0
    text = recording.read_text()
    document = json.loads(text)
    assert document["log"]["version"] == "1.2"
    entries = document["log"]["entries"]
    assert [(e["request"]["method"], e["response"]["status"]) for e in entries] == [
        ("POST", 201),
        ("GET", 200),
        ("GET", 200),
        ("GET", 418),
        ("GET", 0),
        ("GET", 0),
        ("GET", 200),
    ]
    first = entries[0]
    assert first["request"]["url"] == f"{divergent.url}{RECORDS}"
    assert {"name": "Authorization", "value": "Bearer idt:TKN-***"} in first["request"]["headers"]
    assert json.loads(first["request"]["postData"]["text"])["object"]["id"] == "ORD-DIV-1"
    assert {"name": "MPT-Debug", "value": "on"} in first["response"]["headers"]
    assert json.loads(first["response"]["content"]["text"])["id"] == CREATED_ID
    assert entries[4]["response"]["_error"].endswith("did not answer in time.")
    assert len(entries[6]["response"]["content"]["text"].splitlines()) == 2
    assert {"name": "access_token", "value": "tok-0000***"} in entries[2]["request"]["queryString"]
    assert SECRET not in text
    assert QUERY_SECRET not in text


def test_after_kill_9_the_recording_holds_every_finished_exchange(
    upstream: Server, tmp_path: Path
) -> None:
    recording = tmp_path / "rec.har"
    server = started("--upstream", upstream.url, "--record", str(recording))
    for number in range(5):
        body = new_record(object={"id": f"ORD-KILL-{number}", "objectType": "Order"})
        requests.post(f"{server.url}{RECORDS}", json=body, headers=AUTH).raise_for_status()
    assert server.process is not None
    worker = _children(server.process.pid)
    server.process.send_signal(signal.SIGKILL)
    for pid in worker:
        os.kill(pid, signal.SIGKILL)
    server.stop()
    entries = orjson.loads(recording.read_bytes())["log"]["entries"]  # whole, unrepaired
    assert [json.loads(e["request"]["postData"]["text"])["object"]["id"] for e in entries] == [
        f"ORD-KILL-{n}" for n in range(5)
    ]


def _children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in found]


def test_a_recording_cut_in_the_middle_of_an_entry_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "cut.har"
    recorder = har.Recorder(path)
    for number in range(3):
        request = har.request_part("GET", f"http://x/{number}", "", [], b"")
        response = har.response_part(200, "OK", [], b"{}", None)
        recorder.add(har.entry(time.time(), 1.0, request, response))
    whole = path.read_bytes()
    cut = whole[: whole.rindex(b'"response"') + 5]  # the last entry half written
    path.write_bytes(cut)
    entries = har.load(path)
    assert [e["request"]["url"] for e in entries] == ["http://x/0", "http://x/1"]


def test_seed_from_loads_a_recordings_records(proxy: Server, tmp_path: Path) -> None:
    body = new_record(object={"id": "ORD-SEEDED-1", "objectType": "Order"})
    created = requests.post(f"{proxy.url}{RECORDS}", json=body, headers=AUTH).json()
    events = requests.get(f"{proxy.url}/public/v1/audit/event-types?limit=3", headers=AUTH)
    recording = Path(next(a for a in proxy.args if a.endswith("rec.har")))  # the shared one
    seeded = started("--seed-from", str(recording))
    try:
        got = requests.get(f"{seeded.url}{RECORDS}/{created['id']}", headers=AUTH)
        event_type = events.json()["data"][0]
        found = requests.get(
            f"{seeded.url}/public/v1/audit/event-types/{event_type['id']}", headers=AUTH
        )
    finally:
        seeded.stop()
    assert got.status_code == 200
    assert got.json() == created
    assert found.status_code == 200
    assert found.json()["name"] == event_type["name"]
    assert any("seeded" in line and "rec.har" in line for line in seeded.log)
