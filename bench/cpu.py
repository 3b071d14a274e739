"""The server's CPU time per request: this checkout against an earlier revision, measured so
that other load on the machine does not count.

    .venv/bin/python bench/cpu.py [--baseline REV] [--rounds N] [--duration S] [--scenario NAME]
        [--store redis] [--processes N] [--connections C]

Each round starts both servers afresh (as `bench/gate.py` does, the baseline checked out under
bench/.tools), loads each with wrk (GET by id, or `--scenario post-valid` / `post-invalid`, 8
connections; the order flips every round),
and reads the CPU time (user and system) its uWSGI worker spent meanwhile from /proc: divided
by the requests wrk counted, that is what one request costs the server whatever else the
cores were doing, where req/s on a shared machine say more about the neighbours. It reads
the worker's threads' context switches too (voluntary and not, /proc/PID/task/*/status): a
thread put to sleep and woken (a lock, the GIL, a socket) costs more than its own CPU, in
the caches and in the wait for a core. Prints each round and the medians.

`--store redis` puts both servers on a redis-server of the bench's own (each server a prefix of
its own), `--processes N` gives each N worker processes (their CPU and switches summed), and
`--connections C` sets wrk's connections (8 by default; `bench/redis_scale.py` uses 16).
`--current-option=OPTION` (repeatable) gives this checkout's server an option the baseline's
lacks: `--baseline HEAD --current-option=--pin-workers` measures what pinning the workers does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

import targets as tg
import wrk
from gate import RECORDS, SEED, first_id, start, worktree
from payload import write_bodies
from targets import log

SCENARIOS = ("get-by-id", "post-valid", "post-invalid")

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def switches(pid: int) -> int:
    """Context switches of every thread of a process so far."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            lines = (task / "status").read_text().splitlines()
        except OSError:  # the thread ended meanwhile
            continue
        total += sum(int(line.split()[1]) for line in lines if "ctxt_switches" in line)
    return total


def workers(target: tg.Target) -> list[int]:
    """The uWSGI workers: the children of the server's master (the command's process)."""
    found = subprocess.run(
        ["pgrep", "-P", str(target.process.pid)], capture_output=True, text=True, check=True
    )
    return [int(pid) for pid in found.stdout.split()]


def measure(
    target: tg.Target, wrk_bin: str, duration: float, scenario: str, connections: int = 8
) -> tuple[float, float, wrk.Result]:
    """Microseconds of the workers' CPU time per request of the scenario, their threads'
    context switches per request, and what wrk saw."""
    if scenario == "get-by-id":
        url, script, body = f"{target.base}{RECORDS}/{first_id(target)}", "get.lua", None
    else:
        bodies = write_bodies(tg.BENCH / "results")
        url, script = f"{target.base}{RECORDS}", "post.lua"
        body = Path(bodies["valid" if scenario == "post-valid" else "invalid"])
    wrk.run(wrk_bin, wrk.Load(url, script, body, connections=connections, duration=1))  # warm
    pids = workers(target)
    before = sum(map(cpu_seconds, pids))
    switched = sum(map(switches, pids))
    load = wrk.Load(url, script, body, connections=connections, duration=duration)
    result = wrk.run(wrk_bin, load)
    requests = max(1, result.requests)
    spent = sum(map(cpu_seconds, pids)) - before
    return spent / requests * 1e6, (sum(map(switches, pids)) - switched) / requests, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default="HEAD~1")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--scenario", choices=SCENARIOS, default="get-by-id")
    parser.add_argument("--store", choices=("memory", "redis"), default="memory")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--current-option", action="append", default=[], metavar="OPTION")
    args = parser.parse_args()
    wrk_bin = tg.ensure_wrk()
    results = tg.BENCH / "results"
    results.mkdir(exist_ok=True)
    sources = {"baseline": worktree(args.baseline), "current": tg.ROOT}
    spent: dict[str, list[float]] = {name: [] for name in sources}
    woken: dict[str, list[float]] = {name: [] for name in sources}
    seen: dict[str, list[wrk.Result]] = {name: [] for name in sources}
    shared = tg.Processes()
    try:
        store = _store(args.store, shared)
        for number in range(1, args.rounds + 1):
            order = list(sources) if number % 2 else list(reversed(sources))
            for name in order:
                processes = tg.Processes()
                extra = ["--processes", str(args.processes)]
                if name == "current":
                    extra += args.current_option
                if store:
                    extra += ["--store", store, "--store-prefix", f"cpu-{name}-{number}"]
                try:
                    target = start(processes, results, name, sources[name], SEED, extra)
                    cpu, switched, result = measure(
                        target, wrk_bin, args.duration, args.scenario, args.connections
                    )
                finally:
                    processes.stop_all()
                spent[name].append(cpu)
                woken[name].append(switched)
                seen[name].append(result)
                log(
                    f"round {number} {name}: {cpu:.0f} µs of CPU, {switched:.1f} switches, "
                    f"{result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms"
                )
    finally:
        shared.stop_all()
    for name, values in spent.items():
        each = ", ".join(f"{value:.0f}" for value in values)
        switched = statistics.median(woken[name])
        log(
            f"{name}: median {statistics.median(values):.0f} µs per request ({each}), "
            f"{switched:.1f} context switches per request, "
            f"{statistics.median(r.rps for r in seen[name]):.0f} req/s, "
            f"p99 {statistics.median(r.p99_ms for r in seen[name]):.1f} ms (wrk, medians)"
        )
    return 0


def _store(kind: str, processes: tg.Processes) -> str:
    """The servers' `--store`: empty for memory, else a redis-server's URL (started here)."""
    if kind == "memory":
        return ""
    from redis_store import start_redis

    directory = Path(tempfile.mkdtemp(prefix="cpu-redis-"))
    return start_redis(processes, directory)


if __name__ == "__main__":
    raise SystemExit(main())
