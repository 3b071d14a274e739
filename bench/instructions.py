"""What one request costs the app, in CPU instructions: this checkout against an earlier revision.

    .venv/bin/python bench/instructions.py [--baseline REV] [--only SCENARIO] [--calls N]

Wall time on this shared 2-core machine moves with the other work on it (bench/gate.py needs
three rounds to see a 5 % change); an instruction count does not. Each tree's app (the
baseline's checkout under bench/.tools, as bench/gate.py makes it, and this one) is built in
a fresh interpreter under valgrind's cachegrind with a fixed hash seed (what start-up built frozen
out of the garbage collector's way, as the server does), warmed up, then called
through WSGI in-process (no server, no socket: what the app's code costs) for a validated
POST, the same POST rejected (400) and a GET by id. One request's count is the difference of
two runs that differ by N calls, divided by N (start-up cancels out). Needs valgrind
(`apt-get install valgrind`); ~1 min per run on a quiet machine, 12 runs, 2 at a time.

Prints instructions per request per scenario and their ratio current/baseline; raw results go
to bench/results/instructions-<time>.json.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SCENARIOS = ("post-valid", "post-invalid", "get-by-id")
WARM = 100  # calls before counting: caches filled, lazy parts built
_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", default="bfeebf1")
    parser.add_argument("--only", action="append", choices=SCENARIOS)
    parser.add_argument("--calls", type=int, default=500, help="N: the calls counted")
    parser.add_argument(
        "--inner", nargs=3, metavar=("TREE", "SCENARIO", "CALLS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.inner:
        tree, scenario, calls = args.inner
        return _drive(Path(tree), scenario, int(calls))
    if shutil.which("valgrind") is None:
        sys.exit("instructions.py: valgrind is not installed (apt-get install valgrind)")
    sys.path.insert(0, str(BENCH))
    import gate
    import targets

    trees = {"baseline": gate.worktree(args.baseline), "current": targets.ROOT}
    scenarios = args.only or list(SCENARIOS)
    jobs = [
        (name, scenario, n) for scenario in scenarios for name in trees for n in (0, args.calls)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(lambda job: _count(trees[job[0]], job[1], job[2]), jobs))
    found = dict(zip(jobs, counts, strict=True))
    results: dict[str, dict[str, float]] = {}
    print(f"{'scenario':<14}{'baseline':>12}{'current':>12}{'ratio':>8}   (instructions/request)")
    for scenario in scenarios:
        per = {
            name: (found[(name, scenario, args.calls)] - found[(name, scenario, 0)]) / args.calls
            for name in trees
        }
        results[scenario] = per
        ratio = per["current"] / per["baseline"]
        print(f"{scenario:<14}{per['baseline']:>12,.0f}{per['current']:>12,.0f}{ratio:>8.3f}")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = BENCH / "results" / f"instructions-{stamp}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"baseline": args.baseline, "calls": args.calls, **results}, indent=2)
    )
    targets.log(f"raw results: {out}")
    return 0


def _count(tree: Path, scenario: str, calls: int) -> int:
    """Instructions of a whole run: start-up, warm-up and `calls` requests."""
    import targets

    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--inner", str(tree), scenario, str(calls)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(tree)}
    env.pop("MOCKSERVER_STORE", None)
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tree, check=False)
    found = _REFS.search(done.stderr)
    if done.returncode != 0 or found is None:
        sys.exit(f"instructions.py: {tree.name} {scenario}: {done.stderr[-2000:]}")
    targets.log(f"{tree.name} {scenario} {calls} calls: {found.group(1)} instructions")
    return int(found.group(1).replace(",", ""))


def _drive(tree: Path, scenario: str, calls: int) -> int:
    """In the measured interpreter: the tree's app, warmed up, then `calls` requests."""
    sys.path.insert(0, str(tree))
    import payload
    from werkzeug.test import EnvironBuilder

    from mockserver.app import create_app
    from mockserver.settings import Settings

    settings = Settings.from_env(
        {"MOCKSERVER_SEED_RECORDS": "0", "MOCKSERVER_LOG_LEVEL": "warning"}
    )
    app = create_app(settings)
    gc.collect()
    gc.freeze()  # as the server does before it serves: what start-up built is never scanned
    headers = {
        "Authorization": "Bearer idt:TKN-1234-5678:secret",
        "Content-Type": "application/json",
    }
    valid = payload.compact(payload.valid_body())
    invalid = payload.compact({**json.loads(valid), "event": 12345})
    statuses: list[str] = []

    def start_response(status: str, _headers: Any, _exc: Any = None) -> Any:
        statuses.append(status)
        return lambda _data: None

    def environ_of(method: str, path: str, body: bytes) -> dict[str, Any]:
        environ = EnvironBuilder(
            path=path, method=method, headers=list(headers.items())
        ).get_environ()
        environ["CONTENT_LENGTH"] = str(len(body))
        return environ

    def call(base: dict[str, Any], body: bytes) -> bytes:
        environ = {**base, "wsgi.input": io.BytesIO(body)}  # a request's own copy
        answer = app(environ, start_response)
        data = b"".join(answer)
        getattr(answer, "close", lambda: None)()
        return data

    records = "/public/v1/audit/records"
    record = json.loads(call(environ_of("POST", records, valid), valid))["id"]
    method, path, body = {
        "post-valid": ("POST", records, valid),
        "post-invalid": ("POST", records, invalid),
        "get-by-id": ("GET", f"{records}/{record}", b""),
    }[scenario]
    base = environ_of(method, path, body)
    for _ in range(WARM + calls):
        call(base, body)
    expected = {"post-valid": "201", "post-invalid": "400", "get-by-id": "200"}[scenario]
    if statuses[-1][:3] != expected:
        sys.exit(f"{scenario} answered {statuses[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
