"""Measurements inside one fresh Python process (run.py starts one per measurement).

    python bench/inprocess.py validation VALID.json INVALID.json [--calls N] [--repeats R]
    python bench/inprocess.py memory VALID.json [--records N]
    python bench/inprocess.py eviction [--bound N] [--inserts N]

Each prints one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

ROOT = Path(__file__).resolve().parent.parent
RECORDS_PATH = "/public/v1/audit/records"
HEADERS = {"Authorization": "Bearer idt:TKN-1234-5678:secret"}


def _request(body: bytes) -> Request:
    builder = EnvironBuilder(
        method="POST",
        path=RECORDS_PATH,
        base_url="http://127.0.0.1:8080",
        data=body,
        content_type="application/json",
        headers=list(HEADERS.items()),
    )
    try:
        return builder.get_request()
    finally:
        builder.close()


def _per_call_us(
    body: bytes, call: Callable[[Request], object], calls: int, repeats: int
) -> dict[str, Any]:
    """Median over `repeats` of the mean µs per call; requests are built before the clock."""
    samples = []
    for _ in range(repeats):
        requests = [_request(body) for _ in range(calls)]
        gc.collect()
        started = time.perf_counter()
        for request in requests:
            call(request)
        samples.append((time.perf_counter() - started) / calls * 1e6)
    return {
        "median_us": statistics.median(samples),
        "min_us": min(samples),
        "samples_us": samples,
        "calls": calls,
        "repeats": repeats,
    }


def validation(valid: bytes, invalid: bytes, calls: int, repeats: int) -> dict[str, Any]:
    """µs per `state.validator.check(...)` (the mock's validation step) and per openapi-core
    `OpenAPI.validate_request` of the same request (finds the operation, checks security,
    parameters and body)."""
    from openapi_core import OpenAPI
    from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
    from openapi_core.exceptions import OpenAPIError

    from mockserver import Problem, Settings, create_app

    app = create_app(Settings())
    state = app.extensions["mockserver"]
    match = state.router.match("POST", RECORDS_PATH)

    def check(request: Request) -> object:
        return state.validator.check(request, match, {})

    def check_invalid(request: Request) -> object:
        try:
            state.validator.check(request, match, {})
        except Problem as problem:  # the 400 Problem the mock answers with
            return problem
        raise AssertionError("the invalid body passed validation")

    check(_request(valid))  # warm caches; also proves the valid body passes
    check_invalid(_request(invalid))

    plain = OpenAPI.from_file_path(str(ROOT / "openapi" / "audit.yaml"))

    def openapi_core(request: Request) -> object:
        plain.validate_request(WerkzeugOpenAPIRequest(request))
        return None

    def openapi_core_invalid(request: Request) -> object:
        try:
            plain.validate_request(WerkzeugOpenAPIRequest(request))
        except OpenAPIError as error:
            return error
        raise AssertionError("openapi-core accepted the invalid body")

    openapi_core(_request(valid))
    openapi_core_invalid(_request(invalid))
    results = {}
    for name, body, call in (
        ("mock_check_valid", valid, check),
        ("mock_check_invalid", invalid, check_invalid),
        ("openapi_core_validate_request_valid", valid, openapi_core),
        ("openapi_core_validate_request_invalid", invalid, openapi_core_invalid),
    ):
        print(f"validation: {name}", file=sys.stderr, flush=True)
        results[name] = _per_call_us(body, call, calls, repeats)
    return {"body_bytes": len(valid), **results}


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _deep_size(value: Any, seen: set[int] | None = None) -> int:
    """sys.getsizeof over the whole object graph (each object counted once)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, list | tuple | set):
        size += sum(_deep_size(v, seen) for v in value)
    return size


def memory(valid: bytes, records: int) -> dict[str, Any]:
    """RSS growth per record stored through the app's POST path (Flask test client)."""
    from mockserver import Settings, create_app

    app = create_app(Settings(max_records=records + 1000))
    client = app.test_client()
    headers = {**HEADERS, "Content-Type": "application/json"}
    warm = client.post(RECORDS_PATH, data=valid, headers=headers)
    if warm.status_code != 201:
        raise RuntimeError(f"POST answered {warm.status_code}: {warm.get_data(as_text=True)}")
    gc.collect()
    before = _rss()
    started = time.perf_counter()
    failed = 0
    last_id = ""
    step = max(records // 10, 1)
    for done in range(1, records + 1):
        answer = client.post(RECORDS_PATH, data=valid, headers=headers)
        if answer.status_code != 201:
            failed += 1
        elif done == records:
            last_id = answer.get_json()["id"]
        if done % step == 0:
            print(f"memory: {done}/{records} POSTs", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    gc.collect()
    after = _rss()
    stored = client.get(f"{RECORDS_PATH}/{last_id}", headers=HEADERS)
    record = stored.get_json()
    # the stored object itself: the bytes the memory backend keeps for the record
    collection = app.extensions["mockserver"].sessions.get("default").storage.open(RECORDS_PATH)
    item = collection.get(last_id)
    deep = _deep_size(item) if item is not None else None
    return {
        "records": records,
        "failed_posts": failed,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_record": (after - before) / records,
        "request_body_bytes": len(valid),
        "record_json_bytes": len(json.dumps(record, ensure_ascii=False, separators=(",", ":"))),
        "record_response_bytes": len(stored.get_data()),
        "deep_sizeof_one_record": deep,
        "post_seconds": elapsed,
        "post_us_per_call": elapsed / records * 1e6,
    }


def eviction(bound: int, inserts: int) -> dict[str, Any]:
    """µs per insert into the records store, per batch of `bound // 2`, before and at its bound
    (where every insert evicts the oldest record)."""
    from mockserver.app import create_app
    from mockserver.settings import Settings

    app = create_app(Settings(max_records=bound))
    store = app.extensions["mockserver"].sessions.get("default").storage.open(RECORDS_PATH)
    batch, batches = max(1, bound // 2), []
    started = time.perf_counter()
    for number in range(inserts):
        store.insert({"id": f"AUD-{number:016d}", "event": "platform.a.b.c", "object": {"id": "X"}})
        if (number + 1) % batch == 0:
            now = time.perf_counter()
            batches.append({"inserted": number + 1, "us_per_insert": (now - started) / batch * 1e6})
            print(f"eviction: {number + 1} inserted", file=sys.stderr)
            started = now
    return {"bound": bound, "batches": batches}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    v = commands.add_parser("validation")
    v.add_argument("valid", type=Path)
    v.add_argument("invalid", type=Path)
    v.add_argument("--calls", type=int, default=1000)
    v.add_argument("--repeats", type=int, default=7)
    m = commands.add_parser("memory")
    m.add_argument("valid", type=Path)
    m.add_argument("--records", type=int, default=100_000)
    e = commands.add_parser("eviction")
    e.add_argument("--bound", type=int, default=100_000)
    e.add_argument("--inserts", type=int, default=400_000)
    args = parser.parse_args()
    if args.command == "eviction":
        found = eviction(args.bound, args.inserts)
    elif args.command == "validation":
        found = validation(
            args.valid.read_bytes(), args.invalid.read_bytes(), args.calls, args.repeats
        )
    else:
        found = memory(args.valid.read_bytes(), args.records)
    print(json.dumps(found))


if __name__ == "__main__":
    main()
