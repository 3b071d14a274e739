"""The servers under load: installing tools, starting them on free loopback ports, stopping them.

Every process is started in its own session (process group) and registered in `Processes`;
`Processes.stop_all()` ends exactly those groups (SIGINT, then SIGKILL), so a `finally` in the
caller cleans up even after Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TOOLS = BENCH / ".tools"
PRISM_BIN = TOOLS / "node_modules" / ".bin" / "prism"
PRISM_PACKAGE = "@stoplight/prism-cli@5.14"
MOCKSERVER_BIN = ROOT / ".venv" / "bin" / "mockserver"
AUDIT_SPEC = ROOT / "openapi" / "audit.yaml"
MARKETPLACE_SPEC = ROOT.parent / "shared" / "reference" / "marketplace-openapi.json"
TOKEN = "idt:TKN-1234-5678:secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- tools ------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """The wrk binary; installed with apt-get only when it is not on PATH."""
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk not found: installing it with apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update"], check=True)
    subprocess.run([*sudo, "apt-get", "install", "-y", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still not on PATH after apt-get install")
    return found


def ensure_prism() -> Path:
    """Prism 5.14.x under bench/.tools (git-ignored); npm-installed when missing."""
    if not PRISM_BIN.exists():
        log(f"Prism not found: npm install --prefix {TOOLS} {PRISM_PACKAGE}")
        subprocess.run(
            ["npm", "install", "--prefix", str(TOOLS), "--no-audit", "--no-fund", PRISM_PACKAGE],
            check=True,
        )
    return PRISM_BIN


def tool_version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    except OSError as exc:
        return f"unknown ({exc})"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0] if done.stdout or done.stderr else ""
    )


# --- processes --------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Processes:
    """The process groups this run started; `stop_all` ends them and only them."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, command: list[str], output: IO[bytes]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C does not reach it directly
        )
        self.started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 8.0) -> None:
        """SIGINT to the process group (gunicorn and node exit quickly on it), then SIGKILL."""
        if process in self.started:
            self.started.remove(process)
        if process.poll() is not None:
            _kill_group(process.pid, signal.SIGKILL)  # leftovers of an exited leader, if any
            return
        _kill_group(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        _kill_group(process.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for process in list(reversed(self.started)):
            try:
                self.stop(process)
            except (OSError, subprocess.SubprocessError) as exc:  # clean up the others
                log(f"could not stop pid {process.pid}: {exc}")


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def foreign_load() -> list[int]:
    """Pids of wrk processes this run did not start (other people's load on the machine)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            parent = int(fields[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if name == "wrk" and parent != os.getpid():
            found.append(int(stat.parent.name))
    return found


# --- HTTP helpers ------------------------------------------------------------------------------


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, bytes]:
    """(status, body) of one request; HTTP errors are answers too, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until(
    url: str,
    process: subprocess.Popen[bytes],
    timeout: float,
    ok: tuple[int, ...] = (200,),
    headers: dict[str, str] | None = None,
    interval: float = 0.01,
) -> float:
    """Poll `url` until it answers a status in `ok`; the seconds that took (from now)."""
    started = time.perf_counter()
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with status {process.returncode}")
        try:
            status, _ = http("GET", url, headers=headers, timeout=2.0)
            if status in ok:
                return time.perf_counter() - started
        except (OSError, urllib.error.URLError):
            pass
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")
        time.sleep(interval)


# --- the targets --------------------------------------------------------------------------------


@dataclass
class Target:
    """One running server: its name, base URL, process and how long it took to be ready."""

    name: str
    base: str
    process: subprocess.Popen[bytes]
    ready_seconds: float
    log_path: Path


def start_mock(
    processes: Processes,
    logs: Path,
    seed_records: int = 100_000,
    spec: Path | None = None,
    name: str = "mock",
    timeout: float = 180.0,
) -> Target:
    """`mockserver` on a free port; ready when GET /_mock/health answers 200."""
    port = free_port()
    command = [
        str(MOCKSERVER_BIN),
        "--port",
        str(port),
    ]
    if seed_records:
        command += ["--seed-records", str(seed_records), "--faker-seed", "1"]
    if spec is not None:
        command += ["--spec", str(spec)]
    log_path = logs / f"{name}-{port}.log"
    with log_path.open("ab") as output:
        started = time.perf_counter()
        process = processes.spawn(command, output)
    base = f"http://127.0.0.1:{port}"
    wait_until(f"{base}/_mock/health", process, timeout)
    return Target(name, base, process, time.perf_counter() - started, log_path)


def mock_health(target: Target) -> dict[str, object]:
    status, body = http("GET", f"{target.base}/_mock/health")
    if status != 200:
        raise RuntimeError(f"{target.name}: /_mock/health answered {status}")
    found: dict[str, object] = json.loads(body)
    return found


def start_prism(processes: Processes, logs: Path, silent: bool, timeout: float = 120.0) -> Target:
    """`prism mock` of openapi/audit.yaml on a free port; default logging or `-v silent`."""
    name = "prism-silent" if silent else "prism"
    port = free_port()
    command = [str(PRISM_BIN), "mock", "-h", "127.0.0.1", "-p", str(port)]
    if silent:
        command += ["-v", "silent"]
    command.append(str(AUDIT_SPEC.relative_to(ROOT)))
    log_path = logs / f"{name}-{port}.log"
    with log_path.open("ab") as output:
        started = time.perf_counter()
        process = processes.spawn(command, output)
    base = f"http://127.0.0.1:{port}"
    wait_until(
        f"{base}/public/v1/audit/records/AUD-0000-0000-0000-0000",
        process,
        timeout,
        ok=(200, 404),
        headers=AUTH,
        interval=0.05,
    )
    return Target(name, base, process, time.perf_counter() - started, log_path)
