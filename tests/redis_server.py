"""A real `redis-server` (or `valkey-server`) for the tests: on a free loopback port, no
persistence, its data in a temporary directory; stopped and started again on the same port by
the outage tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from support import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
VALKEY_SERVER = shutil.which("valkey-server") or "/usr/bin/valkey-server"
ENGINES = {"redis": REDIS_SERVER, "valkey": VALKEY_SERVER}  # what the store is tested on


@dataclass
class RedisServer:
    """One `redis-server` process, or `valkey-server` (`binary`): `start`, `stop`, `start`
    again keeps its port. With `tls` (a certificate and its key, PEM files) it speaks TLS only,
    on that port, and `url` is a `rediss://` one trusting `ca` (a CA bundle, PEM); with `unix`,
    it listens on a Unix socket in its directory only, and `url` is a `unix://` one."""

    binary: str = REDIS_SERVER
    port: int = field(default_factory=free_port)
    password: str | None = None
    tls: tuple[Path, Path] | None = None
    ca: Path | None = None
    unix: bool = False
    process: subprocess.Popen[bytes] | None = None
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="redis-")))

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.unix:
            return f"unix://{auth}{self.directory / 'redis.sock'}?db=0"
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.ca}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        if self.password:
            command += ["--requirepass", self.password]
        if self.tls:
            certificate, key = self.tls
            command[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            command += ["--tls-cert-file", str(certificate), "--tls-key-file", str(key)]
            command += ["--tls-auth-clients", "no"]
        if self.unix:
            command[1:3] = ["--port", "0", "--unixsocket", str(self.directory / "redis.sock")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_timeout=1).ping()
                return self
            except redis.exceptions.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError((self.directory / "redis.log").read_text()) from None
                time.sleep(0.02)
        raise RuntimeError(f"{self.binary} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


def unique_prefix() -> str:
    """A key prefix of one test's own: tests on the same Redis never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}"


def forget(server: RedisServer, prefix: str) -> None:
    """Every key of a prefix deleted."""
    client = server.client()
    batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(batch), 1000):
        client.delete(*batch[start : start + 1000])
    client.close()


def count_round_trips(monkeypatch: Any) -> list[int]:
    """The round trips of this thread's requests from now on (the answers each read), counted
    at `storage.redis_connection._answers` until `monkeypatch.undo()`; the journal's writer
    thread's are not theirs (`sessions.writer`)."""
    from mockserver.storage import redis_connection

    trips: list[int] = []
    real = redis_connection._answers
    mine = threading.get_ident()

    def counted(connection: Any, packed: bytes, count: int) -> list[Any]:
        if threading.get_ident() == mine:
            trips.append(count)
        return real(connection, packed, count)

    monkeypatch.setattr(redis_connection, "_answers", counted)
    return trips


@dataclass
class HeldWrite:
    """The journal's script calls of a server, spied on: how many entries each wrote; the
    first held (`held` set) until `let_go` is."""

    writes: list[int] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    let_go: threading.Event = field(default_factory=threading.Event)


def hold_first_journal_write(monkeypatch: Any, shared: Any) -> HeldWrite:
    """Spy on `shared`'s (a `sessions.shared.Shared`) journal writes until `monkeypatch.undo()`,
    the first held until `let_go` is set (10 s at most)."""
    spied = HeldWrite()
    real_run = shared.link.run

    def run(script: Any, keys: Any, args: list[Any]) -> Any:
        if script is shared.add:
            spied.writes.append(len(args) - 6 - 2 * int(args[5]))  # the entries after counters
            if len(spied.writes) == 1:
                spied.held.set()
                spied.let_go.wait(10)
        return real_run(script, keys, args)

    monkeypatch.setattr(shared.link, "run", run)
    return spied
