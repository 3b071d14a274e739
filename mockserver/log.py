"""Logs for a person: one line per request, start-up and progress messages; text or JSON."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any, TextIO

logger = logging.getLogger("mockserver")


class _Stderr:
    """The process's stderr as it was at start-up, even once the WSGI server redirects fd 2."""

    stream: TextIO | None = None

    def write(self, text: str) -> int:
        return (self.stream or sys.stderr).write(text)

    def flush(self) -> None:
        (self.stream or sys.stderr).flush()


def keep_stderr() -> None:
    """Keep writing logs to today's stderr (uWSGI sends its own messages to /dev/null)."""
    _Stderr.stream = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1, encoding="utf-8")


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
    handler = logging.StreamHandler(_Stderr())
    if log_format == "json":
        handler.setFormatter(_JSONFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-5s %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def request_line(
    method: str, target: str, status: int, millis: float, extras: dict[str, Any]
) -> None:
    """`POST /public/v1/audit/records 201 1.2ms record=AUD-… warnings="…"`."""
    if not logger.isEnabledFor(logging.INFO):
        return
    text = " ".join(f"{k}={_quote(v)}" for k, v in extras.items() if v)
    logger.info(
        "%s %s %d %.1fms%s",
        method,
        target,
        status,
        millis,
        f" {text}" if text else "",
        extra={
            "fields": {
                "method": method,
                "target": target,
                "status": status,
                "ms": round(millis, 2),
                **{k: v for k, v in extras.items() if v},
            }
        },
    )


def _quote(value: Any) -> str:
    if isinstance(value, dict):
        value = "; ".join(f"{k}: {' '.join(map(str, v))}" for k, v in value.items())
    elif isinstance(value, list):
        value = "; ".join(map(str, value))
    text = str(value).replace('"', "'")
    return f'"{text}"' if " " in text else text
