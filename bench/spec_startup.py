"""Start-up with a spec: how long until the server answers, and how much memory it holds.

    .venv/bin/python bench/spec_startup.py [--spec PATH] [--repeats N]

Two measurements, each in fresh processes, best and median of `--repeats` (default 3):

* `create_app`: a fresh Python process imports the app and builds it with `--spec`
  (loading, checking and routing the document, every collection described); the seconds
  of that call (wall and CPU: the CPU time says more on a busy machine), the import's, and
  the process's peak RSS (MB) once it is built;
* `console script`: `mockserver --spec PATH --check-responses` on a free port, from the
  command to the first `200` of `GET /_mock/health` (uWSGI's start and fork included), the
  CPU seconds its processes (uWSGI's master and worker) had used by then (on a busy machine
  the wall time is mostly waiting for a core; the CPU time is what start-up costs), the
  memory of master and worker then (RSS, which counts the pages they share twice, and PSS,
  which does not), and the time of the first API request after it (a GET of the
  document's first path without parameters: the first call of an operation builds what it
  needs).

The load average is printed with the table: wall times are only comparable at a like load.

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
import urllib.error
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


def _family(pid: int) -> list[int]:
    """A process and its children (uWSGI's master and worker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(p) for p in children.read_text().split())] if children.exists() else [pid]


def _memory_mb(pid: int, field: str, source: str = "status") -> float:
    """A memory figure (kB in /proc) summed over a process and its children, in MB: `VmRSS`
    of `status` counts the pages master and worker share twice, `Pss` of `smaps_rollup`
    splits them between the two."""
    total = 0
    for each in _family(pid):
        for line in Path(f"/proc/{each}/{source}").read_text().splitlines():
            if line.startswith(f"{field}:"):
                total += int(line.split()[1])
    return total / 1024


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process and its children (master and worker)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for each in _family(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def first_path(spec: Path) -> str:
    """The document's first path with a GET and no parameters."""
    text = spec.read_text(encoding="utf-8")
    if spec.suffix == ".json":
        document = json.loads(text)
    else:
        import yaml

        document = yaml.safe_load(text)
    for path, item in document["paths"].items():
        if "{" not in path and isinstance(item, dict) and "get" in item:
            return str(path)
    return "/_mock/health"


def _first_request(port: int, path: str) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": "Bearer bench"}
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            answer.read()
    except urllib.error.HTTPError as answer:  # an error answer is an answer too
        answer.read()
    return time.perf_counter() - started


def serve_once(spec: Path) -> dict[str, float]:
    """The console script, from the command to the first health answer: seconds, CPU seconds
    and RSS then; then the first API request's seconds."""
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
        cpu = _cpu_seconds(process.pid)
        rss = _memory_mb(process.pid, "VmRSS")
        pss = _memory_mb(process.pid, "Pss", "smaps_rollup")
        first = _first_request(port, first_path(spec))
        return {"ready": ready, "cpu": cpu, "rss": rss, "pss": pss, "first": first}
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # a machine too busy to stop it in time
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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
    print(f"spec: {args.spec}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| measure | best | median |")
    print("|---|---|---|")
    print(_row("create_app (import excluded)", [b["build"] for b in builds], "s"))
    print(_row("create_app CPU time (import excluded)", [b["cpu"] for b in builds], "s"))
    print(_row("import mockserver's app", [b["import"] for b in builds], "s"))
    print(_row("create_app peak RSS", [b["rss"] for b in builds], "MB"))
    print(_row("console script to first health answer", [s["ready"] for s in serves], "s"))
    print(_row("console script CPU time to first health answer", [s["cpu"] for s in serves], "s"))
    print(_row("server RSS (master + worker)", [s["rss"] for s in serves], "MB"))
    print(_row("server PSS (master + worker, shared pages once)", [s["pss"] for s in serves], "MB"))
    print(_row(f"first request (GET {first_path(args.spec)})", [s["first"] for s in serves], "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
