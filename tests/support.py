"""Constants and helpers the tests share (fixtures are in conftest.py)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
PUBLISHED_SPEC = REFERENCE / "audit-openapi.json"
MARKETPLACE_SPEC = REFERENCE / "marketplace-openapi.json"
TOKEN = "idt:TKN-1234-5678:secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RECORDS = "/public/v1/audit/records"
EVENT_TYPES = "/public/v1/audit/event-types"
MOCKSERVER = Path(sys.executable).with_name("mockserver")
# no kept-alive connection left open: a server's graceful stop waits for those (up to 5 s)
CLOSE = {"Connection": "close"}


def reference(path: Path) -> Path:
    """A file of ../shared/reference (the platform's own documents), when this checkout has it."""
    if not path.exists():  # one reason for all, so pytest -ra shows one line
        pytest.skip(f"the platform's reference documents are not in {REFERENCE} (see README)")
    return path


def new_record(**extra: Any) -> dict[str, Any]:
    """A valid body for POST /records."""
    body: dict[str, Any] = {
        "event": "platform.commerce.order.created",
        "object": {"id": "ORD-1111-2222-3333", "name": "Order 1", "objectType": "Order"},
        "details": "Order created",
    }
    body.update(extra)
    return body


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A `mockserver` process on a loopback port, started as a user would start it."""

    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[str] | None = None
    log: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/public/v1"

    def start(self, timeout: float = 60.0) -> Server:  # a loaded machine: seeding takes long
        command = [str(MOCKSERVER), "--port", str(self.port), "--check-responses", *self.args]
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        # read the output while the server runs: a full pipe would block its logging
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()
        try:
            return self._wait_until_ready(timeout)
        except BaseException:
            self.stop()  # never leave a server behind
            raise

    def _wait_until_ready(self, timeout: float) -> Server:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                raise RuntimeError("mockserver exited:\n" + "\n".join(self.log))
            if self._answers():
                self._warm(deadline)
                return self
            time.sleep(0.05)
        raise RuntimeError("mockserver did not become ready")

    def _warm(self, deadline: float) -> None:
        """Wait for the worker's validators (openapi-core, loaded in the background once the
        server answers): a request it explains (a session name that breaks its pattern) waits
        for them, so a test's first request is timed as any other."""
        probe = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=max(deadline - time.monotonic(), 2)
        )
        try:
            probe.request("GET", "/_mock/health?session=!", headers=CLOSE)
            probe.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass  # the test's own requests say what is wrong
        finally:
            probe.close()

    def _answers(self) -> bool:
        """Whether the health endpoint answers (401: up, with an admin token). The probe's
        connection is closed whatever happens: one left open (say, in the reference cycle of a
        timeout's traceback) would hold the server's graceful stop for 5 s."""
        probe = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
        try:
            probe.request("GET", "/_mock/health", headers=CLOSE)
            return probe.getresponse().status in (200, 401)
        except (OSError, http.client.HTTPException):  # not listening yet, or forking
            return False
        finally:
            probe.close()

    def _drain(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line.rstrip("\n"))

    def health(self) -> dict[str, Any]:
        health = requests.get(f"{self.url}/_mock/health", timeout=5, headers=CLOSE)
        answer: dict[str, Any] = health.json()
        return answer

    def stop(self) -> int:
        """SIGTERM, then the exit code; the whole output is then in `log`."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        return int(self.process.returncode)


def nonconforming(server: Server) -> list[str]:
    return [line for line in server.log if "does not conform" in line]
