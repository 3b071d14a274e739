"""The Redis store's figures (issue 14, part 1), in one run on a redis-server of its own:

- seeding: 100 000 generated records inserted into a Redis backend, then the session made
  from them (a fork: COPY inside Redis); the same into memory, for the ratio. Generating the
  records (Faker) is timed apart: both stores get the same list.
- memory per record in Redis: `INFO used_memory` before and after the inserts, and the sum
  of `MEMORY USAGE` of the collection's keys, each divided by the records.
- `eq(object.id,X)&order=-timestamp&limit=100` over 100 000 records: p50 of the backend's
  search in-process, and wrk with 1 connection against a server on Redis.
- validated POST and GET by id, req/s: memory x 1 process vs Redis x 1 process, same run
  (wrk -t2 -c16, `bench/post.lua` and `bench/get.lua`, as `bench/run.py`), medians of rounds.

    .venv/bin/python bench/redis_store.py            # 3 rounds of 10 s per wrk run (~7 min)
    .venv/bin/python bench/redis_store.py --quick    # 1 round of 3 s, 20 000 records (~2 min)

Progress goes to stderr, the figures to stdout and to bench/results/redis-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import payload
import targets as tg
import wrk

from mockserver.query.expression import expression
from mockserver.query.rql import parse
from mockserver.resources.records import RecordBehaviour
from mockserver.resources.seeding import Seeder
from mockserver.storage import make_backend
from mockserver.storage.backend import Search, Shape
from mockserver.storage.encoding import Layout

RECORDS = "/public/v1/audit/records"
PREFIX = "bench"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def start_redis(processes: tg.Processes, directory: Path, unix: bool = False) -> str:
    """A redis-server of the bench's own, without persistence; its URL (`unix`: its Unix
    socket's, `unix:///...?db=0`, else loopback TCP)."""
    port = tg.free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory)]
    socket = directory / "redis.sock"
    if unix:
        command += ["--unixsocket", str(socket), "--unixsocketperm", "700"]
    with (directory / "redis.log").open("ab") as output:
        processes.spawn(command, output)
    url = f"unix://{socket}?db=0" if unix else f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    for _ in range(500):
        try:
            client.ping()
            return url
        except redis.exceptions.ConnectionError:
            time.sleep(0.02)
    raise RuntimeError("redis-server did not start")


def shape() -> Shape:
    """The records' shape as the server describes it (layout from the spec aside)."""
    return Shape(Layout(), RecordBehaviour.indexed, RecordBehaviour.ordered)


def seeding(url: str, count: int) -> dict[str, Any]:
    """Seconds to insert `count` records and make a session of them, memory and Redis; the
    memory Redis uses per record."""
    started = time.perf_counter()
    records = list(Seeder(1).records(count))
    generated = time.perf_counter() - started
    log(f"generated {count} records in {generated:.1f}s (Faker, not counted below)")
    found: dict[str, Any] = {"records": count, "generate_seconds": generated}
    client = redis.Redis.from_url(url)
    client.flushall()
    for store in ("memory", url):
        before = int(client.info("memory")["used_memory"])
        backend = make_backend(store, 10**9, None, PREFIX)
        backend.describe(RECORDS, shape())
        started = time.perf_counter()
        backend.open(RECORDS).insert_many(records)
        inserted = time.perf_counter() - started
        after = int(client.info("memory")["used_memory"])
        backend.fork("default")
        forked = time.perf_counter() - started - inserted
        kind = "memory" if store == "memory" else "redis"
        found[kind] = {"insert_seconds": inserted, "fork_seconds": forked}
        log(f"{kind}: inserted in {inserted:.2f}s, session made in {forked:.2f}s")
        if kind == "redis":
            keys = list(client.scan_iter(f"{PREFIX}:{{base.*}}:c:{RECORDS}:*"))
            usage = sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)
            found["redis"]["used_memory_per_record"] = (after - before) / count
            found["redis"]["memory_usage_per_record"] = usage / count
            found["redis"]["json_bytes_per_record"] = statistics.mean(
                len(json.dumps(r, separators=(",", ":"))) for r in records[:1000]
            )
            log(
                f"redis: {(after - before) / count:.0f} B/record (INFO used_memory), "
                f"{usage / count:.0f} B/record (MEMORY USAGE of the collection's keys)"
            )
    return found


def search_p50(url: str, count: int) -> dict[str, Any]:
    """p50 of the backend's eq(object.id) search, ordered by -timestamp, 100 a page."""
    backend = make_backend(url, 10**9, None, PREFIX)  # a fresh namespace, filled again
    backend.describe(RECORDS, shape())
    collection = backend.open(RECORDS)
    records = list(Seeder(2).records(count))
    collection.insert_many(records)
    objects = [r["object"]["id"] for r in records[:: max(1, count // 200)]]
    times, totals = [], []
    for object_id in objects:
        where = expression([parse(f"eq(object.id,'{object_id}')")], bool)
        started = time.perf_counter()
        found = collection.search(Search(where, (("timestamp", True),), 0, 100))
        times.append((time.perf_counter() - started) * 1000)
        totals.append(found.total)
    result = {
        "queries": len(times),
        "p50_ms": statistics.median(times),
        "p90_ms": statistics.quantiles(times, n=10)[-1],
        "matches_median": statistics.median(totals),
    }
    log(f"eq(object.id) search in-process: p50 {result['p50_ms']:.2f} ms over {count}")
    return result


def start_mock(processes: tg.Processes, logs: Path, name: str, store: str, count: int) -> tg.Target:
    port = tg.free_port()
    command = [str(tg.MOCKSERVER_BIN), "--port", str(port), "--log-level", "warning"]
    command += ["--seed-records", str(count), "--faker-seed", "1", "--store", store]
    command += ["--store-prefix", f"{PREFIX}-{name}"]
    log_path = logs / f"{name}-{port}.log"
    with log_path.open("ab") as output:
        started = time.perf_counter()
        process = processes.spawn(command, output)
    base = f"http://127.0.0.1:{port}"
    tg.wait_until(f"{base}/_mock/health", process, 600)
    return tg.Target(name, base, process, time.perf_counter() - started, log_path)


def load(
    wrk_bin: str, args: argparse.Namespace, mocks: list[tg.Target], bodies: Path
) -> dict[str, Any]:
    """wrk rounds: GET by id, the eq list (1 connection), validated POST; per target."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for round_ in range(1, args.rounds + 1):
        for mock in mocks:
            listed = f"{mock.base}/public/v1/audit/records?limit=1&offset=7"
            record = json.loads(tg.http("GET", listed, headers=tg.AUTH)[1])["data"][0]
            eq = f"?eq(object.id,'{record['object']['id']}')&order=-timestamp&limit=100"
            plans = [
                ("get-by-id", f"/public/v1/audit/records/{record['id']}", "get.lua", 16, 2),
                ("list-eq-1c", f"/public/v1/audit/records{eq}", "get.lua", 1, 1),
                ("post-valid", "/public/v1/audit/records", "post.lua", 16, 2),
            ]
            for key, path, script, connections, threads in plans:
                run = wrk.Load(
                    url=mock.base + path,
                    script=script,
                    body_file=bodies / "valid.json" if script == "post.lua" else None,
                    connections=connections,
                    threads=threads,
                    duration=args.duration,
                )
                wrk.run(wrk_bin, replace(run, duration=1))  # warm up
                result = wrk.run(wrk_bin, run)
                runs.setdefault(key, {}).setdefault(mock.name, []).append(result.as_dict())
                log(
                    f"round {round_} {key:<11} {mock.name:<7} {result.rps:9.1f} req/s  "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                    f"non-2xx {result.non_2xx}"
                )
    medians: dict[str, Any] = {}
    for key, by_target in runs.items():
        medians[key] = {
            name: {
                "rps": statistics.median(r["rps"] for r in results),
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "non_2xx": sum(r["non_2xx"] for r in results),
            }
            for name, results in by_target.items()
        }
        found = medians[key]
        if "memory" in found and "redis" in found:
            found["redis_over_memory"] = found["redis"]["rps"] / found["memory"]["rps"]
    return {"runs": runs, "medians": medians}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, 20 000 records")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.records = 1, 3.0, 20_000
    wrk_bin = tg.ensure_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="redis-bench-"))
    processes = tg.Processes()
    results: dict[str, Any] = {"args": vars(args), "loadavg_start": os.getloadavg()}
    try:
        url = start_redis(processes, work)
        results["redis_version"] = redis.Redis.from_url(url).info()["redis_version"]
        results["seeding"] = seeding(url, args.records)
        results["search"] = search_p50(url, args.records)
        redis.Redis.from_url(url).flushall()
        payload.write_bodies(work)
        mocks = [
            start_mock(processes, work, "memory", "memory", args.records),
            start_mock(processes, work, "redis", url, args.records),
        ]
        results["server_ready_seconds"] = {m.name: m.ready_seconds for m in mocks}
        log(", ".join(f"{m.name} server ready in {m.ready_seconds:.1f}s" for m in mocks))
        results["load"] = load(wrk_bin, args, mocks, work)
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()
    out = tg.BENCH / "results" / f"redis-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: results[k] for k in ("seeding", "search")}, indent=2))
    print(json.dumps(results["load"]["medians"], indent=2))
    print(f"load average {results['loadavg_start']} -> {results['loadavg_end']}; {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
