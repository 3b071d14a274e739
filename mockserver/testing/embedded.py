"""`MockServer`: the mock in this process, on a free loopback port, served by a background
thread (werkzeug's threaded server): a real socket, so any HTTP client, the official client
included, can talk to it, and connection faults happen on it for real.

    with MockServer(seed_records=50) as server:
        client = MPTClient.from_config(authentication=..., base_url=server.api_url)
        server.client.fail(503, times=2, path="/public/v1/audit/records")
"""

from __future__ import annotations

import threading
from dataclasses import fields, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from mockserver.app import create_app
from mockserver.settings import Settings
from mockserver.testing.client import Client

_PATHS = ("spec", "tokens", "scenario", "coverage_report")


class _QuietHandler(WSGIRequestHandler):
    """The app logs one line per request itself; werkzeug's access log would repeat it."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class MockServer:
    """A running mock server; `Settings` fields as keywords (`seed_records=`, `tokens=`...)."""

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown MockServer option(s): {', '.join(unknown)}")
        for name in _PATHS:
            if isinstance(options.get(name), str):
                options[name] = Path(options[name])
        self.settings = replace(settings or Settings(port=0), **options)
        self.app = create_app(self.settings)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MockServer:
        if self._server is None:
            self._server = make_server(
                self.settings.host,
                self.settings.port,
                self.app,
                threaded=True,
                request_handler=_QuietHandler,
            )
            self._thread = threading.Thread(
                target=self._server.serve_forever, name="mockserver", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not running: call start() or use `with`")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        """The server's root, e.g. `http://127.0.0.1:40123`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The API's base URL (`.../public/v1`), ready for `MPTClient.from_config`."""
        return f"{self.url}/public/v1"

    def client(self, session: str | None = None) -> Client:
        """The control API, on the default session or the one named."""
        return Client(self.url, session, admin_token=self.settings.admin_token)

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
