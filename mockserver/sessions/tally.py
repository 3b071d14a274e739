"""The tally behind `--coverage-report`: every answer appended to a file as it is counted,
and the report made from it when the server stops.

The process that stops last is not the one that served: uWSGI's master outlives its worker,
runs no Python exit handlers, and its worker skips its own when it is stopped with a
connection open. So the worker appends one line per answer (a few microseconds), and the
master runs `python -m mockserver.sessions.tally` once the worker is gone, which writes the report
from the file whatever happened to the worker. Served in-process, the report is written by
the process's exit handler from the same file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson

from mockserver.contract.router import Operation
from mockserver.sessions.coverage import Coverage


class Tally:
    def __init__(self, report: Path) -> None:
        self.report = report
        self.path = tally_path(report)
        self.owner = os.getpid()  # the process that made it: it, or its command, writes the report
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)

    def add(self, operation: str | None, status: int, fault: str | None) -> None:
        os.write(self._fd, orjson.dumps((operation, status, fault)) + b"\n")

    def close(self) -> None:
        os.close(self._fd)


def tally_path(report: Path) -> Path:
    return report.with_name(f".{report.name}.tally")


def write_report(report: Path, operations: list[Operation]) -> None:
    """The report of every answer in the tally; the tally file is then removed."""
    total = Coverage(operations)
    tally = tally_path(report)
    with tally.open("rb") as lines:
        for line in lines:
            if line.endswith(b"\n"):  # a line cut short by a killed worker is left out
                total.count(*orjson.loads(line))
    total.write(report)
    tally.unlink(missing_ok=True)


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
    if not tally_path(Path(report)).exists():
        return 0
    write_report(Path(report), Router(load_spec(Path(spec)).document).operations)
    log.logger.info("coverage report written to %s", report)
    log.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
