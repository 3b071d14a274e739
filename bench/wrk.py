"""Running wrk and reading its text report (`--latency`)."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_PERCENTILE = re.compile(rf"^\s*(50|75|90|99)%\s+{_TIME}\s*$", re.MULTILINE)
_LATENCY_AVG = re.compile(rf"^\s*Latency\s+{_TIME}\s+{_TIME}\s+{_TIME}", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
)


@dataclass
class Load:
    """One wrk invocation."""

    url: str
    script: str  # "post.lua" or "get.lua", in bench/
    body_file: Path | None = None
    connections: int = 16
    threads: int = 2
    duration: float = 10.0
    timeout: float = 10.0

    def command(self, wrk: str) -> list[str]:
        command = [
            wrk,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{max(1, round(self.duration))}s",  # wrk takes whole seconds
            f"--timeout={max(1, round(self.timeout))}s",
            "--latency",
            "-s",
            str(BENCH / self.script),
            self.url,
        ]
        if self.body_file is not None:
            command += ["--", str(self.body_file)]
        return command


@dataclass
class Result:
    """What wrk reported; times in milliseconds."""

    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    avg_ms: float = 0.0
    max_ms: float = 0.0
    p50_ms: float = 0.0
    p75_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(
        default_factory=lambda: {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    )
    raw: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _millis(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def parse(text: str) -> Result:
    """Read wrk's report; raises ValueError when it has no Requests/sec line (wrk failed)."""
    rps = _RPS.search(text)
    if rps is None:
        raise ValueError(f"not a wrk report:\n{text}")
    result = Result(rps=float(rps.group(1)), raw=text)
    for percent, value, unit in _PERCENTILE.findall(text):
        setattr(result, f"p{percent}_ms", _millis(value, unit))
    latency = _LATENCY_AVG.search(text)
    if latency:
        result.avg_ms = _millis(latency.group(1), latency.group(2))
        result.max_ms = _millis(latency.group(5), latency.group(6))
    done = _REQUESTS.search(text)
    if done:
        result.requests = int(done.group(1))
        result.seconds = _millis(done.group(2), done.group(3)) / 1000
    non_2xx = _NON_2XX.search(text)
    if non_2xx:
        result.non_2xx = int(non_2xx.group(1))
    socket = _SOCKET.search(text)
    if socket:
        connect, read, write, timeout = (int(n) for n in socket.groups())
        result.socket_errors = {
            "connect": connect,
            "read": read,
            "write": write,
            "timeout": timeout,
        }
    return result


def run(wrk: str, load: Load) -> Result:
    """Run wrk once and parse what it printed."""
    done = subprocess.run(
        load.command(wrk),
        capture_output=True,
        text=True,
        timeout=load.duration + load.timeout + 60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse(done.stdout)
