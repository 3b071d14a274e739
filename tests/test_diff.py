"""`mockserver diff FILE.har`: a recording replayed against a fresh in-process mock. A recording
made through the proxy in front of a second mock shows no difference; one made in front of the
divergent upstream (`divergent.py`) shows exactly its divergences, in text, JSON and JUnit XML.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from divergent import CREATED_ID, EVENT_TYPE, Divergent, exchanges
from flask import Flask
from support import CLOSE, EVENT_TYPES, MOCKSERVER, RECORDS, Server, new_record

from mockserver.proxy.compare import Answer, Ids, compare
from mockserver.serving.diff import replay

SECRET = "s3cr3t-diff-SECRETPART"
TOKEN = f"idt:TKN-1234-5678:{SECRET}"
AUTH = {"Authorization": f"Bearer {TOKEN}", **CLOSE}


def diff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MOCKSERVER), "diff", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def mock_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recording of a client's session through the proxy in front of a second mock."""
    recording = tmp_path_factory.mktemp("diff") / "mock.har"
    upstream = Server([]).start()
    proxy = Server(["--upstream", upstream.url, "--record", str(recording)]).start()
    try:
        url = proxy.url
        created = requests.post(f"{url}{RECORDS}", json=new_record(), headers=AUTH).json()
        time.sleep(0.002)  # the two records' timestamps differ, as the replay's do
        second = requests.post(
            f"{url}{RECORDS}",
            json=new_record(object={"id": "ORD-2", "objectType": "Order"}, details="Two"),
            headers=AUTH,
        ).json()
        for target in (
            f"{RECORDS}/{created['id']}",
            f"{RECORDS}/{second['id']}?select=-actor",
            f"{RECORDS}?order=-timestamp&limit=5",
            f"{RECORDS}?eq(object.id,ORD-2)",
            f"{RECORDS}/AUD-9999-9999-9999-9999",
            f"{EVENT_TYPES}?limit=3",
        ):
            requests.get(url + target, headers=AUTH)
        streamed = {**AUTH, "MPT-Streaming": "true"}
        requests.get(f"{url}{RECORDS}?order=object.id", headers=streamed).raise_for_status()
        event_type = f"{EVENT_TYPES}/AET-6491-7370"
        requests.put(url + event_type, json={"name": "Order placed"}, headers=AUTH)
        requests.get(url + event_type, headers=AUTH).raise_for_status()
        requests.get(f"{url}{RECORDS}", headers=CLOSE)  # no token: a 401
    finally:
        proxy.stop()
        upstream.stop()
    return recording


def test_a_recording_of_a_second_mock_shows_no_difference(mock_recording: Path) -> None:
    done = diff(str(mock_recording), "--token", TOKEN)
    assert done.stdout == "0 of 12 exchanges differ\n", done.stdout + done.stderr
    assert done.returncode == 0


def test_no_difference_in_json_and_junit(mock_recording: Path, tmp_path: Path) -> None:
    done = diff(str(mock_recording), "--token", TOKEN, "--format", "json")
    assert json.loads(done.stdout) == {
        "exchanges": 12,
        "differing": 0,
        "skipped": 0,
        "differences": [],
    }
    report = tmp_path / "diff.xml"
    done = diff(str(mock_recording), "--token", TOKEN, "--format", "junit", "--output", str(report))
    assert done.returncode == 0
    suite = ElementTree.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("12", "0")


def test_without_the_token_the_actor_differs(mock_recording: Path) -> None:
    done = diff(str(mock_recording))
    assert done.returncode == 1
    assert '$.actor.name: value differs: recorded "API Token TKN-1234-5678"' in done.stdout


@pytest.fixture(scope="module")
def divergent_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    recording = tmp_path_factory.mktemp("divergent") / "divergent.har"
    upstream = Divergent().start()
    args = ["--upstream", upstream.url, "--upstream-timeout", "1", "--record", str(recording)]
    proxy = Server(args).start()
    try:
        exchanges(proxy.url, AUTH)
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()
    return recording


DIVERGENCES = f"""\
5 of 5 exchanges differ (2 skipped: the upstream did not answer)
#1 POST {RECORDS}
  MPT-Debug: header differs: recorded on, mock absent
#2 GET {RECORDS}/AUD-
  $.event: type differs: recorded integer, mock string
#3 GET {RECORDS}?eq(object.id,ORD-DIV-1)
  $.$meta.pagination.total: member differs: recorded missing, mock present
#4 GET {EVENT_TYPE}
  status: status differs: recorded 418, mock 200
#7 GET {RECORDS}?eq(object.id,ORD-DIV-1)
  MPT-Item-Count: header differs: recorded 2, mock 1
  $: length differs: recorded 2, mock 1
"""


def test_the_diff_catches_exactly_the_upstreams_divergences(divergent_recording: Path) -> None:
    done = diff(str(divergent_recording), "--token", TOKEN)
    assert done.returncode == 1
    shown = done.stdout.replace(CREATED_ID, "X")
    lines = shown.splitlines()
    expected = DIVERGENCES.splitlines()
    assert len(lines) == len(expected), shown
    for line, wanted in zip(lines, expected, strict=True):
        assert line.startswith(wanted), shown
    assert lines[3].startswith(f"#2 GET {RECORDS}/AUD-")  # the created id, mapped


def test_the_diff_in_json_and_junit(divergent_recording: Path, tmp_path: Path) -> None:
    done = diff(str(divergent_recording), "--token", TOKEN, "--format", "json")
    report = json.loads(done.stdout)
    assert (report["exchanges"], report["differing"], report["skipped"]) == (5, 5, 2)
    assert [d["exchange"] for d in report["differences"]] == [1, 2, 3, 4, 7]
    assert report["differences"][1]["differences"] == [
        {"kind": "type", "where": "$.event", "recorded": "integer", "mock": "string"}
    ]
    output = tmp_path / "diff.xml"
    done = diff(
        str(divergent_recording), "--token", TOKEN, "--format", "junit", "--output", str(output)
    )
    assert done.returncode == 1
    suite = ElementTree.parse(output).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("7", "5", "2")


def test_ignored_fields_are_not_compared(divergent_recording: Path) -> None:
    done = diff(
        str(divergent_recording),
        "--token",
        TOKEN,
        "--ignore",
        "MPT-Debug",
        "--ignore",
        "event",
        "--ignore",
        "$meta.pagination.total",
        "--format",
        "json",
    )
    report = json.loads(done.stdout)
    assert [d["exchange"] for d in report["differences"]] == [4, 7]


def test_a_file_that_is_no_recording_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.har"
    bad.write_text("hello")
    done = diff(str(bad))
    assert done.returncode == 2
    assert done.stderr == f"mockserver diff: error: {bad}: not a HAR file (not JSON)\n"


def test_the_server_command_is_unchanged() -> None:
    done = subprocess.run([str(MOCKSERVER), "--version"], capture_output=True, text=True)
    assert done.stdout.strip() == "mockserver 0.1.0"
    helped = diff("--help")
    assert "FILE.har" in helped.stdout
    assert "--ignore FIELD" in helped.stdout


# ---------------------------------------------------------------- the comparison itself


def answer(body: object, status: int = 200, **headers: str) -> Answer:
    return Answer(
        status,
        {k.lower().replace("_", "-"): v for k, v in headers.items()},
        json.dumps(body).encode(),
    )


def test_server_made_ids_are_mapped_through_the_run() -> None:
    ids = Ids()
    created = compare(
        answer(
            {"id": "AUD-1111-1111-1111-1111"}, 201, location="https://p/r/AUD-1111-1111-1111-1111"
        ),
        answer(
            {"id": "AUD-2222-2222-2222-2222"}, 201, location="http://m/r/AUD-2222-2222-2222-2222"
        ),
        ids,
        frozenset(),
    )
    assert created == []
    assert ids.replace("/r/AUD-1111-1111-1111-1111") == "/r/AUD-2222-2222-2222-2222"
    other = compare(
        answer({"id": "AUD-1111-1111-1111-1111"}),
        answer({"id": "AUD-3333-3333-3333-3333"}),
        ids,
        frozenset(),
    )
    assert [str(d) for d in other] == [
        '$.id: value differs: recorded "AUD-1111-1111-1111-1111", mock "AUD-3333-3333-3333-3333"'
    ]


def test_timestamps_and_trace_ids_are_not_compared_but_their_types_are() -> None:
    found = compare(
        answer({"timestamp": "2025-01-01T00:00:00.000Z", "traceId": "00-a", "n": 1}),
        answer({"timestamp": "2026-12-06T13:32:36.403Z", "traceId": "00-b", "n": "1"}),
        Ids(),
        frozenset(),
    )
    assert [(d.kind, d.where) for d in found] == [("type", "$.n")]


def test_the_replays_writes_each_start_in_a_millisecond_of_their_own(
    make_app: Callable[..., Flask],
) -> None:
    """However fast the replay, the records it makes carry distinct timestamps in their order,
    so a recorded `order=-timestamp` answer does not depend on the replay's speed."""
    posted = {
        "request": {
            "method": "POST",
            "url": "http://upstream/public/v1/audit/records",
            "headers": [
                {"name": "Content-Type", "value": "application/json"},
                {"name": "Authorization", "value": "Bearer ***"},
            ],
            "postData": {"mimeType": "application/json", "text": json.dumps(new_record())},
        },
        "response": {"status": 201, "headers": [], "content": {"text": "{}"}},
    }
    app = make_app()
    replay(app, [posted] * 30, frozenset(), TOKEN)
    listed = app.test_client().get(
        "/public/v1/audit/records?order=timestamp&limit=30", headers=AUTH
    )
    stamps = [record["timestamp"] for record in listed.get_json()["data"]]
    assert len(stamps) == 30
    assert stamps == sorted(set(stamps))
