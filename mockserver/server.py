"""Running the app on a production WSGI server: gunicorn, one process, many threads.

One worker process keeps the in-memory store shared by every request; its threads serve
requests concurrently (delays and slow clients do not block others). The app is built before
gunicorn starts, so a bad spec or tokens file stops the command with a clear message.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from mockserver import log
from mockserver.settings import Settings


class StartupError(Exception):
    """The server cannot start; the message says why."""


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return self.application


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port(host: str, port: int) -> None:
    """Fail fast, with a clear message, when the address is taken or cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is already in use") from exc
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def serve(app: Flask, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM (in-flight requests finish on SIGTERM)."""
    url = f"http://{bind_address(settings.host, settings.port)}"

    def when_ready(_server: Any) -> None:
        log.logger.info("ready: %s (health: %s/_mock/health)", url, url)

    options = {
        "bind": [bind_address(settings.host, settings.port)],
        "workers": 1,
        "worker_class": "gthread",
        "threads": settings.threads,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "graceful_timeout": 10,
        "keepalive": 5,
        "preload_app": True,
        "when_ready": when_ready,
        "proc_name": "mockserver",
    }
    _Gunicorn(app, options).run()
