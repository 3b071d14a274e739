"""Hostile input: how long the server takes to answer (or refuse) each hostile request.

    .venv/bin/python bench/hostile.py [--repeats 5]

The rows are the table of tests/hostile_cases.py (tests/test_hostile.py asserts each answer;
this script only times them). Starts `mockserver` with the table's arguments (2 000 seeded
records) on a free port, sends every row `--repeats` times, each on a new connection, checks
after each that `/_mock/health` still answers 200, and prints per row: the status (or how the
connection ended), the median and the max in ms, and whether every repeat took under 100 ms.
Progress goes to stderr, the table (Markdown) to stdout; the server log to
`bench/results/hostile-<port>.log`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import targets as tg
from targets import log

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from hostile_cases import CASES, SERVER_ARGS, Outcome, send

HOST = "127.0.0.1"
LIMIT_MS = 100.0


def shown(outcome: Outcome) -> str:
    return str(outcome.status) if outcome.status is not None else outcome.ended


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    results = tg.BENCH / "results"
    results.mkdir(exist_ok=True)
    processes = tg.Processes()
    rows = []
    try:
        port = tg.free_port()
        command = [str(tg.MOCKSERVER_BIN), "--port", str(port), *SERVER_ARGS]
        command += ["--log-level", "warning"]
        with (results / f"hostile-{port}.log").open("ab") as output:
            process = processes.spawn(command, output)
        health = f"http://{HOST}:{port}/_mock/health"
        tg.wait_until(health, process, timeout=120)
        for case in CASES:
            outcomes = []
            for _ in range(args.repeats):
                outcomes.append(send(case, HOST, port))
                status, _ = tg.http("GET", health, timeout=5)
                if status != 200:
                    raise RuntimeError(f"after {case.name}: /_mock/health answered {status}")
            millis = [outcome.seconds * 1000 for outcome in outcomes]
            statuses = sorted({shown(outcome) for outcome in outcomes})
            rows.append((case.name, "/".join(statuses), statistics.median(millis), max(millis)))
            log(f"{case.name}: {rows[-1][1]} median {rows[-1][2]:.1f} ms, max {rows[-1][3]:.1f} ms")
        time.sleep(0.1)
    finally:
        processes.stop_all()
    print(f"{len(rows)} hostile requests, {args.repeats} times each, 2 000 seeded records")
    print()
    print(f"| case | status | median ms | max ms | all < {LIMIT_MS:.0f} ms |")
    print("|---|---|--:|--:|---|")
    for name, status, median, worst in rows:
        under = "yes" if worst < LIMIT_MS else "**no**"
        print(f"| {name} | {status} | {median:.1f} | {worst:.1f} | {under} |")
    slow = [name for name, _, _, worst in rows if worst >= LIMIT_MS]
    print()
    print(f"under {LIMIT_MS:.0f} ms on every repeat: {len(rows) - len(slow)} of {len(rows)}")
    if slow:
        print(f"not: {', '.join(slow)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
