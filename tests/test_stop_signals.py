"""SIGTERM to every process of the server at once (`pkill -f mockserver`, `kill -- -PGID`,
systemd's default `KillMode=control-group`), not only to the master as `docker stop` does:
the server stops as gracefully, whatever served its connections. uWSGI's own SIGTERM handler
in a worker left the worker, and so its master, running for good in about half such stops
after some load. SIGHUP (a terminal's hangup) stops it the same way."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from redis_server import RedisServer
from support import AUTH, RECORDS, Server, new_record

from mockserver.serving.stop import SHUTDOWN_GRACE

StartServer = Callable[..., Server]


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (uWSGI's workers of its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # ended meanwhile
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def load(server: Server, seconds: float) -> int:
    """Kept-alive GETs and POSTs from 8 clients for `seconds`; the records made."""
    made: list[int] = []

    def client() -> None:
        with requests.Session() as session:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                answer = session.post(server.url + RECORDS, json=new_record(), headers=AUTH)
                assert answer.status_code == 201, answer.text
                made.append(1)
                session.get(server.url + RECORDS + "?limit=5", headers=AUTH).raise_for_status()

    clients = [threading.Thread(target=client) for _ in range(8)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    return len(made)


def terminate_all(server: Server, signum: signal.Signals = signal.SIGTERM) -> float:
    """`signum` to the master and each worker; the seconds the master took to exit."""
    assert server.process is not None
    master = server.process.pid
    workers = children(master)
    assert workers, "no worker found"
    started = time.monotonic()
    for pid in (master, *workers):
        os.kill(pid, signum)
    try:
        server.process.wait(timeout=SHUTDOWN_GRACE + 15)
    except Exception:
        left = [pid for pid in (master, *workers) if Path(f"/proc/{pid}").exists()]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        pytest.fail(f"still running {SHUTDOWN_GRACE + 15} s after {signum.name}: {left}")
    return time.monotonic() - started


@pytest.mark.parametrize("serving", ["loop", "threads"])
def test_sigterm_to_every_process_stops_the_server_and_saves_its_state(
    start_server: StartServer, tmp_path: Path, serving: str
) -> None:
    state = tmp_path / "state.jsonl"
    for _ in range(3):  # the old hang came in about half the stops: three in a row
        state.unlink(missing_ok=True)
        server = start_server("--serving", serving, "--state-file", str(state))
        made = load(server, 1.5)
        took = terminate_all(server)
        assert server.process is not None
        assert server.process.returncode == 0, server.log[-20:]
        assert took < SHUTDOWN_GRACE + 2, f"SIGTERM took {took:.1f} s"
        lines = state.read_text().splitlines()  # whole, with every record made
        assert lines[-1].startswith('["end"'), lines[-1]
        assert sum(line.startswith('["item"') for line in lines) >= made


def test_sigterm_to_every_process_stops_two_workers_on_redis(
    start_server: StartServer, redis_server: RedisServer, redis_prefix: str
) -> None:
    for _ in range(3):
        server = start_server(
            "--store", redis_server.url, "--store-prefix", redis_prefix, "--processes", "2"
        )
        assert server.process is not None
        assert len(children(server.process.pid)) == 2
        load(server, 1.5)
        took = terminate_all(server)
        assert server.process.returncode == 0, server.log[-20:]
        assert took < SHUTDOWN_GRACE + 2, f"SIGTERM took {took:.1f} s"


def test_sigterm_to_a_worker_alone_stops_the_whole_server(
    start_server: StartServer, tmp_path: Path
) -> None:
    """Not a worker that uWSGI's master replaces, which would start again without the records
    made since start-up (and overwrite the state file without them at the next stop)."""
    state = tmp_path / "state.jsonl"
    server = start_server("--seed-records", "0", "--state-file", str(state))
    assert server.process is not None
    made = load(server, 0.5)
    (worker,) = children(server.process.pid)
    os.kill(worker, signal.SIGTERM)
    assert server.process.wait(timeout=SHUTDOWN_GRACE + 15) == 0, server.log[-20:]
    lines = state.read_text().splitlines()
    assert sum(line.startswith('["item",{"id":"AUD-') for line in lines) == made


def test_a_worker_killed_is_started_again_and_said(start_server: StartServer) -> None:
    """SIGKILL (the kernel's OOM killer, a crash): uWSGI's master starts another worker; the
    log says what was lost and health counts it, where before the mock went on silently."""
    server = start_server("--seed-records", "3")
    assert server.process is not None
    assert requests.get(f"{server.url}/_mock/health", timeout=10).json()["workerRestarts"] == 0
    made = requests.post(server.url + RECORDS, json=new_record(), headers=AUTH, timeout=10)
    assert made.status_code == 201
    (worker,) = children(server.process.pid)
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 30
    health: dict[str, object] = {}
    while time.monotonic() < deadline:
        try:
            health = requests.get(f"{server.url}/_mock/health", timeout=2).json()
            break
        except requests.RequestException:
            time.sleep(0.1)
    assert health["workerRestarts"] == 1
    assert health["records"] == 3  # the start-up state: the record made is gone, as said
    said: list[str] = []
    while not said and time.monotonic() < deadline:  # the log is written by its own thread
        said = [line for line in server.log if "started again" in line]
        time.sleep(0.05)
    assert len(said) == 1, "\n".join(server.log)
    assert "WARNING" in said[0]
    assert "worker 1 started again (restart 1)" in said[0]
    assert "what it made since is lost" in said[0]


@pytest.mark.parametrize("everyone", [False, True], ids=["master", "every-process"])
def test_sighup_stops_the_server_as_sigterm_does(
    start_server: StartServer, tmp_path: Path, everyone: bool
) -> None:
    """A terminal's hangup reaches every process of its foreground group; uWSGI's master took
    SIGHUP for a reload and ended with exit status 1."""
    state = tmp_path / "state.jsonl"
    server = start_server("--state-file", str(state))
    assert server.process is not None
    made = load(server, 0.5)
    if everyone:
        terminate_all(server, signal.SIGHUP)
    else:
        server.process.send_signal(signal.SIGHUP)
        server.process.wait(timeout=SHUTDOWN_GRACE + 15)
    assert server.process.returncode == 0, server.log[-20:]
    lines = state.read_text().splitlines()
    assert lines[-1].startswith('["end"'), lines[-1]
    assert sum(line.startswith('["item"') for line in lines) >= made
