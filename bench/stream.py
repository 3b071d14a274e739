"""Streaming 100 000 records: throughput, and the serving process's memory while it streams.

    .venv/bin/python bench/stream.py [--records N] [--rounds R]

Starts `mockserver --seed-records N` (uWSGI), then for each format (JSON lines, JSON
envelope) reads the whole stream with httpx, line by line, while a thread samples the RSS of
the uWSGI worker every 20 ms. Prints, per format, the median over the rounds of: seconds,
records/s, and the worker's RSS growth at its peak during the stream (MB) over its RSS just
before. Flat memory means the growth stays a small constant whatever N is.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import targets as tg
from targets import log

RECORDS = "/public/v1/audit/records"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def measure(base: str, worker: int, accept: str) -> dict[str, float]:
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(worker))
            time.sleep(0.02)

    before = rss_mb(worker)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    count = 0
    headers = {**tg.AUTH, "MPT-Streaming": "true", "Accept": accept}
    with httpx.stream("GET", base + RECORDS, headers=headers, timeout=300) as answer:
        assert answer.status_code == 200, answer.read()[:300]
        declared = int(answer.headers["MPT-Item-Count"])
        for line in answer.iter_lines():
            count += line.count('"id":"AUD-')
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    assert count >= declared, f"{count} records read, {declared} declared"
    return {"seconds": seconds, "per_second": declared / seconds, "growth_mb": peak[0] - before}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = tg.BENCH / "results"
    results.mkdir(exist_ok=True)
    processes = tg.Processes()
    try:
        mock = tg.start_mock(processes, results, seed_records=args.records, name="stream")
        worker = worker_pid(mock.process.pid)
        runs: dict[str, list[dict[str, float]]] = {"application/jsonl": [], "application/json": []}
        for number in range(1, args.rounds + 1):
            for accept, done in runs.items():
                done.append(measure(mock.base, worker, accept))
                log(f"round {number} {accept}: {done[-1]}")
    finally:
        processes.stop_all()
    print(f"{args.records} records, median of {args.rounds} rounds")
    print(f"{'format':<20}{'seconds':>9}{'records/s':>12}{'RSS growth MB':>15}")
    for accept, done in runs.items():
        row = {k: statistics.median(r[k] for r in done) for k in done[0]}
        print(
            f"{accept:<20}{row['seconds']:>9.2f}{row['per_second']:>12.0f}{row['growth_mb']:>15.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
