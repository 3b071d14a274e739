"""Start-up with a spec: how long until the server answers, and how much memory it holds.

    .venv/bin/python bench/spec_startup.py [--spec PATH] [--repeats N]

Two measurements, each in fresh processes, best and median of `--repeats` (default 3):

* `create_app`: a fresh Python process imports the app and builds it with `--spec`
  (loading, checking and routing the document, every collection described); the seconds
  of that call (wall and CPU: the CPU time says more on a busy machine), the import's, and
  the process's peak RSS (MB) once it is built;
* `console script`: `mockserver --spec PATH --check-responses` on a free port, from the
  command to the first `200` of `GET /_mock/health` (uWSGI's start and fork included), and
  the RSS of the serving worker then.

The spec defaults to the platform's whole document (`../shared/reference/marketplace-
openapi.json`, 280 paths). Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "reference" / "marketplace-openapi.json"
MOCKSERVER = Path(sys.executable).with_name("mockserver")

_BUILD = """
import json, resource, sys, time
from pathlib import Path
started = time.perf_counter()
from mockserver import Settings, create_app
imported, cpu = time.perf_counter(), time.process_time()
create_app(Settings(spec=Path(sys.argv[1]), check_responses=True))
built, cpu = time.perf_counter(), time.process_time() - cpu
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import": imported - started, "build": built - imported, "cpu": cpu, "rss": rss}))
"""


def build_once(spec: Path) -> dict[str, float]:
    """create_app in a fresh interpreter: import and build seconds, peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", _BUILD, str(spec)], capture_output=True, text=True, check=True
    )
    found: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rss_mb(pid: int) -> float:
    """The resident set of a process and its children (uWSGI's master and worker), in MB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def serve_once(spec: Path) -> dict[str, float]:
    """The console script, from the command to the first health answer; RSS then."""
    port = _free_port()
    command = [str(MOCKSERVER), "--port", str(port), "--spec", str(spec), "--check-responses"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"mockserver exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_mock/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.02)
        ready = time.perf_counter() - started
        return {"ready": ready, "rss": _rss_mb(process.pid)}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _row(name: str, values: list[float], unit: str) -> str:
    return f"| {name} | {min(values):.2f} {unit} | {statistics.median(values):.2f} {unit} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    builds, serves = [], []
    for round_ in range(1, args.repeats + 1):
        print(f"round {round_}/{args.repeats}: create_app, the console script", file=sys.stderr)
        builds.append(build_once(args.spec))
        serves.append(serve_once(args.spec))
    print(f"spec: {args.spec}")
    print("| measure | best | median |")
    print("|---|---|---|")
    print(_row("create_app (import excluded)", [b["build"] for b in builds], "s"))
    print(_row("create_app CPU time (import excluded)", [b["cpu"] for b in builds], "s"))
    print(_row("import mockserver's app", [b["import"] for b in builds], "s"))
    print(_row("create_app peak RSS", [b["rss"] for b in builds], "MB"))
    print(_row("console script to first health answer", [s["ready"] for s in serves], "s"))
    print(_row("server RSS (master + worker)", [s["rss"] for s in serves], "MB"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
