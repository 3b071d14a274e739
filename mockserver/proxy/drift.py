"""The drift report: for each operation and status the upstream answered, how many responses
were seen and how they broke the spec (field, expected, found, one sample, first and last
seen); as JSON for `GET /_mock/drift`, and as JSON or JUnit XML for `--drift-report FILE`.

As with `--coverage-report` (`sessions.tally`), the process that serves is not the one that
stops last: each observation is appended to a sidecar file as it is made, and the report is
written from that file at exit, by uWSGI's master (`python -m mockserver.proxy.drift`) or, served
in-process, by the process's exit handler.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import orjson

from mockserver.contract.response_check import Finding

SAMPLE_CHARS = 2000  # of a response body kept as the sample of a violation


@dataclass
class _Pair:
    """One operation and status: what was seen of it."""

    operation: str | None
    method: str
    path: str
    status: int
    responses: int = 0
    violations: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    sample: str | None = None
    first: float = 0.0
    last: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "operation": self.operation,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "responses": self.responses,
            "violations": list(self.violations.values()),
            "sample": self.sample,
            "firstSeen": _iso(self.first),
            "lastSeen": _iso(self.last),
        }


def observation(
    operation: str | None,
    method: str,
    path: str,
    status: int,
    findings: list[Finding],
    body: bytes,
) -> dict[str, Any]:
    """One upstream response as the report counts it (a line of the sidecar file)."""
    return {
        "operation": operation,
        "method": method,
        "path": path,
        "status": status,
        "violations": [
            {"field": f.field, "expected": f.expected, "found": f.found, "message": f.message}
            for f in findings
        ],
        "sample": body[:SAMPLE_CHARS].decode("utf-8", "replace") if findings else None,
        "at": time.time(),
    }


class Drift:
    """Every upstream response seen, by operation and status."""

    def __init__(self, upstream: str, report: Path | None = None) -> None:
        self.upstream = upstream
        self.report_path = report
        self.owner = os.getpid()
        self._pairs: dict[tuple[str | None, str, str, int], _Pair] = {}
        self._lock = threading.Lock()
        self._fd: int | None = None
        if report is not None:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
            self._fd = os.open(sidecar(report), flags, 0o600)

    def observe(self, seen: dict[str, Any]) -> None:
        self.add(seen)
        if self._fd is not None:
            os.write(self._fd, orjson.dumps(seen) + b"\n")

    def add(self, seen: dict[str, Any]) -> None:
        key = (seen["operation"], seen["method"], seen["path"], seen["status"])
        with self._lock:
            pair = self._pairs.get(key)
            if pair is None:
                pair = self._pairs[key] = _Pair(*key, first=seen["at"])
            pair.responses += 1
            pair.last = seen["at"]
            for v in seen["violations"]:
                found = pair.violations.setdefault(
                    (v["field"], v["expected"], v["found"]), {**v, "count": 0}
                )
                found["count"] += 1
            if seen["violations"] and pair.sample is None:
                pair.sample = seen["sample"]

    def report(self) -> dict[str, Any]:
        with self._lock:
            pairs = [pair.as_json() for pair in self._pairs.values()]
        pairs.sort(key=lambda p: (p["path"], p["method"], p["status"]))
        return {
            "upstream": self.upstream,
            "responses": sum(p["responses"] for p in pairs),
            "violations": sum(v["count"] for p in pairs for v in p["violations"]),
            "operations": pairs,
        }

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sidecar(report: Path) -> Path:
    return report.with_name(f".{report.name}.drift")


def write_report(report: dict[str, Any], path: Path) -> None:
    """JSON (`.json`) or JUnit XML (any other name), written atomically."""
    data = (
        orjson.dumps(report, option=orjson.OPT_INDENT_2)
        if path.suffix == ".json"
        else junit(report)
    )
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    partial.replace(path)


def from_sidecar(path: Path, upstream: str) -> dict[str, Any]:
    """The report of every observation in `path`'s sidecar (a line cut short is left out)."""
    drift = Drift(upstream)
    with sidecar(path).open("rb") as lines:
        for line in lines:
            if line.endswith(b"\n"):
                drift.add(orjson.loads(line))
    return drift.report()


def junit(report: dict[str, Any]) -> bytes:
    """One test case per operation and status, failing when the upstream broke the spec."""
    pairs = report["operations"]
    failed = sum(1 for p in pairs if p["violations"])
    suites = ElementTree.Element("testsuites", name="audit-api upstream drift")
    suite = ElementTree.SubElement(
        suites,
        "testsuite",
        name=f"drift of {report['upstream']}",
        tests=str(len(pairs)),
        failures=str(failed),
        errors="0",
        skipped="0",
    )
    for p in pairs:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=p["operation"] or f"{p['method']} {p['path']}",
            name=f"{p['method']} {p['path']} {p['status']} ({p['responses']} responses)",
        )
        if p["violations"]:
            lines = [
                f"{v['field']}: expected {v['expected']}, found {v['found']} ({v['count']}x)"
                for v in p["violations"]
            ]
            failure = ElementTree.SubElement(case, "failure", message="; ".join(lines))
            failure.text = "\n".join([*lines, "", "sample:", p["sample"] or ""])
    return bytes(ElementTree.tostring(suites, encoding="utf-8", xml_declaration=True))


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def exit_command(report: Path, upstream: str, log_format: str, log_fd: int) -> list[str]:
    """The command uWSGI's master runs at exit (`--exec-as-user-atexit`)."""
    module = "mockserver.proxy.drift"
    return [sys.executable, "-m", module, str(report), upstream, log_format, str(log_fd)]


def main(argv: list[str]) -> int:
    from mockserver import log

    report, upstream, log_format, log_fd = argv
    os.dup2(int(log_fd), 2)  # the server's stderr, which uWSGI's master no longer has
    log.configure(log_format)
    path = Path(report)
    if not sidecar(path).exists():
        return 0
    write_report(from_sidecar(path, upstream), path)
    sidecar(path).unlink(missing_ok=True)
    log.logger.info("drift report written to %s", report)
    log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
