"""Logs for a person: one line per request, start-up and progress messages; text or JSON."""

from __future__ import annotations

import atexit
import collections
import json
import logging
import os
import re
import sys
import threading
import time
from typing import Any, TextIO

logger = logging.getLogger("mockserver")


class _Stderr:
    """The process's stderr as it was at start-up, even once the WSGI server redirects fd 2."""

    stream: TextIO | None = None

    def write(self, text: str) -> int:
        return (self.stream or sys.stderr).write(text)

    def flush(self) -> None:
        (self.stream or sys.stderr).flush()


def keep_stderr() -> int:
    """Keep writing logs to today's stderr (uWSGI sends its own messages to /dev/null);
    its descriptor, which commands the server runs inherit."""
    fd = os.dup(sys.stderr.fileno())
    os.set_inheritable(fd, True)
    _Stderr.stream = os.fdopen(fd, "w", buffering=1, encoding="utf-8")
    return fd


class _BatchHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Hands records to a writer thread that formats and writes them in batches, every 10 ms.

    A request only appends its record to a queue: no lock, no system call. Writing each line
    with its own flush, from eight threads, cost the server a quarter of its throughput.
    """

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._pending: collections.deque[logging.LogRecord | RequestRecord] = collections.deque()
        self._writer: threading.Thread | None = None  # None: the next record starts one
        self._writer_pid = 0  # the process it runs in
        self._stopping = threading.Event()
        self._flushing = threading.Lock()  # the exit flush waits for a batch being written
        self._lock_pid = os.getpid()
        atexit.register(self.flush)
        os.register_at_fork(after_in_child=self._forked)  # uWSGI's fork: `before_fork`

    def handle(self, record: logging.LogRecord | RequestRecord) -> bool:
        self._pending.append(record)
        if self._writer is None:  # first record in this process (or since `stop_writer`)
            try:
                self._writer_pid = os.getpid()
                self._writer = threading.Thread(target=self._write_forever, name="log-writer")
                self._writer.daemon = True
                self._writer.start()
            except RuntimeError:  # the interpreter is exiting: the exit flush writes it
                pass
        return True

    def _forked(self) -> None:
        """In a child forked by Python: the parent's writer thread is not in it."""
        self._writer = None

    def stop_writer(self) -> None:
        """Write what is pending and end the writer thread; the next record starts one."""
        if self._writer is not None and self._writer_pid == os.getpid():
            self._stopping.set()
            self._writer.join()
            self._stopping.clear()
        self._writer, self._writer_pid = None, 0
        self.flush()

    def _write_forever(self) -> None:
        while not self._stopping.wait(0.01):
            self.flush()

    def flush(self) -> None:
        if self._lock_pid != os.getpid():  # a forked child: the parent's writer may hold it
            self._lock_pid, self._flushing = os.getpid(), threading.Lock()
        with self._flushing:
            lines = []
            while self._pending:
                lines.append(self.format(self._pending.popleft()) + "\n")  # type: ignore[arg-type]
            if lines:
                self.stream.write("".join(lines))
            self.stream.flush()


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escaped(found: re.Match[str]) -> str:
    return found.group().encode("unicode_escape").decode("ascii")


class _TextFormatter(logging.Formatter):
    """`2026-11-26T11:33:16 INFO  message`; the time text is made once a second."""

    _second = -1
    _stamp = ""

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        message = record.getMessage()
        if _CONTROL.search(message):  # a CR/LF a request sent must not start a forged line
            message = _CONTROL.sub(_escaped, message)
        line = f"{self._stamp} {record.levelname:<5} {message}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(log_format: str = "text", level: str = "info") -> None:
    """Send the server's logs to stderr, as text lines or JSON objects."""
    handler = _BatchHandler(_Stderr())
    if log_format == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(_TextFormatter())
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    # what each record would look up and nobody prints: the caller's frame, thread, process
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # type: ignore[attr-defined]


def flush() -> None:
    for handler in logger.handlers:
        handler.flush()


def before_fork() -> None:
    """Write what is pending and stop the writer thread. A process forked while another of its
    threads holds the GIL (the writer wakes every 10 ms) starts with a GIL nobody will release:
    uWSGI's worker then hangs at birth, never serving."""
    for handler in logger.handlers:
        if isinstance(handler, _BatchHandler):
            handler.stop_writer()
        else:
            handler.flush()


class RequestRecord:
    """A request's log line as the request leaves it: the writer thread makes it text (as it
    does a `logging.LogRecord`, whose making costs a request several times more: it is made
    only when a handler other than the server's own is listening)."""

    __slots__ = ("created", "extras", "method", "millis", "status", "target")
    levelname = "INFO"
    levelno = logging.INFO
    exc_info = None
    exc_text = None
    stack_info = None

    def __init__(
        self, method: str, target: str, status: int, millis: float, extras: dict[str, Any]
    ) -> None:
        self.created = time.time()
        self.method, self.target, self.status, self.millis = method, target, status, millis
        self.extras = extras  # only those with a value

    def getMessage(self) -> str:  # noqa: N802 (logging.LogRecord's name)
        text = " ".join(f"{k}={_quote(v)}" for k, v in self.extras.items())
        return (
            f"{self.method} {self.target} {self.status or '---'} {self.millis:.1f}ms"
            f"{' ' + text if text else ''}"
        )

    @property
    def fields(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target,
            "status": self.status,
            "ms": round(self.millis, 2),
            **self.extras,
        }


def request_line(
    method: str, target: str, status: int, millis: float, extras: dict[str, Any]
) -> None:
    """`POST /public/v1/audit/records 201 1.2ms record=AUD-… warnings="…"`."""
    if not logger.isEnabledFor(logging.INFO):
        return
    record = RequestRecord(method, target, status, millis, {k: v for k, v in extras.items() if v})
    handlers = logger.handlers
    if len(handlers) == 1 and isinstance(handlers[0], _BatchHandler) and not logger.propagate:
        handlers[0].handle(record)  # the server's own handler alone: queued as it is
        return
    logger.info(record.getMessage(), extra={"fields": record.fields})


def _quote(value: Any) -> str:
    if isinstance(value, dict):
        value = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in value.items())
    elif isinstance(value, list):
        value = "; ".join(map(str, value))
    text = str(value).replace('"', "'")
    return f'"{text}"' if " " in text else text
