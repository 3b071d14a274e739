"""What the fault machinery costs the plain path: this checkout against an earlier revision.

    .venv/bin/python bench/gate.py [--baseline REV] [--rounds N] [--duration S]

The baseline (default: the last commit before the gate, sessions and journal existed) is
checked out in a git worktree under bench/.tools and served from it with this venv; both
servers start with the same flags and no fault rules, afresh every round (a process lands on
the cores anew each time), and wrk loads them in alternation (POST valid, POST invalid, GET by
id, 16 connections; the order flips every round). Prints per scenario the median req/s of each
and their ratio, and the median p99 latency of each; raw results go to
bench/results/gate-<time>.json. `--seed N` seeds N records (default 1 000; the p99 target of the
project issue is set with 100 000).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import targets as tg
import wrk
from payload import write_bodies
from targets import log

BASELINE = "e79900f"  # "Request logs written in batches": the request path before the gate
RECORDS = "/public/v1/audit/records"
SEED = 1_000


def worktree(revision: str) -> Path:
    """A checkout of `revision` under bench/.tools (made once, kept)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=tg.ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = tg.TOOLS / f"baseline-{sha}"
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), sha],
            cwd=tg.ROOT,
            check=True,
            capture_output=True,
        )
    return path


def start(
    processes: tg.Processes,
    logs: Path,
    name: str,
    source: Path,
    seed: int,
    extra: Sequence[str] = (),
) -> tg.Target:
    """`python -m mockserver` from `source` (its package first on the path), seeded a little;
    `extra`: more of the server's options."""
    port = tg.free_port()
    command = [sys.executable, "-m", "mockserver", "--port", str(port), *extra]
    command += ["--seed-records", str(seed), "--faker-seed", "1"]
    env = {**os.environ, "PYTHONPATH": str(source)}
    log_path = logs / f"{name}-{port}.log"
    with log_path.open("ab") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=source,  # `python -m` puts the working directory first on the path
            start_new_session=True,
        )
        processes.started.append(process)
    base = f"http://127.0.0.1:{port}"
    tg.wait_until(f"{base}/_mock/health", process, 300)
    return tg.Target(name, base, process, time.perf_counter() - started, log_path)


def first_id(target: tg.Target) -> str:
    status, body = tg.http("GET", f"{target.base}{RECORDS}?limit=1", headers=tg.AUTH)
    assert status == 200, f"{target.name}: list answered {status}"
    return str(json.loads(body)["data"][0]["id"])


def one_round(
    number: int,
    sources: dict[str, Path],
    bodies: dict[str, Any],
    args: argparse.Namespace,
    wrk_bin: str,
    results: Path,
) -> dict[str, dict[str, wrk.Result]]:
    """Fresh servers (a process placed anew on the cores every round), each scenario on both."""
    processes = tg.Processes()
    measured: dict[str, dict[str, wrk.Result]] = {}
    try:
        servers = {
            name: start(processes, results, name, path, args.seed) for name, path in sources.items()
        }
        record = first_id(servers["current"])
        loads = {
            "post-valid": (RECORDS, "post.lua", Path(bodies["valid"])),
            "post-invalid": (RECORDS, "post.lua", Path(bodies["invalid"])),
            "get-by-id": (f"{RECORDS}/{record}", "get.lua", None),
        }
        for key, (path, script, body) in loads.items():
            if args.only and key not in args.only:
                continue
            order = list(servers) if number % 2 else list(reversed(servers))
            for name in order:
                url = servers[name].base + path
                wrk.run(wrk_bin, wrk.Load(url, script, body, duration=1))  # warm-up
                result = wrk.run(wrk_bin, wrk.Load(url, script, body, duration=args.duration))
                measured.setdefault(key, {})[name] = result
                log(f"round {number} {key} {name}: {result.rps:.0f} req/s, p99 {result.p99_ms} ms")
    finally:
        processes.stop_all()
    return measured


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--seed", type=int, default=SEED, help="records seeded in each server")
    parser.add_argument(
        "--only", action="append", help="a scenario to run (repeatable; default: all three)"
    )
    args = parser.parse_args()
    wrk_bin = tg.ensure_wrk()
    results = tg.BENCH / "results"
    results.mkdir(exist_ok=True)
    bodies = write_bodies(results)
    sources = {"baseline": worktree(args.baseline), "current": tg.ROOT}
    runs: dict[str, dict[str, list[wrk.Result]]] = {}
    for number in range(1, args.rounds + 1):
        round_runs = one_round(number, sources, bodies, args, wrk_bin, results)
        for key, per_server in round_runs.items():
            for name, value in per_server.items():
                runs.setdefault(key, {}).setdefault(name, []).append(value)
    print(f"{'scenario':<14}{'baseline':>10}{'current':>10}{'ratio':>8}   (median req/s)")
    for key, by_name in runs.items():
        base, current = (statistics.median(r.rps for r in by_name[n]) for n in sources)
        print(f"{key:<14}{base:>10.0f}{current:>10.0f}{current / base:>8.3f}")
    print(f"{'scenario':<14}{'baseline':>10}{'current':>10}   (median p99 ms)")
    for key, by_name in runs.items():
        base, current = (statistics.median(r.p99_ms for r in by_name[n]) for n in sources)
        print(f"{key:<14}{base:>10.2f}{current:>10.2f}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = results / f"gate-{stamp}.json"
    raw = {k: {n: [r.as_dict() for r in rs] for n, rs in v.items()} for k, v in runs.items()}
    summary = {"baseline": args.baseline, "seed": args.seed, "runs": raw}
    out.write_text(json.dumps(summary, indent=2))
    log(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
