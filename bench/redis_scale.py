"""Scaling out on Redis (issue 14, part 2), in one run on a redis-server of its own:

- validated POST and GET by id, req/s, p50 and p99 at 16 connections (wrk -t2 -c16,
  `bench/post.lua` and `bench/get.lua`, as `bench/run.py`), for four targets: memory x 1
  process, Redis x 1 process, Redis x 2 processes (`--processes 2`), and 2 replicas (two
  servers on one Redis and prefix, each loaded by its own wrk with 8 connections: the sum of
  their req/s, the larger of their p99s); whole-machine CPU (/proc/stat, 100 % = one core
  busy) over each wrk run, and the share of it of the mock's worker processes and of Redis
  (/proc/PID/stat), and how wrk's connections were spread over the worker processes (`ss`,
  once in mid-run: one process holding most of them leaves the other's core idle); medians of
  rounds, the targets taken in turn within a round so the ratios compare the same moments of
  a shared machine.
- `--write-behind`: a fifth target, Redis x 2 processes with `--journal-write-behind`.
- `--apart`: a target that shares nothing, two memory servers of one process each, each loaded
  by its own wrk with 8 connections (as the replicas): what two processes of the mock serve on
  this machine when no request waits on a store, the ceiling of any two-process target.
- `--pinned`: memory x 1 process and Redis x 2 processes again, with `--pin-workers` (each
  worker kept on one CPU).
- `--cached`: Redis x 2 processes with each process's copy of what it reads by id
  (`--read-cache-bytes`) and `--journal-write-behind` (pinned too, with `--pinned`): a GET by
  id that waits on no round trip.
- `--serving`: memory x 1 process on threads (`--serving threads`; memory x 1 itself serves
  with a loop, `auto`), and Redis x 2 processes with a loop (`--serving loop`; with its
  copies and written behind as well, with `--cached`).
- seeding 100 000 records into Redis (`insert_many`), seconds, with the machine's load.

    .venv/bin/python bench/redis_scale.py               # 3 rounds of 10 s (~6 min)
    .venv/bin/python bench/redis_scale.py --quick       # 1 round of 3 s, 20 000 records
    .venv/bin/python bench/redis_scale.py --unix        # Redis on a Unix socket, not TCP
    .venv/bin/python bench/redis_scale.py --write-behind  # and Redis x 2 written behind
    .venv/bin/python bench/redis_scale.py --apart   # and two memory servers, nothing shared
    .venv/bin/python bench/redis_scale.py --pinned  # and memory x 1, Redis x 2 pinned
    .venv/bin/python bench/redis_scale.py --cached  # and Redis x 2 with its copies
    .venv/bin/python bench/redis_scale.py --serving  # and the other way of serving of each

Progress goes to stderr, the figures to stdout and to bench/results/redis-scale-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import payload
import targets as tg
import wrk
from redis_store import RECORDS, log, shape, start_redis

from mockserver.resources.seeding import Seeder
from mockserver.storage import make_backend

TARGETS = ("memory-x1", "redis-x1", "redis-x2", "replicas-x2")


def cpu_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def cpu_seconds(pid: int) -> float:
    """The user and system CPU seconds a process has used (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def workers(base: str) -> list[int]:
    """The worker processes of the mock listening at `base`: of the processes holding its
    socket, those whose parent holds it too (uWSGI's master's children)."""
    port = base.rsplit(":", 1)[1]
    found = subprocess.run(
        ["ss", "-Htlnp", f"( sport = :{port} )"], capture_output=True, text=True, check=False
    ).stdout
    holding = {int(pid) for pid in re.findall(r"pid=(\d+)", found)}
    children = sorted(pid for pid in holding if _parent(pid) in holding)
    return children or sorted(holding)


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def spread(base: str) -> list[int]:
    """How many established connections each process serving `base` holds, most first."""
    port = base.rsplit(":", 1)[1]
    found = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    held: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", found):
        held[pid] = held.get(pid, 0) + 1
    return sorted(held.values(), reverse=True)


def start_mock(
    processes: tg.Processes, logs: Path, name: str, flags: list[str], count: int
) -> tuple[str, float]:
    port = tg.free_port()
    command = [str(tg.MOCKSERVER_BIN), "--port", str(port), "--log-level", "warning"]
    command += ["--seed-records", str(count), "--faker-seed", "1", *flags]
    with (logs / f"{name}-{port}.log").open("ab") as output:
        started = time.perf_counter()
        process = processes.spawn(command, output)
    base = f"http://127.0.0.1:{port}"
    tg.wait_until(f"{base}/_mock/health", process, 600)
    return base, time.perf_counter() - started


@dataclass
class Watched:
    """What is measured beside wrk: the processes whose CPU is counted, the ports sampled."""

    workers: list[int]
    redis: int
    bases: list[str]


def run_wrk(
    wrk_bin: str, loads: list[wrk.Load], watched: Watched | None = None
) -> tuple[list[wrk.Result], dict[str, Any]]:
    """The wrk runs at once; whole-machine CPU % over them (200 % = two cores busy), the
    mock's worker processes' and Redis's, and the connections each worker held in mid-run."""
    results: list[wrk.Result | None] = [None] * len(loads)
    held: list[list[int]] = []

    def one(at: int) -> None:
        results[at] = wrk.run(wrk_bin, loads[at])

    def sample() -> None:
        time.sleep(min(load.duration for load in loads) / 2)
        held.extend(spread(base) for base in (watched.bases if watched is not None else []))

    pids = [*watched.workers, watched.redis] if watched is not None else []
    before = [cpu_seconds(pid) for pid in pids]
    busy0, total0 = cpu_busy()
    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(at,)) for at in range(len(loads))]
    threads.append(threading.Thread(target=sample))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    busy1, total1 = cpu_busy()
    wall = time.perf_counter() - started
    cores = os.cpu_count() or 1
    used = [100 * (cpu_seconds(pid) - was) / wall for pid, was in zip(pids, before, strict=True)]
    found = {
        "machine": 100 * cores * (busy1 - busy0) / max(total1 - total0, 1),
        "workers": used[:-1],
        "redis": used[-1] if used else 0.0,
        "connections": held,
    }
    return [r for r in results if r is not None], found


def record_id(base: str) -> str:
    """The id of a record the mock at `base` serves (each memory server holds its own)."""
    listed = f"{base}{RECORDS}?limit=1&offset=7"
    return str(json.loads(tg.http("GET", listed, headers=tg.AUTH)[1])["data"][0]["id"])


def load(
    wrk_bin: str,
    args: argparse.Namespace,
    bases: dict[str, list[str]],
    bodies: Path,
    redis_pid: int,
) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for round_ in range(1, args.rounds + 1):
        for name, urls in bases.items():
            ids = [record_id(base) for base in urls]
            plans = [
                ("get-by-id", [f"{RECORDS}/{id_}" for id_ in ids], "get.lua"),
                ("post-valid", [RECORDS] * len(urls), "post.lua"),
            ]
            for key, paths, script in plans:
                share = 16 // len(urls)
                loads = [
                    wrk.Load(
                        url=base + path,
                        script=script,
                        body_file=bodies / "valid.json" if script == "post.lua" else None,
                        connections=share,
                        threads=2,
                        duration=args.duration,
                    )
                    for base, path in zip(urls, paths, strict=True)
                ]
                run_wrk(wrk_bin, [replace(x, duration=1) for x in loads])  # warm up
                watched = Watched([w for base in urls for w in workers(base)], redis_pid, urls)
                results, cpu = run_wrk(wrk_bin, loads, watched)
                merged = {
                    "rps": sum(r.rps for r in results),
                    "p50_ms": max(r.p50_ms for r in results),
                    "p99_ms": max(r.p99_ms for r in results),
                    "non_2xx": sum(r.non_2xx for r in results),
                    "cpu_percent": cpu["machine"],
                    "mock_cpu_percent": sum(cpu["workers"]),
                    "redis_cpu_percent": cpu["redis"],
                    "workers_cpu_percent": cpu["workers"],
                    "connections": cpu["connections"],
                }
                runs.setdefault(key, {}).setdefault(name, []).append(merged)
                shares = "+".join(f"{share:.0f}" for share in cpu["workers"])
                log(
                    f"round {round_} {key:<10} {name:<11} {merged['rps']:9.1f} req/s  "
                    f"p50 {merged['p50_ms']:7.2f} ms  p99 {merged['p99_ms']:7.2f} ms  "
                    f"cpu {cpu['machine']:4.0f} % (mock {shares}, redis {cpu['redis']:.0f})  "
                    f"connections {cpu['connections']}  non-2xx {merged['non_2xx']}"
                )
    medians: dict[str, Any] = {}
    for key, by_target in runs.items():
        medians[key] = {
            name: {
                field: statistics.median(r[field] for r in results)
                for field in (
                    "rps",
                    "p50_ms",
                    "p99_ms",
                    "cpu_percent",
                    "mock_cpu_percent",
                    "redis_cpu_percent",
                )
            }
            | {"non_2xx": sum(r["non_2xx"] for r in results)}
            for name, results in by_target.items()
        }
        memory = medians[key]["memory-x1"]["rps"]
        for found in medians[key].values():
            found["over_memory_x1"] = found["rps"] / memory
    return {"runs": runs, "medians": medians}


def seeding(url: str, count: int) -> dict[str, Any]:
    """Seconds to insert `count` records (`insert_many`), Redis's own share of them (the
    commands' time, `INFO commandstats`), and the bytes per record (`INFO used_memory`)."""
    records = list(Seeder(1).records(count))
    client = redis.Redis.from_url(url)
    client.flushall()
    client.config_resetstat()
    backend = make_backend(url, 10**9, None, "seed")
    backend.describe(RECORDS, shape())
    used_before = int(client.info("memory")["used_memory"])
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    backend.open(RECORDS).insert_many(records)
    seconds = time.perf_counter() - started
    redis_seconds = sum(s["usec"] for s in client.info("commandstats").values()) / 1e6
    per_record = (int(client.info("memory")["used_memory"]) - used_before) / count
    log(
        f"seeding {count} records into Redis: {seconds:.2f} s (Redis's own {redis_seconds:.2f} s,"
        f" {per_record:.0f} B per record; load {load_before:.1f})"
    )
    client.flushall()
    return {
        "records": count,
        "insert_seconds": seconds,
        "redis_seconds": redis_seconds,
        "bytes_per_record": per_record,
        "loadavg_before": load_before,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s, 20 000 records")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--records", type=int, default=100_000, help="seeded for the seeding")
    parser.add_argument("--served", type=int, default=1000, help="records each server seeds")
    parser.add_argument("--unix", action="store_true", help="Redis on a Unix socket, not TCP")
    parser.add_argument(
        "--write-behind", action="store_true", help="also Redis x 2 with --journal-write-behind"
    )
    parser.add_argument(
        "--apart", action="store_true", help="also two memory servers that share nothing"
    )
    parser.add_argument(
        "--cached", action="store_true", help="also Redis x 2 with --read-cache-bytes, behind"
    )
    parser.add_argument(
        "--pinned", action="store_true", help="also memory x 1 and Redis x 2 with --pin-workers"
    )
    parser.add_argument(
        "--serving",
        action="store_true",
        help="also memory x 1 on threads and Redis x 2 with a loop (--serving)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.records = 1, 3.0, 20_000
    wrk_bin = tg.ensure_wrk()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="redis-scale-"))
    processes = tg.Processes()
    results: dict[str, Any] = {"args": vars(args), "loadavg_start": os.getloadavg()}
    try:
        url = start_redis(processes, work, args.unix)
        results["store"] = url
        results["seeding"] = seeding(url, args.records)
        payload.write_bodies(work)
        n = args.served
        store = ["--store", url]
        bases = {
            "memory-x1": [start_mock(processes, work, "memory", [], n)[0]],
            "redis-x1": [start_mock(processes, work, "r1", [*store, "--store-prefix", "r1"], n)[0]],
            "redis-x2": [
                start_mock(
                    processes, work, "r2", [*store, "--store-prefix", "r2", "--processes", "2"], n
                )[0]
            ],
            "replicas-x2": [
                start_mock(processes, work, f"rep{i}", [*store, "--store-prefix", "rep"], n)[0]
                for i in range(2)
            ],
        }
        if args.apart:
            bases["memory-apart-x2"] = [
                start_mock(processes, work, f"apart{i}", [], n)[0] for i in range(2)
            ]
        if args.pinned:
            pinned = ["--pin-workers"]
            bases["memory-x1-pinned"] = [start_mock(processes, work, "mp", pinned, n)[0]]
            two = [*store, "--store-prefix", "r2p", "--processes", "2", *pinned]
            bases["redis-x2-pinned"] = [start_mock(processes, work, "r2p", two, n)[0]]
        if args.cached:
            cached = [*store, "--processes", "2", "--journal-write-behind"]
            cached += ["--read-cache-bytes", str(64 * 2**20)]
            bases["redis-x2-cached"] = [
                start_mock(processes, work, "rc", [*cached, "--store-prefix", "rc"], n)[0]
            ]
            if args.pinned:
                cached += ["--store-prefix", "rcp", "--pin-workers"]
                bases["redis-x2-cached-pinned"] = [start_mock(processes, work, "rcp", cached, n)[0]]
        if args.serving:
            threads = ["--serving", "threads"]
            bases["memory-x1-threads"] = [start_mock(processes, work, "mt", threads, n)[0]]
            two = [*store, "--store-prefix", "r2l", "--processes", "2", "--serving", "loop"]
            bases["redis-x2-loop"] = [start_mock(processes, work, "r2l", two, n)[0]]
            if args.cached:
                looped = [*store, "--store-prefix", "rcl", "--processes", "2", "--serving", "loop"]
                looped += ["--journal-write-behind", "--read-cache-bytes", str(64 * 2**20)]
                bases["redis-x2-cached-loop"] = [start_mock(processes, work, "rcl", looped, n)[0]]
        if args.write_behind:
            behind = [*store, "--store-prefix", "rb", "--processes", "2", "--journal-write-behind"]
            bases["redis-x2-behind"] = [start_mock(processes, work, "rb", behind, n)[0]]
        redis_pid = int(redis.Redis.from_url(url).info("server")["process_id"])
        results["load"] = load(wrk_bin, args, bases, work, redis_pid)
    finally:
        processes.stop_all()
        shutil.rmtree(work, ignore_errors=True)
    results["loadavg_end"] = os.getloadavg()
    out = tg.BENCH / "results" / f"redis-scale-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results["seeding"], indent=2))
    print(json.dumps(results["load"]["medians"], indent=2))
    print(f"load average {results['loadavg_start']} -> {results['loadavg_end']}; {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
