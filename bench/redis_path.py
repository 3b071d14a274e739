"""The Redis store's request path and bulk insert, in one process, on a redis-server of its own:

- `requests`: GET by id and validated POST through the app's WSGI callable (no HTTP), N of
  each, on the memory store and on Redis: CPU and wall µs per request, the commands Redis ran
  per request (`INFO commandstats`) and the round trips of the request path
  (`storage.redis_connection`'s reads of answers).
- `seeding`: N generated records inserted (`insert_many`), the batches made by the server
  (`built`, the path in use) against the script's own bulk path (`lua`, the one before),
  back to back: seconds, Redis's own seconds (commandstats) and bytes per record.

    .venv/bin/python bench/redis_path.py requests [--requests 2000]
    .venv/bin/python bench/redis_path.py seeding [--records 100000] [--rounds 2]

Progress goes to stderr, the figures to stdout (JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from werkzeug.test import EnvironBuilder

sys.path.insert(0, str(Path(__file__).resolve().parent))

import payload
import targets as tg
from redis_store import RECORDS, log, shape, start_redis

from mockserver.app import create_app
from mockserver.resources.seeding import Seeder
from mockserver.settings import Settings
from mockserver.storage import make_backend, redis_connection
from mockserver.storage.redis import RedisCollection

AUTH = [("Authorization", "Bearer idt:TKN-1234-5678:secret")]


def _environ(method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
    builder = EnvironBuilder(
        method=method,
        path=path,
        base_url="http://127.0.0.1:8080",
        data=body,
        content_type="application/json" if body else None,
        headers=AUTH,
    )
    try:
        return dict(builder.get_environ())
    finally:
        builder.close()


def _commands(client: Any) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(found["calls"]) for name, found in stats.items()}


def requests(url: str, count: int, valid: bytes) -> dict[str, Any]:
    trips = [0]
    answers = getattr(redis_connection, "_answers", None)  # None: a version before it

    def counted(connection: Any, packed: bytes, size: int) -> list[Any]:
        trips[0] += 1
        assert answers is not None
        return answers(connection, packed, size)

    if answers is not None:
        redis_connection._answers = counted
    client = redis.Redis.from_url(url)
    found: dict[str, Any] = {}
    for store in ("memory", "redis"):
        settings = Settings(seed_records=200, faker_seed=1)
        if store == "redis":
            settings = Settings(seed_records=200, faker_seed=1, store=url, store_prefix="path")
        wsgi = create_app(settings).wsgi_app

        def call(environ: dict[str, Any], app: Callable[..., Any] = wsgi) -> tuple[str, bytes]:
            said: list[str] = []
            body = b"".join(app(environ, lambda status, headers, *_: said.append(status)))
            return said[0], body

        listed = call(_environ("GET", f"{RECORDS}?limit=1&offset=7"))[1]
        record = json.loads(listed)["data"][0]["id"]
        plans: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("get-by-id", lambda r=record: _environ("GET", f"{RECORDS}/{r}")),
            ("post-valid", lambda: _environ("POST", RECORDS, valid)),
        ]
        for name, make in plans:
            for environ in [make() for _ in range(50)]:  # warm up
                call(environ)
            environs = [make() for _ in range(count)]
            before, trips[0] = _commands(client), 0
            cpu, wall = time.process_time(), time.perf_counter()
            statuses = {call(environ)[0] for environ in environs}
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            after = _commands(client)
            sent = {k: (n - before.get(k, 0)) / count for k, n in after.items()}
            result = {
                "statuses": sorted(statuses),
                "cpu_us": cpu / count * 1e6,
                "wall_us": wall / count * 1e6,
                "round_trips": trips[0] / count if answers else None,
                "commands": {k: round(v, 2) for k, v in sorted(sent.items()) if v >= 0.01},
            }
            found.setdefault(name, {})[store] = result
            log(
                f"{name:<10} {store:<6} cpu {result['cpu_us']:6.0f} us  wall "
                f"{result['wall_us']:6.0f} us  round trips {result['round_trips']}"
            )
    client.flushall()
    return found


def seeding(url: str, count: int, rounds: int) -> dict[str, Any]:
    records = list(Seeder(1).records(count))
    client = redis.Redis.from_url(url)
    built = RedisCollection._built
    lua: Callable[..., Any] = lambda self, pairs: None  # noqa: E731 (the script's own bulk path)
    found: dict[str, list[dict[str, Any]]] = {}
    for _ in range(rounds):
        for name, path in (("lua", lua), ("built", built)):
            RedisCollection._built = path  # type: ignore[method-assign]
            client.flushall()
            client.config_resetstat()
            backend = make_backend(url, 10**9, None, "seed")
            backend.describe(RECORDS, shape())
            used = int(client.info("memory")["used_memory"])
            load = os.getloadavg()[0]
            started = time.perf_counter()
            backend.open(RECORDS).insert_many(records)
            seconds = time.perf_counter() - started
            own = sum(s["usec"] for s in client.info("commandstats").values()) / 1e6
            per_record = (int(client.info("memory")["used_memory"]) - used) / count
            run = {"seconds": seconds, "redis_seconds": own, "bytes_per_record": per_record}
            found.setdefault(name, []).append(run | {"loadavg_before": load})
            log(
                f"{name:<5} {count} records: {seconds:.2f} s (Redis's own {own:.2f} s, "
                f"{per_record:.0f} B per record; load {load:.1f})"
            )
    RedisCollection._built = built  # type: ignore[method-assign]
    client.flushall()
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("requests", "seeding"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="redis-path-"))
    processes = tg.Processes()
    results: dict[str, Any] = {"loadavg_start": os.getloadavg()}
    try:
        url = start_redis(processes, work)
        if args.what == "requests":
            payload.write_bodies(work)
            valid = (work / "valid.json").read_bytes()
            results["requests"] = requests(url, args.requests, valid)
        else:
            results["seeding"] = seeding(url, args.records, args.rounds)
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
