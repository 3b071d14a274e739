"""Streaming reads (`MPT-Streaming: true`), `render()` and `$meta.omitted`, as the official
client reads them (contract section 5), on uWSGI (the CLI) and on the in-process server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mpt_api_client import MPTClient, RQLQuery
from mpt_api_client.auth import BearerTokenAuthentication
from mpt_api_client.exceptions import (
    MPTAPIError,
    MPTStreamingIncompleteError,
    MPTStreamingNotAcceptableError,
    MPTStreamingOverCapError,
    MPTStreamingTruncatedError,
)
from mpt_api_client.http.mixins.streaming_mixin import StreamFormat
from support import AUTH, RECORDS, TOKEN, Server

from mockserver import Client, MockServer

EVENT_TYPES = "/public/v1/audit/event-types"
STREAM = {**AUTH, "MPT-Streaming": "true"}
SEED = 300
CAP = 250
FORMATS = [StreamFormat.JSONL, StreamFormat.JSON]


@pytest.fixture(scope="module", params=["uwsgi", "in-process"])
def target(request: pytest.FixtureRequest) -> Iterator[str]:
    """A server with 300 seeded records and an export cap of 250: its root URL."""
    options = ["--seed-records", str(SEED), "--faker-seed", "5", "--max-export", str(CAP)]
    if request.param == "uwsgi":
        running = Server(options).start()
        yield running.url
        assert running.stop() == 0
    else:
        with MockServer(seed_records=SEED, faker_seed=5, max_export=CAP) as server:
            yield server.url


@pytest.fixture
def control(target: str) -> Iterator[Client]:
    client = Client(target)
    client.clear_requests()
    yield client
    client.clear_faults()


def official(target: str) -> MPTClient:
    return MPTClient.from_config(BearerTokenAuthentication(TOKEN), base_url=target)


def lines(answer: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in answer.text.splitlines() if line.strip()]


# ---------------------------------------------------------------- the answer


@pytest.mark.parametrize("stream_format", FORMATS)
def test_the_official_client_streams_every_match(target: str, stream_format: StreamFormat) -> None:
    records = official(target).audit.records
    streamed = [
        r.id for r in records.order_by("timestamp").stream(limit=200, stream_format=stream_format)
    ]
    paged = [r.id for r in records.order_by("timestamp").iterate(batch_size=100)][:200]
    assert streamed == paged
    assert len(set(streamed)) == 200


def test_jsonl_headers_and_lines(target: str) -> None:
    answer = httpx.get(f"{target}{RECORDS}?limit=3&order=id", headers=STREAM)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "application/jsonl; charset=utf-8"
    assert answer.headers["MPT-Streaming"] == "true"
    assert answer.headers["MPT-Item-Count"] == "3"
    assert "Content-Length" not in answer.headers  # made as it is sent
    found = lines(answer)
    paged = httpx.get(f"{target}{RECORDS}?limit=3&order=id", headers=AUTH).json()["data"]
    assert found == paged


def test_the_json_envelope(target: str) -> None:
    answer = httpx.get(
        f"{target}{RECORDS}?limit=4&select=-documents",
        headers={**STREAM, "Accept": "application/json"},
    )
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    body = answer.json()
    assert body["$meta"] == {
        "pagination": {"offset": 0, "limit": 4, "total": 4},
        "omitted": ["documents"],
    }
    assert len(body["data"]) == 4
    assert all("documents" not in record for record in body["data"])


def test_a_filter_and_the_count(target: str) -> None:
    everything = httpx.get(f"{target}{RECORDS}?limit=0", headers=AUTH).json()
    event = httpx.get(f"{target}{RECORDS}?limit=1", headers=AUTH).json()["data"][0]["event"]
    total = httpx.get(f"{target}{RECORDS}?limit=0&eq(event,'{event}')", headers=AUTH).json()
    matching = total["$meta"]["pagination"]["total"]
    assert 0 < matching < everything["$meta"]["pagination"]["total"]
    streamed = list(official(target).audit.records.filter(RQLQuery(event=event)).stream())
    assert len(streamed) == matching
    assert {r.event for r in streamed} == {event}


def test_event_types_stream_too(target: str) -> None:
    paged = httpx.get(f"{target}{EVENT_TYPES}?limit=0", headers=AUTH).json()
    streamed = list(official(target).audit.event_types.stream())
    assert len(streamed) == paged["$meta"]["pagination"]["total"] > 0


def test_a_limit_of_zero_streams_nothing(target: str) -> None:
    answer = httpx.get(f"{target}{RECORDS}?limit=0", headers=STREAM)
    assert (answer.status_code, answer.headers["MPT-Item-Count"], answer.text) == (200, "0", "")


# ---------------------------------------------------------------- refusals


def test_offset_is_a_400(target: str) -> None:
    answer = httpx.get(f"{target}{RECORDS}?limit=2&offset=1", headers=STREAM)
    assert answer.status_code == 400
    assert answer.json()["errors"] == {"offset": ["offset is not supported in streaming mode."]}
    with pytest.raises(MPTAPIError) as refused:
        list(official(target).audit.records.stream(limit=2, offset=1))
    assert refused.value.status == 400


def test_an_accept_it_cannot_serve_is_a_406(target: str) -> None:
    answer = httpx.get(f"{target}{RECORDS}", headers={**STREAM, "Accept": "text/csv"})
    assert answer.status_code == 406
    assert answer.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    assert "application/jsonl or application/json" in answer.json()["detail"]
    any_type = httpx.get(f"{target}{RECORDS}?limit=1", headers={**STREAM, "Accept": "*/*"})
    assert any_type.headers["Content-Type"] == "application/jsonl; charset=utf-8"


def test_the_official_client_sees_the_406(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = official(target)
    client.http_client.httpx_client.event_hooks["request"].append(
        lambda request: request.headers.__setitem__("Accept", "text/csv")
    )
    with pytest.raises(MPTStreamingNotAcceptableError):
        list(client.audit.records.stream(limit=1))


def test_more_than_the_export_cap_is_a_413(target: str) -> None:
    answer = httpx.get(f"{target}{RECORDS}", headers=STREAM)
    assert answer.status_code == 413
    assert answer.json()["detail"] == (
        f"The result has {SEED} items, more than the export cap of {CAP} "
        f"(maxExportKeys: {CAP}); narrow the filter or set a limit."
    )
    with pytest.raises(MPTStreamingOverCapError) as over:
        list(official(target).audit.records.stream())
    assert over.value.payload["status"] == 413
    assert len(list(official(target).audit.records.stream(limit=CAP))) == CAP


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("stream_format", FORMATS)
def test_a_stream_cut_after_k_records_is_truncated(
    target: str, control: Client, stream_format: StreamFormat
) -> None:
    control.add_fault(method="GET", path=RECORDS, stream={"cut_after": 7}, times=1)
    got: list[str] = []
    records = official(target).audit.records.stream(limit=50, stream_format=stream_format)

    def read_all() -> None:
        got.extend(record.id for record in records)

    with pytest.raises(MPTStreamingTruncatedError):
        read_all()
    assert len(got) <= 7
    assert len(list(official(target).audit.records.stream(limit=50))) == 50  # times: 1


def test_a_wrong_item_count_is_caught_by_the_client(target: str, control: Client) -> None:
    control.add_fault(method="GET", path=RECORDS, stream={"item_count": 12}, times=1)
    answer = httpx.get(f"{target}{RECORDS}?limit=10", headers=STREAM)
    assert answer.headers["MPT-Item-Count"] == "12"
    assert len(lines(answer)) == 10
    control.add_fault(method="GET", path=RECORDS, stream={"item_count": 12}, times=1)
    with pytest.raises(MPTStreamingIncompleteError):
        list(official(target).audit.records.stream(limit=10))


@pytest.mark.parametrize("stream_format", FORMATS)
def test_keepalive_whitespace_before_the_first_record(
    target: str, control: Client, stream_format: StreamFormat
) -> None:
    control.add_fault(method="GET", path=RECORDS, stream={"keepalive_ms": 700}, times=1)
    started = time.perf_counter()
    streamed = list(official(target).audit.records.stream(limit=5, stream_format=stream_format))
    assert len(streamed) == 5
    assert time.perf_counter() - started >= 0.65
    control.add_fault(method="GET", path=RECORDS, stream={"keepalive_ms": 500}, times=1)
    answer = httpx.get(f"{target}{RECORDS}?limit=2", headers=STREAM)
    assert answer.text.startswith("\n\n")  # a keep-alive line every 200 ms
    assert len(lines(answer)) == 2


def test_a_stream_rule_is_checked(control: Client) -> None:
    from mockserver import ControlError

    with pytest.raises(ControlError) as refused:
        control.add_fault(stream={"cut_after": -1})
    assert "stream.cut_after" in refused.value.errors
    with pytest.raises(ControlError) as empty:
        control.add_fault(stream={})
    assert "stream" in empty.value.errors


def test_a_503_before_the_stream_is_retried(target: str, control: Client) -> None:
    control.fail(503, method="GET", path=RECORDS, times=2, headers={"Retry-After": "0"})
    assert len(list(official(target).audit.records.stream(limit=3))) == 3
    assert len(control.requests(method="GET", path=RECORDS)) == 3


# ---------------------------------------------------------------- render()


TEMPLATED = {
    "event": "platform.commerce.order.created",
    "object": {"id": "ORD-1111-2222", "objectType": "Order"},
    "details": "Order {{order.id}} is {{ order.status }} ({{order.lines}} lines, "
    "{{order.total}}); {{order.owner}} {{missing.field}} {{order.nothing}}",
    "documents": {
        "order": {
            "id": "ORD-1111-2222",
            "status": "Active",
            "lines": 3,
            "total": None,
            "owner": {"id": "ACC-1"},
        }
    },
}
RENDERED = (
    'Order ORD-1111-2222 is Active (3 lines, null); {"id":"ACC-1"} {{missing.field}} '
    "{{order.nothing}}"
)


def test_render_fills_the_details_template(target: str, control: Client) -> None:
    created = httpx.post(f"{target}{RECORDS}", json=TEMPLATED, headers=AUTH).json()
    url = f"{target}{RECORDS}/{created['id']}"
    assert httpx.get(url, headers=AUTH).json()["details"] == TEMPLATED["details"]  # as stored
    assert httpx.get(f"{url}?render()", headers=AUTH).json()["details"] == RENDERED
    query = f"eq(id,'{created['id']}')&render()"
    [listed] = httpx.get(f"{target}{RECORDS}?{query}", headers=AUTH).json()["data"]
    assert listed["details"] == RENDERED
    [streamed] = lines(httpx.get(f"{target}{RECORDS}?{query}", headers=STREAM))
    assert streamed["details"] == RENDERED
    record = official(target).audit.records.options(render=True).get(created["id"])
    assert record.details == RENDERED
    assert httpx.get(url, headers=AUTH).json()["details"] == TEMPLATED["details"]  # unchanged


def test_omitted_lists_what_select_left_out(target: str) -> None:
    page = official(target).audit.records.select("-details", "-request.api").fetch_page(limit=2)
    assert page.meta.omitted == ["details", "request.api"]
    for record in page.to_list():
        assert "details" not in record
        assert "api" not in record.get("request", {})


# ---------------------------------------------------------------- 100 000 records


@pytest.fixture(scope="module")
def large() -> Iterator[Server]:
    running = Server(["--seed-records", "100000", "--faker-seed", "11"]).start(timeout=120)
    yield running
    assert running.stop() == 0


@pytest.mark.parametrize("stream_format", FORMATS)
def test_100000_records_stream_whole(large: Server, stream_format: StreamFormat) -> None:
    seen = set()
    for record in official(large.url).audit.records.stream(stream_format=stream_format):
        seen.add(record.id)
    assert len(seen) == 100_000
    assert any("streamed=100000" in line for line in large.log)


def test_100000_records_iterate_and_fetch_one(large: Server) -> None:
    records = official(large.url).audit.records
    assert sum(1 for _ in records.iterate(batch_size=100)) == 100_000
    first = httpx.get(f"{large.url}{RECORDS}?limit=1", headers=AUTH).json()["data"][0]
    assert records.filter(RQLQuery(id=first["id"])).fetch_one().id == first["id"]
