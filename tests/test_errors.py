"""Every error is a problem document as the platform sends it; never a 500 or a stack trace."""

from __future__ import annotations

import json
import re

import pytest
from support import EVENT_TYPES, RECORDS, new_record

TRACE = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-00$")


def problem(answer, status):
    assert answer.status_code == status, answer.get_data(as_text=True)
    body = answer.json
    assert body["status"] == status
    assert TRACE.match(body["traceId"])
    assert body["type"].startswith("https://tools.ietf.org/html/rfc9110#section-15.")
    assert "Traceback" not in answer.get_data(as_text=True)
    return body


def post_raw(api, data, content_type="application/json"):
    return api.post(RECORDS, data=data, content_type=content_type)


def test_the_platforms_shape(api):
    body = problem(api.post(RECORDS, json={"object": {"id": "ORD-1"}}), 400)
    assert list(body) == ["type", "title", "status", "detail", "traceId", "errors"]
    assert body["type"] == "https://tools.ietf.org/html/rfc9110#section-15.5.1"
    assert body["title"] == "Bad Request"
    assert body["detail"] == "One or more validation errors occurred."
    assert body["errors"] == {"event": ["The event field is required."]}


def test_trace_id_continues_the_callers_traceparent(api):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    answer = api.get(
        f"{RECORDS}/AUD-0000-0000-0000-0000",
        headers={"Authorization": "Bearer t", "traceparent": parent},
    )
    trace = problem(answer, 404)["traceId"]
    assert trace.startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    assert not trace.endswith("00f067aa0ba902b7-00")  # the server's own span


@pytest.mark.parametrize(
    "parent", ["garbage", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", ""]
)
def test_an_unusable_traceparent_starts_a_new_trace(api, parent):
    headers = {"Authorization": "Bearer t", "traceparent": parent}
    trace = problem(api.get(f"{RECORDS}/AUD-1", headers=headers), 404)["traceId"]
    assert "0000000000000000" not in trace


def test_each_request_gets_its_own_trace(api):
    traces = {problem(api.get(f"{RECORDS}/AUD-1"), 404)["traceId"] for _ in range(5)}
    assert len(traces) == 5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{bad", "The body is not valid JSON: Expecting property name enclosed in double quotes"),
        (b'{"event": "a"', "The body is not valid JSON: Expecting ',' delimiter"),
        (b'{"event": NaN}', "The body is not valid JSON: NaN is not valid JSON."),
        (b"\xff\xfe{}", "The body is not valid UTF-8: byte 0xff at offset 0."),
        (b'{"event": "caf\xe9"}', "The body is not valid UTF-8: byte 0xe9 at offset 14."),
    ],
)
def test_undecodable_bodies(api, data, message):
    body = problem(post_raw(api, data), 400)
    assert body["errors"]["$"][0].startswith(message)


def test_empty_body_is_required(api):
    body = problem(post_raw(api, b""), 400)
    assert body["errors"] == {"$": ["A non-empty request body is required."]}


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_nesting_deeper_than_64_levels(api, depth):
    data = (
        '{"event":"platform.a.b.c","object":{"id":"X"},"documents":'
        + "[" * depth
        + "]" * depth
        + "}"
    ).encode()
    body = problem(post_raw(api, data), 400)
    assert body["errors"] == {"$": ["The JSON is nested deeper than the maximum of 64 levels."]}


def test_nesting_of_64_levels_is_accepted(api):
    inner: object = 1
    for _ in range(60):
        inner = [inner]
    assert api.post(RECORDS, json=new_record(documents={"deep": inner})).status_code == 201


def test_a_body_over_the_limit_is_413(make_app):
    api = make_app(max_body_bytes=1000).test_client()
    big = new_record(details="x" * 2000)
    body = problem(api.post(RECORDS, json=big), 413)
    assert body["title"] == "Payload Too Large"
    assert body["detail"] == "The request body is larger than the limit of 1000 bytes."
    assert api.post(RECORDS, json=new_record()).status_code == 201


def test_the_default_limit_is_one_mebibyte(api):
    assert api.post(RECORDS, json=new_record(details="x" * 1_000_000)).status_code == 201
    problem(api.post(RECORDS, json=new_record(details="x" * 1_048_576)), 413)


def test_unknown_path_is_a_404_problem(api):
    body = problem(api.get("/public/v1/audit/nothing-here"), 404)
    assert body["detail"] == "No resource at /public/v1/audit/nothing-here."
    problem(api.get("/"), 404)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", RECORDS, "GET, POST"),
        ("PUT", f"{RECORDS}/AUD-1", "GET"),
        ("PATCH", f"{EVENT_TYPES}/AET-1", "GET, PUT"),
        ("POST", EVENT_TYPES, "GET"),
        ("OPTIONS", RECORDS, "GET, POST"),
    ],
)
def test_wrong_method_is_a_405_problem_with_allow(api, method, path, allow):
    answer = api.open(path, method=method)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == allow
    assert problem(answer, 405)["title"] == "Method Not Allowed"


def test_an_unexpected_failure_is_a_500_problem_without_details(app, api, monkeypatch, caplog):
    def broken(self, call, op, store):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(type(app.extensions["mockserver"].resources), "_list", broken)
    answer = api.get(RECORDS)
    body = problem(answer, 500)
    assert body["title"] == "An error occurred while processing your request."
    assert "secret internals" not in answer.get_data(as_text=True)
    assert "secret internals" in caplog.text  # the log has it for the person running the mock


def test_problem_media_type_follows_the_spec(api):
    answer = api.get(f"{RECORDS}/AUD-1")
    assert answer.headers["Content-Type"] == "application/problem+json; charset=utf-8"
    json.loads(answer.get_data())


def test_the_streaming_header_is_trimmed_and_any_case(api):
    headers = {"Authorization": "Bearer t", "MPT-Streaming": "TRUE ", "Accept": "application/jsonl"}
    answer = api.get(RECORDS, headers=headers)
    assert answer.status_code == 200
    assert (answer.headers["MPT-Streaming"], answer.headers["MPT-Item-Count"]) == ("true", "0")
    assert (
        api.get(
            RECORDS, headers={"Authorization": "Bearer t", "MPT-Streaming": "false"}
        ).status_code
        == 200
    )


def test_a_method_flask_does_not_know_is_still_a_405_with_allow(api):
    answer = api.open(RECORDS, method="QUERY")
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "GET, POST"


def test_a_failure_around_the_lane_is_a_500_problem_too(app, api, monkeypatch, caplog):
    """Raised where the front works before the lane (the request's session, its rules): not a
    connection closed unanswered."""

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(type(app.extensions["mockserver"].sessions), "get", broken)
    body = problem(api.get(RECORDS), 500)
    assert body["detail"] == "The mock server failed unexpectedly; see its log."
    assert "boom" not in json.dumps(body)
    assert any(
        "unexpected error on GET /public/v1/audit/records" in r.message and r.exc_info
        for r in caplog.records
    )
