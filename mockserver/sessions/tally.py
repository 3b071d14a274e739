"""The tally behind `--coverage-report`: every answer appended to a file as it is counted,
and the report made from it when the server stops.

The process that stops last is not the one that served: uWSGI's master outlives its worker,
runs no Python exit handlers, and its worker skips its own when it is stopped with a
connection open. So the worker appends one line per answer (a few microseconds), and the
master runs `python -m mockserver.sessions.tally` once the worker is gone, which writes the report
from the file whatever happened to the worker. Served in-process, the report is written by
the process's exit handler from the same file.

The file stays small: each process appends to its own (`.NAME.tally.PID`), and once it has
appended `COMPACT_BYTES` it writes its counts whole instead (one line per operation, status
and fault, with its count; written beside and renamed over, so a kill leaves one or the other).
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from pathlib import Path

import orjson

from mockserver.contract.router import Operation
from mockserver.sessions.coverage import Coverage

COMPACT_BYTES = 1 << 20  # appended by a process before it writes its counts whole instead

Key = tuple[str | None, int, str | None]  # operation, status, fault


class Tally:
    def __init__(self, report: Path, compact_bytes: int = COMPACT_BYTES) -> None:
        self.report = report
        self.owner = os.getpid()  # the process that made it: it, or its command, writes the report
        self.compact_bytes = compact_bytes
        for old in tally_files(report):  # a former run's
            old.unlink(missing_ok=True)
        self._lock = threading.Lock()
        self._pid = 0  # the process whose file `_fd` is (a forked worker opens its own)
        self._fd = -1
        self._counts: Counter[Key] = Counter()
        self._appended = 0
        self._open()  # the report is written (all zeros) even when nothing was answered

    @property
    def path(self) -> Path:
        """This process's file."""
        return tally_path(self.report, os.getpid())

    def add(self, operation: str | None, status: int, fault: str | None) -> None:
        line = orjson.dumps((operation, status, fault)) + b"\n"
        with self._lock:
            if self._pid != os.getpid():
                self._open()
            self._counts[(operation, status, fault)] += 1
            os.write(self._fd, line)
            self._appended += len(line)
            if self._appended > self.compact_bytes:
                self._compact()

    def _open(self) -> None:
        """This process's own file (the counts of a parent are not its own)."""
        self._pid, self._counts, self._appended = os.getpid(), Counter(), 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def _compact(self) -> None:
        """The counts written whole, renamed over the file of lines."""
        path = self.path
        beside = path.with_name(path.name + ".new")
        lines = (orjson.dumps([*key, count]) + b"\n" for key, count in self._counts.items())
        beside.write_bytes(b"".join(lines))
        os.replace(beside, path)
        os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._appended = 0

    def close(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                os.close(self._fd)
                self._pid = 0


def tally_path(report: Path, pid: int) -> Path:
    return report.with_name(f".{report.name}.tally.{pid}")


def tally_files(report: Path) -> list[Path]:
    """Every process's file (written counts whole aside, `.new`, are left out)."""
    return sorted(report.parent.glob(f".{report.name}.tally.*[0-9]"))


def write_report(report: Path, operations: list[Operation]) -> None:
    """The report of every answer in the tally files, which are then removed."""
    total = Coverage(operations)
    for tally in tally_files(report):
        with tally.open("rb") as lines:
            for line in lines:
                if line.endswith(b"\n"):  # a line cut short by a killed worker is left out
                    operation, status, fault, *count = orjson.loads(line)
                    total.count(operation, status, fault, count[0] if count else 1)
        tally.unlink(missing_ok=True)
    total.write(report)


def exit_command(spec: Path, report: Path, log_format: str, log_fd: int) -> list[str]:
    """The command uWSGI's master runs at exit (`--exec-as-user-atexit`)."""
    return [
        sys.executable,
        "-m",
        "mockserver.sessions.tally",
        str(spec),
        str(report),
        log_format,
        str(log_fd),
    ]


def main(argv: list[str]) -> int:
    from mockserver import log
    from mockserver.contract.router import Router
    from mockserver.contract.spec import load_spec

    spec, report, log_format, log_fd = argv
    os.dup2(int(log_fd), 2)  # the server's stderr, which uWSGI's master no longer has
    log.configure(log_format)
    if not tally_files(Path(report)):
        return 0
    write_report(Path(report), Router(load_spec(Path(spec)).document).operations)
    log.logger.info("coverage report written to %s", report)
    log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
