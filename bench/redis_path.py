"""The Redis store's request path and bulk insert, in one process, on a redis-server of its own:

- `requests`: GET by id and validated POST through the app's WSGI callable (no HTTP), N of
  each, on the memory store and on Redis: CPU and wall µs per request, the commands Redis ran
  per request (`INFO commandstats`) and the round trips of the request path
  (`storage.redis_connection`'s reads of answers). `--profile K`: then the same requests on
  Redis again under cProfile, its K costliest functions (own time) to stderr. `--unix`: Redis
  on a Unix socket (`unix://`), not loopback TCP.
- `instructions`: what a GET by id and a validated POST on Redis cost the server in CPU
  instructions (valgrind's cachegrind, user space only: the kernel's share of a round trip
  is not counted), this checkout against a baseline revision (`git archive` into a temporary
  directory): each tree's app on the bench's Redis, warmed up, then N and 3N requests in a
  fresh interpreter; a request's count is the difference divided by 2N. A wall clock on this
  shared machine moves with the other work on it; an instruction count does not.
- `seeding`: N generated records inserted (`insert_many`) into an emptied Redis by this
  checkout and by a baseline's (a git worktree under bench/.tools, `gate.worktree`), in
  turn, each in a process of its own: seconds, the CPU seconds of the inserting process and
  of Redis (`INFO cpu`: less sensitive to a busy machine than seconds), the commands Redis
  ran (`INFO commandstats`) and bytes per record (`INFO used_memory`, and `MEMORY USAGE` of
  the collection's keys); medians of the rounds.

    .venv/bin/python bench/redis_path.py requests [--requests 2000] [--profile 25] [--unix]
    .venv/bin/python bench/redis_path.py instructions [--requests 200] [--baseline REV]
    .venv/bin/python bench/redis_path.py seeding [--records 100000] [--rounds 3] [--baseline REV]

Progress goes to stderr, the figures to stdout (JSON).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pickle
import pstats
import re
import shutil
import statistics
import subprocess
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
from gate import worktree
from redis_store import RECORDS, log, start_redis

from mockserver.app import create_app
from mockserver.resources.seeding import Seeder
from mockserver.settings import Settings
from mockserver.storage import redis_connection

BASELINE = "c65d05b"  # the last commit before seeding was cut (plain commands, numbers ahead)
REQUEST_PATH_BASELINE = "975d2bf"  # the last commit before a POST's version rode in its insert
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


def requests(url: str, count: int, valid: bytes, profile: int = 0) -> dict[str, Any]:
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
            if profile and store == "redis":
                _profiled(name, [make() for _ in range(count)], call, profile)
    client.flushall()
    return found


def _profiled(
    name: str, environs: list[dict[str, Any]], call: Callable[..., Any], top: int
) -> None:
    """The requests run under cProfile: the `top` functions by own time, µs per request."""
    profiler = cProfile.Profile()
    profiler.enable()
    for environ in environs:
        call(environ)
    profiler.disable()
    stats = pstats.Stats(profiler)
    rows = sorted(stats.stats.items(), key=lambda row: -row[1][2])[:top]  # type: ignore[attr-defined]
    log(f"{name} on Redis under cProfile, per request (own, cumulative us; calls):")
    for (file, line, function), (_, calls, own, cumulative, _) in rows:
        where = f"{Path(file).name}:{line}({function})"
        per = 1e6 / len(environs)
        log(f"  {own * per:7.1f} {cumulative * per:8.1f}  {calls / len(environs):5.1f}  {where}")


# One seeding, run by `python -c` in the checkout under test (this one or the baseline's): the
# records (a pickle) inserted into a fresh backend on Redis; prints the seconds.
SEED_ONE = """
import json, pickle, sys, time
from mockserver.resources.records import RecordBehaviour
from mockserver.storage import make_backend
from mockserver.storage.backend import Shape
from mockserver.storage.encoding import Layout
url, path, records = sys.argv[1], sys.argv[2], pickle.load(open(sys.argv[3], 'rb'))
backend = make_backend(url, 10**9, None, 'seed')
backend.describe(path, Shape(Layout(), RecordBehaviour.indexed, RecordBehaviour.ordered))
started, cpu = time.perf_counter(), time.process_time()
backend.open(path).insert_many(records)
print(json.dumps({'seconds': time.perf_counter() - started, 'cpu': time.process_time() - cpu}))
"""


# One count, run by `python -c` under cachegrind in the tree under test: its app on Redis,
# warmed up, then `count` requests of one kind through WSGI.
COUNT_ONE = """
import sys
from werkzeug.test import EnvironBuilder
from mockserver.app import create_app
from mockserver.settings import Settings
url, kind, count, body = sys.argv[1], sys.argv[2], int(sys.argv[3]), open(sys.argv[4], 'rb').read()
app = create_app(Settings(seed_records=20, faker_seed=1, store=url, store_prefix=kind)).wsgi_app
auth = [('Authorization', 'Bearer idt:TKN-1234-5678:secret')]
def environ(method, path, data=None):
    made = EnvironBuilder(method=method, path=path, base_url='http://127.0.0.1:8080', data=data,
                          content_type='application/json' if data else None, headers=auth)
    return dict(made.get_environ())
def call(env):
    b''.join(app(env, lambda *args: None))
listed = b''.join(app(environ('GET', RECORDS + '?limit=1'), lambda *args: None))
record = listed.split(b'"id":"', 1)[1].split(b'"', 1)[0].decode()
make = ((lambda: environ('GET', RECORDS + '/' + record)) if kind == 'get-by-id'
        else (lambda: environ('POST', RECORDS, body)))
for _ in range(50):
    call(make())
environs = [make() for _ in range(count)]
for env in environs:
    call(env)
"""


def instructions(url: str, count: int, body: Path, baseline: str) -> dict[str, Any]:
    """Instructions per request, on Redis, of this checkout and of `baseline`'s."""
    base = Path(tempfile.mkdtemp(prefix="redis-baseline-"))
    archive = subprocess.run(
        ["git", "archive", baseline], cwd=tg.ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    found: dict[str, dict[str, float]] = {}
    try:
        for name, source in (("before", base), ("after", tg.ROOT)):
            for kind in ("get-by-id", "post-valid"):
                refs = [_refs(source, url, kind, n, body) for n in (count, 3 * count)]
                found.setdefault(kind, {})[name] = (refs[1] - refs[0]) / (2 * count)
                log(f"{kind:<10} {name:<6} {found[kind][name]:9.0f} instructions a request")
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {"baseline": baseline, "per_request": found}


def _refs(source: Path, url: str, kind: str, count: int, body: Path) -> int:
    script = f"RECORDS = {RECORDS!r}\n" + COUNT_ONE
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
    command += ["--cachegrind-out-file=/dev/null", sys.executable, "-c", script]
    command += [url, kind, str(count), str(body)]
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"cachegrind failed: {done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def _redis_cpu(client: Any) -> float:
    found = client.info("cpu")
    return float(found["used_cpu_sys_main_thread"] + found["used_cpu_user_main_thread"])


def seed_once(url: str, source: Path, records: Path, count: int) -> dict[str, Any]:
    """One seeding of the records by the checkout at `source`, on an emptied Redis: seconds,
    the inserting process's CPU seconds, Redis's CPU seconds (`INFO cpu`, its main thread),
    the commands it ran with their time (`INFO commandstats`: a script's or a transaction's
    commands are counted twice, in it and by themselves) and bytes per record (`INFO
    used_memory`; `MEMORY USAGE` of the collection's keys)."""
    client = redis.Redis.from_url(url)
    client.flushall()
    client.config_resetstat()
    used, redis_cpu = int(client.info("memory")["used_memory"]), _redis_cpu(client)
    load = os.getloadavg()[0]
    command = [sys.executable, "-c", SEED_ONE, url, RECORDS, str(records)]
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True, check=True)
    timed = json.loads(done.stdout.strip().splitlines()[-1])
    stats = client.info("commandstats")
    keys = list(client.scan_iter(f"seed:{{base.*}}:c:{RECORDS}:*"))
    usage = sum(int(client.memory_usage(key, samples=0) or 0) for key in keys)
    return {
        "seconds": timed["seconds"],
        "python_cpu_seconds": timed["cpu"],
        "redis_cpu_seconds": _redis_cpu(client) - redis_cpu,
        "bytes_per_record": (int(client.info("memory")["used_memory"]) - used) / count,
        "memory_usage_per_record": usage / count,  # MEMORY USAGE of the collection's keys
        "commands": {
            name.removeprefix("cmdstat_"): {"calls": s["calls"], "seconds": s["usec"] / 1e6}
            for name, s in stats.items()
            if s["usec"] >= 1000
        },
        "loadavg_before": load,
    }


def seeding(url: str, count: int, rounds: int, baseline: str) -> dict[str, Any]:
    """`count` generated records seeded by the baseline's checkout and by this one, in turn,
    `rounds` times (the order flips every round)."""
    sources = {"before": worktree(baseline), "after": tg.ROOT}
    records = Path(tempfile.mkdtemp(prefix="redis-seed-")) / "records.pickle"
    records.write_bytes(pickle.dumps(list(Seeder(1).records(count))))
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for number in range(rounds):
            order = list(sources) if number % 2 == 0 else list(reversed(sources))
            for name in order:
                run = seed_once(url, sources[name], records, count)
                found.setdefault(name, []).append(run)
                log(
                    f"{name:<6} {count} records: {run['seconds']:.2f} s (Python's CPU "
                    f"{run['python_cpu_seconds']:.2f} s, Redis's CPU {run['redis_cpu_seconds']:.2f}"
                    f" s, {run['bytes_per_record']:.0f} B per record; load "
                    f"{run['loadavg_before']:.1f})"
                )
    finally:
        shutil.rmtree(records.parent, ignore_errors=True)
    summary = {
        name: {
            key: statistics.median(run[key] for run in runs)
            for key in (
                "seconds",
                "python_cpu_seconds",
                "redis_cpu_seconds",
                "bytes_per_record",
                "memory_usage_per_record",
            )
        }
        for name, runs in found.items()
    }
    return {"baseline": baseline, "median": summary, "runs": found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("requests", "instructions", "seeding"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", type=int, default=0, help="cProfile's K costliest")
    parser.add_argument("--unix", action="store_true", help="Redis on a Unix socket, not TCP")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default=None, help="the revision compared with")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="redis-path-"))
    processes = tg.Processes()
    results: dict[str, Any] = {"loadavg_start": os.getloadavg()}
    try:
        url = start_redis(processes, work, args.unix)
        results["store"] = url
        if args.what == "requests":
            payload.write_bodies(work)
            valid = (work / "valid.json").read_bytes()
            results["requests"] = requests(url, args.requests, valid, args.profile)
        elif args.what == "instructions":
            payload.write_bodies(work)
            count = min(args.requests, 500)
            results["instructions"] = instructions(
                url, count, work / "valid.json", args.baseline or REQUEST_PATH_BASELINE
            )
        else:
            results["seeding"] = seeding(url, args.records, args.rounds, args.baseline or BASELINE)
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
