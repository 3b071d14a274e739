"""Hostile requests and what the server answers to each: the table of tests/test_hostile.py,
which asserts the answers, and of bench/hostile.py, which times them.

A row is sent with `requests` unless it needs bytes `requests` will not send (a lying
Content-Length, a raw `../`, a bare CR or NUL in the request line, a 64 KiB header): those
go on a socket, read back with `http.client`. `status=None` means the server closes the
connection without an answer (uWSGI does, for requests over its 64 KiB buffer and for
request lines it cannot parse); it must do so within the row's timeout.

The server for the table: `SERVER_ARGS` (2 000 seeded records, for the RQL rows to scan).
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from support import AUTH, EVENT_TYPES, RECORDS

from mockserver.sessions.session import NAME_RULE

SERVER_ARGS = ["--seed-records", "2000", "--faker-seed", "7"]
TIMEOUT = 5.0  # seconds: a hang fails a row instead of blocking the run
JSON = {**AUTH, "Content-Type": "application/json"}
FAULTS = "/_mock/faults?session=hostile"  # rules a row would add by mistake stay out of the way
VALID = b'{"event":"platform.commerce.order.created","object":{"id":"ORD-1111-2222-3333"}}'
DEEPER = "The JSON is nested deeper than the maximum of 64 levels."
BAD_LENGTH = "The request body is larger than the limit of 1048576 bytes."
BEARER = "The Authorization header must be 'Bearer <token>'."
MEDIA = "is not supported; send one of: application/json, text/json, application/*+json."
AND_6000 = "and(" * 6000 + "eq(event,a)" + ")" * 6000
AND_10000 = "and(" * 10_000 + "eq(event,a)" + ")" * 10_000
LONG_EQ = f"eq(details,'{'a' * 40_000}')"
IN_100000 = "in(event,(" + ",".join(["a"] * 100_000) + "))"
LONG_CONTROL = "/_mock/records?limit=1&x=" + "a" * 40_000
OR_101 = "or(" + ",".join(["eq(event,a)"] * 101) + ")"


@dataclass(frozen=True)
class Case:
    """One hostile request and the answer it must get."""

    name: str
    status: int | None  # None: the connection is closed (or reset) without an answer
    method: str = "GET"
    target: str = RECORDS  # path and query string, sent as written
    headers: dict[str, str] = field(default_factory=lambda: dict(AUTH))
    body: bytes | None = None
    raw: bytes | None = None  # the whole request, written on a socket as it is
    half_close: bool = False  # raw: shut the socket's sending side once the request is out
    timeout: float = TIMEOUT
    errors: dict[str, list[str]] | None = None  # the problem's `errors`, exactly
    detail: str | None = None  # the problem's `detail`, exactly
    title: str | None = None
    answer_headers: dict[str, str | None] = field(default_factory=dict)  # None: must be absent
    json: dict[str, Any] | None = None  # not a problem: a JSON answer holding these members
    note: str = ""  # why the answer is what it is, where that is a choice


@dataclass
class Outcome:
    """What came back: an answer, or how the connection ended without one."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    seconds: float
    ended: str = ""  # no answer: "closed", "reset" or "timeout"


def unreadable(reason: str) -> str:
    """The 400 detail for a request llhttp cannot read (`serving.front`)."""
    return f"The request cannot be read as HTTP/1.1: {reason}."


def too_long(target: str) -> str:
    """The 414 detail for a request to `target` (path and query string)."""
    return (
        f"The request is too large for the server to read whole (a URL of {len(target)} "
        "bytes): keep the URL under about 32 KiB."
    )


def body_post(name: str, body: bytes, status: int = 400, **expected: Any) -> Case:
    return Case(name, status, "POST", RECORDS, dict(JSON), body, **expected)


def invalid_body(name: str, body: bytes, message: str) -> Case:
    return body_post(name, body, errors={"$": [message]})


def not_json(name: str, body: bytes, message: str) -> Case:
    return invalid_body(name, body, f"The body is not valid JSON: {message}.")


def query(name: str, text: str, status: int = 400, **expected: Any) -> Case:
    return Case(name, status, target=f"{RECORDS}?{text}", **expected)


def raw_post(name: str, head: str, body: bytes, status: int | None, **expected: Any) -> Case:
    request = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: hostile\r\nAuthorization: {AUTH['Authorization']}\r\n"
        f"Content-Type: application/json\r\n{head}\r\n"
    ).encode() + body
    return Case(name, status, "POST", raw=request, **expected)


def raw_get(name: str, target: bytes, status: int | None, **expected: Any) -> Case:
    request = (
        b"GET " + target + b" HTTP/1.1\r\nHost: hostile\r\n"
        b"Authorization: " + AUTH["Authorization"].encode() + b"\r\nConnection: close\r\n\r\n"
    )
    return Case(name, status, raw=request, **expected)


def fault_rule(name: str, body: Any, errors: dict[str, list[str]]) -> Case:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Case(
        name, 400, "POST", FAULTS, {"Content-Type": "application/json"}, data, errors=errors
    )


def not_allowed(method: str, target: str, allow: str) -> Case:
    where = target.split("?")[0]
    return Case(
        f"{method.lower()}-{where.rsplit('/', 1)[-1]}",
        405,
        method,
        target,
        dict(JSON),
        b"{}",
        detail=f"The method {method} is not allowed on {where}; allowed: {allow}.",
        answer_headers={"Allow": allow},
    )


CASES: list[Case] = [
    # ------------------------------------------------------------ bodies that are not JSON
    not_json(
        "json-malformed",
        b"{bad",
        "Expecting property name enclosed in double quotes at line 1, column 2",
    ),
    not_json(
        "json-truncated",
        VALID[:-20],
        "Unterminated string starting at line 1, column 59",
    ),
    not_json(
        "json-raw-nul-in-string",
        b'{"event":"platform.a.b.c","object":{"id":"ORD-\x00"}}',
        "Invalid control character at line 1, column 47",
    ),
    not_json(
        "number-1e400",
        VALID[:-1] + b',"documents":{"n":1e400}}',
        "the number 1e400 is out of range (beyond a double)",
    ),
    not_json(
        "number-5000-digits",
        VALID[:-1] + b',"documents":{"n":' + b"7" * 5000 + b"}}",
        "a number has 5000 digits, more than the 4300 allowed",
    ),
    not_json(
        "string-lone-surrogate",
        b'{"event":"platform.a.b.c","object":{"id":"\\ud800"}}',
        "\\ud800 is a lone UTF-16 surrogate, not a character",
    ),
    invalid_body(
        "utf8-invalid-byte",
        b'{"event":"platform.a.b.\xff","object":{"id":"X"}}',
        "The body is not valid UTF-8: byte 0xff at offset 23.",
    ),
    invalid_body("nesting-10000-arrays", b"[" * 10_000 + b"]" * 10_000, DEEPER),
    invalid_body("nesting-10000-objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, DEEPER),
    invalid_body("body-empty", b"", "A non-empty request body is required."),
    invalid_body("body-array", b"[]", "The value must be an object, not an array."),
    invalid_body("body-string", b'"x"', "The value must be an object, not a string."),
    invalid_body("body-null", b"null", "The value must be an object, not null."),
    body_post(
        "body-10MB",
        b'{"details":"' + b"x" * 10_000_000 + b'"}',
        413,
        title="Payload Too Large",
        detail=BAD_LENGTH,
    ),
    # ------------------------------------------------------------ JSON of the wrong shape
    body_post(
        "type-event-integer",
        b'{"event":42,"object":{"id":"X"}}',
        errors={"event": ["The value must be a string, not an integer."]},
    ),
    body_post(
        "type-object-string",
        b'{"event":"platform.a.b.c","object":"ORD-1"}',
        errors={"object": ["The value must be an object, not a string."]},
    ),
    body_post(
        "type-object-id-number",
        b'{"event":"platform.a.b.c","object":{"id":5}}',
        errors={"object.id": ["The value must be a string, not an integer."]},
    ),
    body_post(
        "number-10e400-as-event",
        b'{"event":1' + b"0" * 400 + b',"object":{"id":"X"}}',
        errors={"event": ["The value must be a string, not an integer."]},
    ),
    # ------------------------------------------------------------ accepted on purpose
    body_post(
        "number-10e400-kept",
        VALID[:-1] + b',"documents":{"n":1' + b"0" * 400 + b"}}",
        201,
        json={"documents": {"n": 10**400}},
        note="free-form documents keep any integer of up to 4300 digits exactly",
    ),
    body_post(
        "nul-escaped-kept",
        b'{"event":"platform.a.b.c","object":{"id":"ORD-\\u0000"},"details":"a\\u0000b"}',
        201,
        json={"object": {"id": "ORD-\x00"}, "details": "a\x00b"},
        note="an escaped NUL is a valid JSON string character (System.Text.Json agrees)",
    ),
    body_post(
        "json-duplicate-keys-last-wins",
        b'{"event":"platform.a.b.c","object":{"id":"X"},"event":"platform.x.y.z"}',
        201,
        json={"event": "platform.x.y.z"},
        note="the last duplicate wins, as System.Text.Json binds a body (no error)",
    ),
    body_post(
        "json-duplicate-keys-first-invalid",
        b'{"event":42,"object":{"id":"X"},"event":"platform.x.y.z"}',
        201,
        json={"event": "platform.x.y.z"},
        note="the first value is never seen, so it is never validated",
    ),
    # ------------------------------------------------------------ media types
    Case(
        "media-text-plain",
        415,
        "POST",
        headers={**AUTH, "Content-Type": "text/plain"},
        body=VALID,
        detail=f"The media type 'text/plain' {MEDIA}",
    ),
    Case(
        "media-application-xml",
        415,
        "POST",
        headers={**AUTH, "Content-Type": "application/xml"},
        body=b"<record/>",
        detail=f"The media type 'application/xml' {MEDIA}",
    ),
    Case("media-none", 415, "POST", body=VALID, detail=f"The media type '(none)' {MEDIA}"),
    Case(
        "media-charset-latin1",
        415,
        "POST",
        headers={**AUTH, "Content-Type": "application/json; charset=latin1"},
        body=VALID,
        detail="The charset 'latin1' is not supported; send UTF-8.",
    ),
    Case(
        "accept-xml-streaming",
        406,
        headers={**AUTH, "Accept": "application/xml", "MPT-Streaming": "true"},
        detail=(
            "Streaming answers in application/jsonl or application/json; "
            "the request accepts only: application/xml."
        ),
    ),
    Case(
        "accept-xml-page",
        200,
        headers={**AUTH, "Accept": "application/xml"},
        answer_headers={"Content-Type": "application/json; charset=utf-8"},
        json={},
        note="JSON anyway: ASP.NET Core's default (MvcOptions.ReturnHttpNotAcceptable off)",
    ),
    # ------------------------------------------------------------ framing (raw sockets)
    raw_post(
        "length-lying-connection-open",
        "Content-Length: 1000\r\n",
        VALID,
        400,
        timeout=10.0,
        errors={"Content-Length": ["The body ended before its Content-Length (1000 bytes)."]},
        note="answered once uWSGI gives up waiting for the rest (its 4 s socket timeout)",
    ),
    raw_post(
        "length-lying-half-closed",
        "Content-Length: 1000\r\n",
        VALID,
        400,
        half_close=True,
        errors={"Content-Length": ["The body ended before its Content-Length (1000 bytes)."]},
    ),
    raw_post(
        "length-not-a-number",
        "Content-Length: abc\r\nConnection: close\r\n",
        VALID,
        400,
        errors={"Content-Length": ["The value 'abc' is not a valid length."]},
    ),
    raw_post(
        "length-twice",
        f"Content-Length: {len(VALID)}\r\nContent-Length: 5\r\nConnection: close\r\n",
        VALID,
        400,
        errors={"Content-Length": [f"The value '{len(VALID)}, 5' is not a valid length."]},
    ),
    raw_post(
        "length-beyond-limit",
        "Content-Length: 99999999999999999999\r\nConnection: close\r\n",
        VALID,
        413,
        detail=BAD_LENGTH,
    ),
    raw_post(
        "body-chunked",
        "Transfer-Encoding: chunked\r\nConnection: close\r\n",
        b"%x\r\n%s\r\n" % (len(VALID[:40]), VALID[:40])
        + b"%x\r\n%s\r\n0\r\n\r\n" % (len(VALID[40:]), VALID[40:]),
        201,
        json={"event": "platform.commerce.order.created"},
        note="de-chunked whole before it is validated",
    ),
    raw_post(
        "body-chunked-over-limit",
        "Transfer-Encoding: chunked\r\nConnection: close\r\n",
        b"".join(b"%x\r\n%s\r\n" % (2**16, b" " * 2**16) for _ in range(17)) + b"0\r\n\r\n",
        413,
        detail="The request body is larger than the limit of 1048576 bytes.",
    ),
    Case(
        "request-line-garbage",
        400,
        raw=b"HELLO\x00\xff\r\n\r\n",
        half_close=True,
        detail=unreadable("Invalid method encountered"),
    ),
    Case(
        "request-line-lf-only",
        400,
        raw=b"GET /_mock/health HTTP/1.1\nHost: x\n\n",
        half_close=True,
        detail=unreadable("Expected CRLF after version"),
        note="a bare LF ends header lines (RFC 9112 2.2 allows it), not the request line",
    ),
    Case(
        "header-64KB",
        431,
        raw=b"GET /_mock/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65_536 + b"\r\n\r\n",
        detail="The request's header fields take 65554 bytes, more than the limit of 32768 bytes "
        "(32 KiB).",
    ),
    # ------------------------------------------------------------ record ids
    Case(
        "id-crlf-encoded",
        404,
        target=f"{RECORDS}/AUD-1%0D%0AX-Injected:%201",
        detail="Audit record AUD-1\r\nX-Injected: 1 not found.",
        answer_headers={"X-Injected": None},
    ),
    raw_get(
        "id-cr-raw",
        RECORDS.encode() + b"/AUD-1\rX",
        400,
        detail=unreadable("Expected CRLF"),
        note="a bare CR in the request line is not HTTP/1.1 (RFC 9112 2.2): never a header split",
    ),
    raw_get(
        "id-dotdot-raw",
        RECORDS.encode() + b"/../../../_mock/health",
        404,
        detail="No resource at /public/_mock/health.",
        note="dot segments are resolved before routing: no way out of the API's paths",
    ),
    Case(
        "id-dotdot-encoded",
        404,
        target=f"{RECORDS}/%2e%2e%2f%2e%2e%2f_mock%2fhealth",
        detail=f"No resource at {RECORDS}/../../_mock/health.",
    ),
    Case(
        "id-nul-encoded",
        404,
        target=f"{RECORDS}/AUD-%00",
        detail="Audit record AUD-\x00 not found.",
    ),
    raw_get(
        "id-nul-raw",
        RECORDS.encode() + b"/AUD-\x00",
        400,
        detail=unreadable("Invalid char in url path"),
    ),
    Case(
        "id-5000-chars",
        404,
        target=f"{RECORDS}/{'A' * 5000}",
        detail=f"Audit record {'A' * 5000} not found.",
    ),
    Case(
        "id-nul-event-type-put",
        404,
        "PUT",
        f"{EVENT_TYPES}/%00",
        dict(JSON),
        b'{"name":"x"}',
        detail="Audit event type \x00 not found.",
    ),
    # ------------------------------------------------------------ query strings and RQL
    query(
        "query-64KB",
        "a" * 65_536,
        414,
        detail=too_long(f"{RECORDS}?{'a' * 65_536}"),
        note="past 64 KiB too (uWSGI's buffer, which reset it before `serving.front`)",
    ),
    query(
        "query-40KB",
        LONG_EQ,
        414,
        title="Request-URI Too Long",
        detail=too_long(f"{RECORDS}?{LONG_EQ}"),
        note="uWSGI drops a query string it cannot fit: 414, not an unfiltered answer",
    ),
    query("rql-and-10000-deep", AND_10000, 414, detail=too_long(f"{RECORDS}?{AND_10000}")),
    query(
        "rql-and-6000-deep",
        AND_6000,
        errors={AND_6000: ["Expressions are nested deeper than 32 levels."]},
    ),
    query(
        "rql-in-100000-items",
        IN_100000,
        414,
        detail=too_long(f"{RECORDS}?{IN_100000}"),
        note="200 KB: read whole, answered 414",
    ),
    query(
        "rql-in-15000-items-unindexed",
        "in(timestamp,(" + ",".join(["a"] * 15_000) + "))",
        200,
        json={"$meta": {"pagination": {"offset": 0, "limit": 10, "total": 0}}, "data": []},
    ),
    query("rql-out-15000-items", "out(event,(" + ",".join(["a"] * 15_000) + "))", 200, json={}),
    query(
        "rql-or-101",
        OR_101,
        errors={OR_101: ["The filter has more than 100 expressions."]},
    ),
    query(
        "rql-101-parts",
        "&".join(["ne(event,a)"] * 101),
        errors={"ne(event,a)": ["The filter has more than 100 expressions."]},
    ),
    query("rql-ilike-catastrophic", "ilike(details,'*a*a*a*a*a*a*a*a*a*a*a*a*b')", 200, json={}),
    query("rql-like-3000-stars", "like(details,'" + "*a" * 3000 + "*b')", 200, json={}),
    query(
        "rql-unterminated",
        "eq(event",
        errors={"eq(event": ["Missing ')' at the end of 'eq(event'."]},
    ),
    query("rql-unknown-field", "eq(nope,1)", errors={"nope": ["Unknown expression group."]}),
    query(
        "order-2500-same-field",
        "order=" + ",".join(["-timestamp"] * 2500),
        200,
        json={"$meta": {"pagination": {"offset": 0, "limit": 10}}},
        note="a field given again orders nothing: it is left out",
    ),
    query(
        "order-11-fields",
        "order=" + ",".join(f"documents.a{i}" for i in range(11)),
        errors={"order": ["At most 10 fields can order a list."]},
    ),
    query(
        "select-3000-same-field",
        "select=" + ",".join(["-actor"] * 3000),
        200,
        json={"$meta": {"omitted": ["actor"]}},
    ),
    # ------------------------------------------------------------ paging
    query("limit-negative", "limit=-1", errors={"limit": ["The value must be 0 or more."]}),
    query(
        "limit-not-a-number",
        "limit=abc",
        errors={"limit": ["The value 'abc' is not valid for limit."]},
    ),
    query(
        "limit-huge",
        "limit=99999999999999999999",
        errors={"limit": ["The value '99999999999999999999' is not a valid int32."]},
    ),
    query("limit-1e3", "limit=1e3", errors={"limit": ["The value '1e3' is not valid for limit."]}),
    query("limit-1_0", "limit=1_0", errors={"limit": ["The value '1_0' is not valid for limit."]}),
    query(
        "limit-arabic-digit",
        "limit=%D9%A1",
        errors={"limit": ["The value '\u0661' is not valid for limit."]},
    ),
    query("offset-negative", "offset=-5", errors={"offset": ["The value must be 0 or more."]}),
    query(
        "offset-fraction",
        "offset=1.5",
        errors={"offset": ["The value '1.5' is not valid for offset."]},
    ),
    Case(
        "limit-streaming-not-a-number",
        400,
        target=f"{RECORDS}?limit=abc",
        headers={**AUTH, "MPT-Streaming": "true"},
        errors={"limit": ["The value 'abc' is not valid for limit."]},
    ),
    # ------------------------------------------------------------ methods
    not_allowed("PUT", RECORDS, "GET, POST"),
    not_allowed("PATCH", RECORDS, "GET, POST"),
    not_allowed("DELETE", RECORDS, "GET, POST"),
    not_allowed("PROPFIND", RECORDS, "GET, POST"),
    not_allowed("DELETE", EVENT_TYPES, "GET"),
    not_allowed("PUT", FAULTS, "DELETE, GET, POST"),
    # ------------------------------------------------------------ auth and sessions
    Case(
        "auth-missing",
        401,
        headers={},
        detail="An 'Authorization: Bearer <token>' header is required.",
        answer_headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    ),
    Case("auth-basic", 401, headers={"Authorization": "Basic dXNlcjpwYXNz"}, detail=BEARER),
    Case("auth-bearer-empty", 401, headers={"Authorization": "Bearer "}, detail=BEARER),
    Case(
        "session-name-traversal",
        400,
        headers={**AUTH, "X-Mock-Session": "../default"},
        errors={"X-Mock-Session": [NAME_RULE]},
    ),
    # ------------------------------------------------------------ the control API
    fault_rule(
        "fault-json-malformed",
        b'{"status":',
        {"$": ["The body is not valid JSON: Expecting value at line 1, column 11."]},
    ),
    fault_rule(
        "fault-times-string",
        {"status": 500, "times": "x"},
        {"times": ["The value must be an integer, not a string."]},
    ),
    fault_rule(
        "fault-no-action",
        {"path": RECORDS},
        {"$": ["One of the fields status, fault, delay_ms, stream is required."]},
    ),
    fault_rule(
        "fault-unknown-fault",
        {"fault": "explode"},
        {
            "fault": [
                "The value must be one of: connection_reset, empty_response, "
                "malformed_response, timeout."
            ]
        },
    ),
    fault_rule(
        "fault-delay-10e400",
        b'{"delay_ms":1' + b"0" * 400 + b"}",
        {"delay_ms": ["The value must be 600000 or less."]},
    ),
    fault_rule(
        "fault-second-rule-bad",
        [{"status": 503}, {"status": 99}],
        {"[1].status": ["The value must be 200 or more."]},
    ),
    fault_rule("fault-nesting-10000", b"[" * 10_000 + b"]" * 10_000, {"$": [DEEPER]}),
    Case(
        "fault-unknown-id",
        404,
        "DELETE",
        "/_mock/faults/RULE-nope?session=hostile",
        {},
        detail="No fault rule RULE-nope in session hostile.",
    ),
    Case(
        "fault-id-nul",
        404,
        "DELETE",
        "/_mock/faults/%00?session=hostile",
        {},
        detail="No fault rule \x00 in session hostile.",
    ),
    Case(
        "control-query-40KB",
        414,
        target=LONG_CONTROL,
        headers={},
        detail=too_long(LONG_CONTROL),
    ),
]


def send(case: Case, host: str, port: int) -> Outcome:
    """Send one row's request on a new connection; never waits longer than its timeout."""
    started = time.perf_counter()
    if case.raw is None:
        try:
            answer = requests.request(
                case.method,
                f"http://{host}:{port}{case.target}",
                headers=case.headers,
                data=case.body,
                timeout=case.timeout,
            )
        except requests.Timeout:
            return Outcome(None, {}, b"", time.perf_counter() - started, "timeout")
        except requests.ConnectionError as exc:
            ended = "reset" if "reset" in str(exc).lower() else "closed"
            return Outcome(None, {}, b"", time.perf_counter() - started, ended)
        return Outcome(
            answer.status_code, dict(answer.headers), answer.content, time.perf_counter() - started
        )
    return _send_raw(case, host, port, started)


def _send_raw(case: Case, host: str, port: int, started: float) -> Outcome:
    with socket.create_connection((host, port), timeout=case.timeout) as sock:
        try:
            sock.sendall(case.raw or b"")
            if case.half_close:
                sock.shutdown(socket.SHUT_WR)
            answer = http.client.HTTPResponse(sock, method=case.method)
            answer.begin()
            body = answer.read()
        except TimeoutError:
            return Outcome(None, {}, b"", time.perf_counter() - started, "timeout")
        except (ConnectionResetError, BrokenPipeError):
            return Outcome(None, {}, b"", time.perf_counter() - started, "reset")
        except http.client.RemoteDisconnected:
            return Outcome(None, {}, b"", time.perf_counter() - started, "closed")
        return Outcome(answer.status, dict(answer.headers), body, time.perf_counter() - started)
