"""The proxy's overhead: req/s and p50 latency through `mockserver --upstream` to a second mock,
against the second mock directly, in the same run.

    .venv/bin/python bench/proxy.py [--rounds R] [--duration S]

Starts a mock with 10 000 seeded records (the "platform") and a second mock proxying to it,
both with `--log-level warning`. Each round runs wrk (`-t2 -c16`, and `-t1 -c1` for the latency
of one request with nothing queued) on `GET /public/v1/audit/records/{id}` of a seeded record
against the direct and the proxied address in turn, so drift in the machine's load hits both
alike. Prints the median over the rounds of each; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import targets as tg
import wrk
from targets import log

RECORDS = "/public/v1/audit/records"


def start(processes: tg.Processes, logs: Path, *args: str) -> str:
    port = tg.free_port()
    command = [str(tg.MOCKSERVER_BIN), "--port", str(port), "--log-level", "warning", *args]
    with (logs / f"mock-{port}.log").open("ab") as output:
        process = processes.spawn(command, output)
    base = f"http://127.0.0.1:{port}"
    tg.wait_until(f"{base}/_mock/health", process, 180.0)
    return base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    args = parser.parse_args()
    binary = tg.ensure_wrk()
    processes = tg.Processes()
    logs = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    try:
        platform = start(processes, logs, "--seed-records", "10000", "--faker-seed", "1")
        proxy = start(processes, logs, "--upstream", platform)
        status, body = tg.http("GET", f"{platform}{RECORDS}?limit=1", headers=tg.AUTH)
        assert status == 200, body
        record = json.loads(body)["data"][0]["id"]
        results: dict[tuple[str, int], list[wrk.Result]] = {}
        for number in range(1, args.rounds + 1):
            for connections in (16, 1):
                for name, base in (("direct", platform), ("proxy", proxy)):
                    log(f"round {number}: {name}, {connections} connection(s)")
                    load = wrk.Load(
                        f"{base}{RECORDS}/{record}",
                        "get.lua",
                        connections=connections,
                        threads=min(2, connections),
                        duration=args.duration,
                    )
                    found = wrk.run(binary, load)
                    if found.non_2xx or any(found.socket_errors.values()):
                        raise RuntimeError(f"{name}: errors: {found.raw}")
                    results.setdefault((name, connections), []).append(found)
                    time.sleep(0.5)
    finally:
        processes.stop_all()
    print("| target | connections | req/s | p50 ms |")
    print("|---|---|---|---|")
    for (name, connections), runs in sorted(results.items(), key=lambda i: (-i[0][1], i[0][0])):
        rps = statistics.median(r.rps for r in runs)
        p50 = statistics.median(r.p50_ms for r in runs)
        print(f"| {name} | {connections} | {rps:,.0f} | {p50:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
