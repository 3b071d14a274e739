"""The open-files limit (`ulimit -n`) raised at start-up to what the server's bounds need: with
the usual soft limit of 1 024, 300 idle connections no longer shut the health endpoint out;
a hard limit too low is named in one warning line."""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from support import MOCKSERVER, free_port

from mockserver.serving.descriptors import needed
from mockserver.settings import Settings


@contextmanager
def limited(soft: int, hard: int) -> Iterator[tuple[int, list[str]]]:
    """The console script started with that open-files limit; its port, then its log."""
    port = free_port()
    log: list[str] = []
    process = subprocess.Popen(
        [str(MOCKSERVER), "--port", str(port), "--seed-records", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/_mock/health", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        yield port, log
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
        log.extend(output.splitlines())


def soft_limit_of_the_worker(port: int) -> int:
    answer = requests.get(f"http://127.0.0.1:{port}/_mock/health", timeout=5)
    assert answer.status_code == 200
    pids = subprocess.run(
        ["pgrep", "-f", f"mockserver --port {port} "], capture_output=True, text=True, check=True
    ).stdout.split()
    worker = max(int(pid) for pid in pids)  # forked after the master
    for line in Path(f"/proc/{worker}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open files limit")


def test_a_soft_limit_of_1024_is_raised_and_idle_connections_leave_room(tmp_path: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # this machine's: 20 000
    raised = (
        needed(Settings().threads)
        if hard == resource.RLIM_INFINITY
        else min(needed(Settings().threads), hard)
    )
    assert raised > 400  # room for the 300 held below and the server's own
    with limited(128, hard) as (port, log):
        assert soft_limit_of_the_worker(port) == raised
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/_mock/health", timeout=5)
            assert answer.status_code == 200
        finally:
            for sock in held:
                sock.close()
    assert f"open files limit (ulimit -n) raised from 128 to {raised}" in "\n".join(log)


def test_a_hard_limit_too_low_is_said_once_at_start_up() -> None:
    with limited(256, 256) as (port, log):
        assert soft_limit_of_the_worker(port) == 256
    warned = [line for line in log if "open files limit (ulimit -n) is 256" in line]
    assert len(warned) == 1, "\n".join(log)
    assert "WARNING" in warned[0]
    assert os.environ.get("MOCKSERVER_THREADS") is None  # the default --threads: 512
    assert "--threads 512" in warned[0]
