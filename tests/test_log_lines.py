"""A request's log line: queued as a light record when the server's own handler is the only
one (`log.RequestRecord`), a `logging.LogRecord` for any other listener; the same text and
JSON fields either way; and a forked process writes its own lines."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator

import pytest

from mockserver import log

EXTRAS = {"record": "AUD-1", "warnings": [], "error": "bad\r\nINFO  forged"}


@pytest.fixture
def restored() -> Iterator[None]:
    handlers, level, propagate = log.logger.handlers[:], log.logger.level, log.logger.propagate
    yield
    for handler in log.logger.handlers:
        if isinstance(handler, log._BatchHandler):
            handler.stop_writer()
    log.logger.handlers[:], log.logger.propagate = handlers, propagate
    log.logger.setLevel(level)
    log._Stderr.stream = None


def _configured(log_format: str) -> io.StringIO:
    log.configure(log_format, "info")
    written = io.StringIO()
    log._Stderr.stream = written  # type: ignore[assignment]
    return written


def test_the_servers_handler_gets_the_line_as_text(restored: None) -> None:
    written = _configured("text")
    log.request_line("GET", "/public/v1/x", 200, 1.234, EXTRAS)
    log.request_line("GET", "/public/v1/y", 0, 2.0, {})
    log.flush()
    first, second = written.getvalue().splitlines()
    assert first.endswith(
        'INFO  GET /public/v1/x 200 1.2ms record=AUD-1 error="bad\\r\\nINFO  forged"'
    )
    assert second.endswith("INFO  GET /public/v1/y --- 2.0ms")


def test_the_servers_handler_gets_the_json_fields(restored: None) -> None:
    written = _configured("json")
    log.request_line("POST", "/public/v1/x", 201, 1.234, EXTRAS)
    log.flush()
    entry = json.loads(written.getvalue())
    assert entry["level"] == "info"
    assert entry["message"].startswith("POST /public/v1/x 201 1.2ms record=AUD-1")
    assert {k: entry[k] for k in ("method", "target", "status", "ms", "record")} == {
        "method": "POST",
        "target": "/public/v1/x",
        "status": 201,
        "ms": 1.23,
        "record": "AUD-1",
    }
    assert "warnings" not in entry  # empty extras are left out


def test_another_listener_gets_a_logging_record_with_the_same_line(
    restored: None, caplog: pytest.LogCaptureFixture
) -> None:
    _configured("text")
    log.logger.propagate = True  # caplog listens at the root
    with caplog.at_level(logging.INFO, logger="mockserver"):
        log.request_line("GET", "/public/v1/x", 200, 1.234, EXTRAS)
    record = next(r for r in caplog.records if r.name == "mockserver")
    assert isinstance(record, logging.LogRecord)
    assert record.getMessage() == (
        'GET /public/v1/x 200 1.2ms record=AUD-1 error="bad\r\nINFO  forged"'
    )
    assert record.fields["record"] == "AUD-1"  # type: ignore[attr-defined]


def test_no_line_below_the_level(restored: None) -> None:
    written = _configured("text")
    log.logger.setLevel(logging.WARNING)
    log.request_line("GET", "/public/v1/x", 200, 1.0, {})
    log.flush()
    assert written.getvalue() == ""


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_writes_its_own_lines(restored: None) -> None:
    """Forked with the parent's writer thread running (which the child has not)."""
    read, write = os.pipe()
    log.configure("text", "info")
    log._Stderr.stream = io.StringIO()  # type: ignore[assignment]
    log.request_line("GET", "/public/v1/parent", 200, 1.0, {})  # the parent's writer runs
    log.flush()
    pid = os.fork()
    if pid == 0:  # the child: its lines reach its stream without an explicit flush
        try:
            log._Stderr.stream = os.fdopen(write, "w")  # type: ignore[assignment]
            log.request_line("GET", "/public/v1/child", 200, 1.0, {})
            for handler in log.logger.handlers:
                assert isinstance(handler, log._BatchHandler)
                assert handler._writer is not None
                assert handler._writer.is_alive()
                handler._stopping.wait(0.5)  # the child's writer writes it meanwhile
            os._exit(0)
        except BaseException:
            os._exit(1)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(read) as child:
        text = child.read()
    assert os.waitstatus_to_exitcode(status) == 0
    assert "GET /public/v1/child 200" in text
    assert "/public/v1/parent" not in text
