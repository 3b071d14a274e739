"""The benchmark, in one command: the mock server against Stoplight Prism, plus one-shot measures.

    .venv/bin/python bench/run.py [--rounds N] [--duration S] [--quick]

Phases: (1) the validation step alone, in µs per call; (2) start-up to the first answered
request (audit spec, marketplace spec); (3) memory per stored record; (4) wrk load in rounds,
alternating mock, Prism, Prism -v silent for each scenario, a freshly seeded mock every round
(its time to ready is the seeding measure). Tables go to stdout, progress to stderr, raw results
to bench/results/<timestamp>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import report
import targets as tg
import wrk
from payload import write_bodies
from targets import log

RESULTS = tg.BENCH / "results"
RECORDS = "/public/v1/audit/records"
SEED_RECORDS = 100_000
KEEP_LOG_BYTES = 2 << 20  # Prism's default log grows by ~1 KB a request: keep its tail


@dataclass(frozen=True)
class Scenario:
    """One kind of request, sent by wrk to each of `targets`."""

    key: str
    path: str
    body: str | None = None  # "valid" or "invalid": a POST of that body file
    expect: int = 2  # the status class every answer should have (2xx or 4xx)
    targets: tuple[str, ...] = report.TARGET_ORDER
    connections: int = 16
    threads: int = 2
    warmup: bool = True  # a short wrk run before the measured one

    @property
    def script(self) -> str:
        return "post.lua" if self.body else "get.lua"


def scenarios(record_id: str, object_id: str) -> list[Scenario]:
    """Reads first, then the POSTs (which add records), so every read sees the 100 000."""
    eq = f"{RECORDS}?eq(object.id,'{object_id}')&order=-timestamp&limit=100"
    ilike = f"{RECORDS}?ilike(details,'*x*')&limit=100"
    mock = (report.MOCK,)
    return [
        Scenario("get-by-id", f"{RECORDS}/{record_id}"),
        Scenario("list-eq", eq),
        Scenario("list-eq-1c", eq, targets=mock, connections=1, threads=1),
        Scenario("list-ilike", ilike, targets=mock, warmup=False),
        Scenario("list-ilike-1c", ilike, targets=mock, connections=1, threads=1, warmup=False),
        Scenario("post-valid", RECORDS, body="valid"),
        Scenario("post-invalid", RECORDS, body="invalid", expect=4),
    ]


# --- one-shot measures ---------------------------------------------------------------------------


def inprocess(*args: str) -> dict[str, Any]:
    """Run bench/inprocess.py in a fresh interpreter; its JSON answer."""
    command = [sys.executable, str(tg.BENCH / "inprocess.py"), *args]
    done = subprocess.run(command, cwd=tg.ROOT, stdout=subprocess.PIPE, text=True, check=True)
    found: dict[str, Any] = json.loads(done.stdout)
    return found


def startup(processes: tg.Processes, logs: Path, repeats: int) -> dict[str, Any]:
    """Seconds from spawning `mockserver` (no seed records) to GET /_mock/health = 200."""
    specs: list[tuple[str, Path | None]] = [("audit", None)]
    if tg.MARKETPLACE_SPEC.exists():
        specs.append(("marketplace", tg.MARKETPLACE_SPEC))
    found: dict[str, Any] = {}
    for key, spec in specs:
        times = []
        for _ in range(repeats):
            server = tg.start_mock(processes, logs, seed_records=0, spec=spec, name=f"start-{key}")
            times.append(server.ready_seconds)
            processes.stop(server.process)
        found[key] = {"spec": str(spec or tg.AUDIT_SPEC), "seconds": times}
        log(f"start-up ({key} spec): {', '.join(f'{t:.2f}s' for t in times)}")
    return found


# --- the load rounds -----------------------------------------------------------------------------


def seeded_ids(mock: tg.Target) -> tuple[str, str]:
    """The id and object id of a seeded record from the middle of the store."""
    status, body = tg.http("GET", f"{mock.base}{RECORDS}?limit=1&offset=50000", headers=tg.AUTH)
    if status != 200:
        raise RuntimeError(f"the mock's list answered {status}: {body[:300]!r}")
    record = json.loads(body)["data"][0]
    return record["id"], record["object"]["id"]


def probe(target: tg.Target, scenario: Scenario, bodies: dict[str, Path]) -> int:
    """The status of one request like the ones wrk sends."""
    headers = dict(tg.AUTH)
    data = None
    if scenario.body:
        data = bodies[scenario.body].read_bytes()
        headers["Content-Type"] = "application/json"
    method = "POST" if scenario.body else "GET"
    status, _ = tg.http(method, target.base + scenario.path, data, headers, timeout=60)
    return status


def crashes(target: tg.Target) -> int:
    """Unexpected-error entries in a mock's log so far (500s are logged with a traceback)."""
    if not target.name.startswith("mock"):
        return 0
    text = target.log_path.read_text(errors="replace")
    return text.count("unexpected error") + text.count("Traceback")


def run_one(
    wrk_bin: str,
    args: argparse.Namespace,
    round_: int,
    scenario: Scenario,
    target: tg.Target,
    bodies: dict[str, Path],
) -> dict[str, Any]:
    load = wrk.Load(
        url=target.base + scenario.path,
        script=scenario.script,
        body_file=bodies[scenario.body] if scenario.body else None,
        connections=scenario.connections,
        threads=scenario.threads,
        duration=args.duration,
        timeout=30.0,
    )
    entry: dict[str, Any] = {
        "round": round_,
        "scenario": scenario.key,
        "target": target.name,
        "url": load.url,
        "connections": load.connections,
        "threads": load.threads,
        "duration": load.duration,
        "expect": f"{scenario.expect}xx",
        "result": None,
        "unexpected": 0,
    }
    try:
        if target.name == report.MOCK:
            entry["records_in_store"] = tg.mock_health(target)["records"]
        crashed = crashes(target)
        entry["loadavg_before"] = os.getloadavg()[0]
        entry["foreign_wrk_before"] = tg.foreign_load()
        entry["status_before"] = probe(target, scenario, bodies)
        if scenario.warmup and args.warmup > 0:
            wrk.run(wrk_bin, replace(load, duration=args.warmup))
        result = wrk.run(wrk_bin, load)
        time.sleep(0.3 + min(result.p99_ms / 1000, 30))  # let a backlog of slow requests drain
        entry["foreign_wrk_after"] = tg.foreign_load()
        entry["status_after"] = probe(target, scenario, bodies)
        entry["new_crash_log_entries"] = crashes(target) - crashed
    except (OSError, RuntimeError, ValueError, subprocess.SubprocessError) as exc:  # go on
        entry["error"] = str(exc)
        log(f"round {round_} {scenario.key} {target.name}: {exc}")
        return entry
    # wrk counts answers that are not 2xx/3xx; for an expected 4xx the others are the bad ones
    non_2xx = result.non_2xx
    entry["unexpected"] = non_2xx if scenario.expect == 2 else result.requests - non_2xx
    for key in ("status_before", "status_after"):
        if entry[key] // 100 != scenario.expect:
            entry.setdefault("notes", []).append(f"{key} {entry[key]}")
            entry["unexpected"] = max(entry["unexpected"], 1)
    entry["result"] = result.as_dict()
    log(
        f"round {round_} {scenario.key:<13} {target.name:<12} {result.rps:9.1f} req/s  "
        f"p50 {result.p50_ms:8.2f} ms  p99 {result.p99_ms:8.2f} ms  "
        f"non-2xx {non_2xx}  socket errors {sum(result.socket_errors.values())}"
    )
    return entry


def load_rounds(
    wrk_bin: str,
    args: argparse.Namespace,
    processes: tg.Processes,
    logs: Path,
    bodies: dict[str, Path],
    results: dict[str, Any],
) -> None:
    prism = tg.start_prism(processes, logs, silent=False)
    silent = tg.start_prism(processes, logs, silent=True)
    results["prism_ready_seconds"] = {
        prism.name: prism.ready_seconds,
        silent.name: silent.ready_seconds,
    }
    log(f"Prism ready in {prism.ready_seconds:.1f}s, Prism silent in {silent.ready_seconds:.1f}s")
    for round_ in range(1, args.rounds + 1):
        log(f"round {round_}/{args.rounds}: starting a mock with {SEED_RECORDS} seed records")
        mock = tg.start_mock(processes, logs, seed_records=SEED_RECORDS)
        results["seeding_seconds"].append(mock.ready_seconds)
        health = tg.mock_health(mock)
        log(f"mock ready in {mock.ready_seconds:.2f}s with {health['records']} records")
        record_id, object_id = seeded_ids(mock)
        plan = scenarios(record_id, object_id)
        results["rounds"].append(
            {
                "round": round_,
                "seeding_seconds": mock.ready_seconds,
                "records": health["records"],
                "record_id": record_id,
                "object_id": object_id,
                "matches": _matches(mock, plan),
            }
        )
        by_name = {mock.name: mock, prism.name: prism, silent.name: silent}
        for scenario in plan:
            for name in scenario.targets:
                entry = run_one(wrk_bin, args, round_, scenario, by_name[name], bodies)
                results["runs"].append(entry)
        processes.stop(mock.process)
        print(f"\nRound {round_}/{args.rounds} (mock seeded in {mock.ready_seconds:.2f} s)")
        print(report.round_table(results["runs"], round_), flush=True)


def _matches(mock: tg.Target, plan: list[Scenario]) -> dict[str, Any]:
    """How many records each list query matches (the work behind it)."""
    found = {}
    for scenario in plan:
        if scenario.key in ("list-eq", "list-ilike"):
            status, body = tg.http("GET", mock.base + scenario.path, headers=tg.AUTH, timeout=60)
            meta = json.loads(body).get("$meta", {}) if status == 200 else {}
            found[scenario.key] = meta.get("pagination", {}).get("total", f"status {status}")
    return found


# --- the whole run -------------------------------------------------------------------------------


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    """A read-only git command (no index refresh: others edit the tree meanwhile)."""
    return subprocess.run(
        ["git", "--no-optional-locks", *args],
        cwd=tg.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def revision() -> dict[str, Any]:
    """The commit, and whether the server's files differ from it right now."""
    changed = _git("diff", "--quiet", "HEAD", "--", "mockserver", "openapi").returncode != 0
    return {
        "commit": _git("rev-parse", "--short", "HEAD").stdout.strip(),
        "worktree_changed": changed,
    }


def environment() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **revision(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "wrk": tg.tool_version(["wrk", "--version"]),
        "prism": tg.tool_version([str(tg.PRISM_BIN), "--version"]),
        "node": tg.tool_version(["node", "--version"]),
    }


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rounds", type=int, help="load rounds (default 3; --quick: 1)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (default 10; --quick: 3)")
    p.add_argument("--warmup", type=float, help="seconds of wrk before each measured run (1)")
    p.add_argument("--memory-records", type=int, help="records POSTed for the memory measure")
    p.add_argument("--startup-repeats", type=int, help="start-ups per spec (default 3)")
    p.add_argument("--quick", action="store_true", help="a short run for development")
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["validation", "startup", "memory", "load"],
        help="leave a phase out (repeatable)",
    )
    args = p.parse_args(argv)
    quick = args.quick
    defaults = {
        "rounds": 1 if quick else 3,
        "duration": 3.0 if quick else 10.0,
        "warmup": 1.0,
        "memory_records": 10_000 if quick else 100_000,
        "startup_repeats": 1 if quick else 3,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.validation_calls, args.validation_repeats = (300, 3) if quick else (1000, 7)
    return args


def _trim(path: Path) -> None:
    """Keep only the tail of a big log (Prism's default logging writes ~1 KB a request)."""
    size = path.stat().st_size
    if size <= KEEP_LOG_BYTES:
        return
    with path.open("rb") as f:
        f.seek(size - KEEP_LOG_BYTES)
        tail = f.read()
    path.write_bytes(
        f"[... {size - len(tail)} bytes trimmed by bench/run.py ...]\n".encode() + tail
    )


def summary(results: dict[str, Any]) -> str:
    env = results["environment"]
    once = results
    lines = [
        "",
        f"Audit API mock benchmark - {env['date']} - commit {env['commit']}"
        + (" (+ uncommitted changes)" if env["worktree_changed"] else "")
        + f" - {env['cpus']} CPUs ({env['cpu']}), load generator on the same machine",
    ]
    end = results.get("revision_at_end") or {}
    if end and end.get("commit") != env["commit"]:
        lines.append(f"(HEAD moved to {end['commit']} during the run)")
    found = report.medians(results["runs"])
    if found:
        rounds = max(m.rounds for m in found)
        lines += [
            "",
            f"Medians over {rounds} round(s); ratio columns: median of the per-round ratios of the "
            "mock's req/s to Prism's (wrk -t2 -c16 unless the scenario says -1c: -t1 -c1)",
            report.median_table(found),
        ]
    kinds: dict[str, dict[str, int]] = {}
    for m in found:
        for kind, count in m.socket_errors.items():
            kinds.setdefault(m.target, {}).setdefault(kind, 0)
            kinds[m.target][kind] += count
    noted = [
        f"{target} " + ", ".join(f"{k} {n}" for k, n in counts.items() if n)
        for target, counts in kinds.items()
        if any(counts.values())
    ]
    if noted:
        lines.append(
            "Socket errors by kind (wrk counts a 'read' error when the server closes a "
            "kept-alive connection): " + "; ".join(noted)
        )
    validation = once.get("validation")
    if validation:
        lines += ["", f"Validation step, {validation['body_bytes']} B body, µs per call (median):"]
        for key, value in validation.items():
            if isinstance(value, dict):
                lines.append(f"  {key:<40} {value['median_us']:9.1f} us")
    memory = once.get("memory")
    if memory:
        lines += [
            "",
            f"Memory: {memory['bytes_per_record']:,.0f} B RSS per record over "
            f"{memory['records']:,} POSTed records (request body {memory['request_body_bytes']} B, "
            f"stored record JSON {memory['record_json_bytes']} B, deep sizeof of one record "
            f"{memory['deep_sizeof_one_record']} B; {memory['post_us_per_call']:.0f} us per "
            "in-process POST)",
        ]
    if once.get("seeding_seconds"):
        times = ", ".join(f"{t:.2f}" for t in once["seeding_seconds"])
        lines += ["", f"Seeding: mockserver --seed-records {SEED_RECORDS} ready in {times} s"]
    for key, value in (once.get("startup") or {}).items():
        times = ", ".join(f"{t:.2f}" for t in value["seconds"])
        lines.append(f"Start-up to first request ({key} spec): {times} s")
    busy = [
        f"{r['scenario']}/{r['target']}/round {r['round']}"
        for r in results["runs"]
        if r.get("foreign_wrk_before") or r.get("foreign_wrk_after")
    ]
    if busy:
        lines += [
            "",
            f"Note: another wrk (not this run's) was running around {len(busy)} of "
            f"{len(results['runs'])} runs: {', '.join(busy[:8])}{' ...' if len(busy) > 8 else ''}",
        ]
    lines += ["", "Targets", report.verdict_table(report.verdicts(found, once))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C (even when started with SIGINT ignored, as `cmd &` does) and SIGTERM both end in
    # the `finally` below; the servers, started after this, get default signal handling.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = RESULTS / stamp
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes = tg.Processes()
    results: dict[str, Any] = {
        "settings": dict(vars(args)),
        "interrupted": False,
        "validation": None,
        "startup": None,
        "memory": None,
        "seeding_seconds": [],
        "rounds": [],
        "runs": [],
    }
    out = RESULTS / f"{stamp}.json"
    try:
        wrk_bin = tg.ensure_wrk()
        tg.ensure_prism()
        results["environment"] = environment()
        payload = write_bodies(work)
        results["payload"] = payload
        bodies = {"valid": Path(payload["valid"]), "invalid": Path(payload["invalid"])}
        log(f"bodies: valid {payload['valid_bytes']} B, invalid {payload['invalid_bytes']} B")
        if "validation" not in args.skip:
            log("validation micro-benchmark")
            results["validation"] = inprocess(
                "validation",
                payload["valid"],
                payload["invalid"],
                "--calls",
                str(args.validation_calls),
                "--repeats",
                str(args.validation_repeats),
            )
        if "startup" not in args.skip:
            log("start-up times")
            results["startup"] = startup(processes, logs, args.startup_repeats)
        if "memory" not in args.skip:
            log(f"memory: {args.memory_records} records through the POST path")
            results["memory"] = inprocess(
                "memory", payload["valid"], "--records", str(args.memory_records)
            )
        if "load" not in args.skip:
            load_rounds(wrk_bin, args, processes, logs, bodies, results)
    except KeyboardInterrupt:
        results["interrupted"] = True
        log("interrupted: stopping every process this run started")
    finally:
        processes.stop_all()
        results["revision_at_end"] = revision()
        for path in logs.glob("*.log"):
            _trim(path)
        results.setdefault("environment", {})
        out.write_text(json.dumps(results, indent=2, default=str))
    if results["environment"]:
        print(summary(results))
    if results["seeding_seconds"]:
        log(f"seeding median {statistics.median(results['seeding_seconds']):.2f}s")
    log(f"raw results: {out.relative_to(tg.ROOT)}; logs: {logs.relative_to(tg.ROOT)}")
    return 130 if results["interrupted"] else 0


if __name__ == "__main__":
    sys.exit(main())
