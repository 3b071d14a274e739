"""The response check's fast path (a compiled jsonschema-rs validator per operation, status
and media type) agrees with openapi-core on what conforms: every answer the mock gives, and
each of them broken one value at a time (a wrong type, a missing member, null, a bad format or
pattern, an unknown member, a number out of range)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from support import AUTH, EVENT_TYPES, RECORDS, new_record
from werkzeug.datastructures import Headers

from mockserver import Settings, create_app
from mockserver.contract.response_check import ResponseChecker
from mockserver.contract.spec import load_spec
from mockserver.settings import DEFAULT_SPEC


@pytest.fixture(scope="module")
def answers() -> list[tuple[str, str, int, str, Any]]:
    """(method, path, status, media type, body) of the mock's own answers."""
    app: Flask = create_app(Settings(seed_records=3, faker_seed=1))
    client = app.test_client()
    created = client.post(RECORDS, json=new_record(), headers=AUTH)
    found = [("POST", RECORDS, created)]
    record_id = created.get_json()["id"]
    for target in (
        f"{RECORDS}/{record_id}",
        f"{RECORDS}?limit=3",
        f"{EVENT_TYPES}?limit=2",
        f"{EVENT_TYPES}/AET-6491-7370",
        f"{RECORDS}/AUD-0000-0000-0000-0000",
    ):
        found.append(("GET", target.split("?")[0], client.get(target, headers=AUTH)))
    return [
        (method, path, answer.status_code, answer.content_type, answer.get_json())
        for method, path, answer in found
    ]


def broken(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """The value broken in one place at a time: (where, the broken whole)."""
    replacements: list[Any] = [None, 42, "x", [], {}, True, -1, "not-a-date"]
    if isinstance(value, dict):
        for key in value:
            without = {k: v for k, v in value.items() if k != key}
            yield (*path, key, "removed"), without
            for inner_path, inner in broken(value[key], (*path, key)):
                yield inner_path, {**value, key: inner}
        yield (*path, "added"), {**value, "unknownMember": 1}
    elif isinstance(value, list) and value:
        for inner_path, inner in broken(value[0], (*path, 0)):
            yield inner_path, [inner, *value[1:]]
    else:
        for replacement in replacements:
            if replacement != value:
                yield (*path, repr(replacement)), replacement


def test_the_fast_path_agrees_with_openapi_core(
    answers: list[tuple[str, str, int, str, Any]],
) -> None:
    spec = load_spec(DEFAULT_SPEC)
    fast = ResponseChecker(spec)
    slow = ResponseChecker(spec)
    slow._fast.conforms = lambda *args: False  # type: ignore[method-assign]
    compared = 0
    for method, path, status, media, body in answers:
        headers = Headers({"Content-Type": media})
        for where, value in [((), body), *broken(copy.deepcopy(body))]:
            raw = json.dumps(value).encode()
            expected = slow.check(method, path, status, headers, raw, keep=False)
            got = fast.check(method, path, status, headers, raw, keep=False)
            assert bool(got) == bool(expected), (method, path, status, where, expected, got)
            compared += 1
    assert compared > 500, compared
    assert all(made is not None for made in fast._fast._made.values())
