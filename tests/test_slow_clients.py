"""Slow clients, delays and stopping, against the console script: slowloris connections and
slow uploads leave the server answering; a delay ends when its client leaves, and at SIGTERM;
SIGTERM takes at most the grace whatever is in flight, and what `docker stop` does (SIGTERM,
SIGKILL 10 s later) to the image's command leaves a whole state file.

The bounds on time here are liveness checks (generous), not speed figures: those are
bench/slow_clients.py's."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import requests
from support import AUTH, CLOSE, MOCKSERVER, RECORDS, Server, free_port, new_record

from mockserver.serving.stop import SHUTDOWN_GRACE

StartServer = Callable[..., Server]
ROOT = Path(__file__).resolve().parent.parent
TOKEN = AUTH["Authorization"]


def raw(port: int, head: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(head)
    return connection


@contextmanager
def slow_clients(port: int, slowloris: int, uploaders: int) -> Iterator[list[socket.socket]]:
    """Connections that send their headers, or their body, a byte at a time and never end."""
    opened = [
        raw(port, b"GET /_mock/health HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(slowloris)
    ]
    upload = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    ).encode()
    opened += [raw(port, upload) for _ in range(uploaders)]
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            for connection in opened:
                with suppress(OSError):
                    connection.send(b" ")

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    try:
        yield opened
    finally:
        stop.set()
        feeder.join()
        for connection in opened:
            connection.close()


def test_health_and_the_api_answer_while_slow_clients_hold_connections(
    start_server: StartServer,
) -> None:
    server = start_server()
    with slow_clients(server.port, slowloris=100, uploaders=8) as held:
        time.sleep(1.5)  # every one connected and trickling
        for _ in range(5):
            health = requests.get(f"{server.url}/_mock/health", headers=CLOSE, timeout=2)
            assert health.status_code == 200
        made = requests.post(server.url + RECORDS, json=new_record(), headers=AUTH, timeout=2)
        assert made.status_code == 201
        read = requests.get(f"{server.url}{RECORDS}/{made.json()['id']}", headers=AUTH, timeout=2)
        assert read.status_code == 200
        assert all(connection.fileno() != -1 for connection in held)


def test_a_slow_upload_still_gets_its_answer(start_server: StartServer) -> None:
    """The body read before the request's turn is the whole body, however slowly it came."""
    server = start_server()
    body = json.dumps(new_record()).encode()
    head = (
        f"POST {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    connection = raw(server.port, head)
    for start in range(0, len(body), len(body) // 4 + 1):
        time.sleep(0.5)
        connection.sendall(body[start : start + len(body) // 4 + 1])
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    connection.close()
    assert answer.startswith(b"HTTP/1.1 201")


def test_delayed_requests_whose_clients_left_free_their_threads(start_server: StartServer) -> None:
    """64 requests delayed 120 s, their clients gone after 1 s: each ends (499 in the log)
    within a second of its client leaving, and the others are answered."""
    server = start_server("--threads", "70")
    head = (
        f"GET {RECORDS} HTTP/1.1\r\nHost: x\r\nAuthorization: {TOKEN}\r\n"
        "Prefer: delay=120000\r\n\r\n"
    ).encode()
    waiting = [raw(server.port, head) for _ in range(64)]
    time.sleep(1)
    for connection in waiting:
        connection.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(" 499 " in line for line in server.log) < 64:
        time.sleep(0.1)
    assert sum(" 499 " in line for line in server.log) == 64, "\n".join(server.log)
    with requests.Session() as session:  # 30 at once: more than the 6 threads left free
        answers = [session.get(server.url + RECORDS, headers=AUTH, timeout=5) for _ in range(30)]
    assert {answer.status_code for answer in answers} == {200}
    journal = requests.get(f"{server.url}/_mock/requests?limit=200", timeout=5).json()["data"]
    assert sum(entry["status"] == 499 for entry in journal) == 64


def test_sigterm_with_a_30_s_delay_in_flight_exits_within_the_grace(
    start_server: StartServer,
) -> None:
    """The delay ends at SIGTERM (its request is answered), the server exits at once."""
    server = start_server()
    outcome: list[object] = []

    def delayed() -> None:
        answer = requests.get(
            server.url + RECORDS, headers={**AUTH, "Prefer": "delay=30000"}, timeout=40
        )
        outcome.append(answer.status_code)

    client = threading.Thread(target=delayed)
    client.start()
    time.sleep(1)  # in, and waiting
    started = time.monotonic()
    assert server.stop() == 0
    took = time.monotonic() - started
    client.join()
    assert outcome == [200]
    assert took < SHUTDOWN_GRACE + 2, f"SIGTERM took {took:.1f} s"


def test_sigterm_cuts_what_is_still_in_flight_after_the_grace(start_server: StartServer) -> None:
    """A slow upload that never ends holds the stop for the grace, not longer."""
    server = start_server()
    with slow_clients(server.port, slowloris=8, uploaders=2):
        time.sleep(1)
        started = time.monotonic()
        assert server.stop() == 0
        took = time.monotonic() - started
    assert took < SHUTDOWN_GRACE + 3, f"SIGTERM took {took:.1f} s"
    assert any("still in flight" in line for line in server.log), "\n".join(server.log)


def dockerfile_command() -> tuple[list[str], dict[str, str]]:
    """The image's command and its ENV, read from the Dockerfile."""
    text = (ROOT / "Dockerfile").read_text()
    command = json.loads(re.search(r"^CMD (\[.*\])$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    env_block = re.search(r"^ENV (.*?)(?=\n\S|\n\n)", text, re.MULTILINE | re.DOTALL)
    assert env_block is not None
    pairs = shlex.split(env_block.group(1).replace("\\\n", " "))
    env = dict(pair.split("=", 1) for pair in pairs)
    return command, env


def test_docker_stop_leaves_a_whole_state_file(tmp_path: Path) -> None:
    """What `docker stop` does to the image's command (`mockserver`, PID 1 of its container):
    SIGTERM, then SIGKILL 10 s later if it still runs. With a 30 s delay, slow clients and
    writes in flight, the server exits by itself within the grace and the state file holds
    every record made."""
    command, env = dockerfile_command()
    assert command == ["mockserver"]
    port = free_port()
    state = tmp_path / "state.jsonl"
    env = {**os.environ, **env, "MOCKSERVER_PORT": str(port), "MOCKSERVER_STATE_FILE": str(state)}
    env["PATH"] = f"{MOCKSERVER.parent}:{env['PATH']}"
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/_mock/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        made = [
            requests.post(url + RECORDS, json=new_record(), headers=AUTH, timeout=5).json()["id"]
            for _ in range(20)
        ]
        delayed = threading.Thread(
            target=lambda: requests.get(
                url + RECORDS, headers={**AUTH, "Prefer": "delay=30000"}, timeout=40
            ),
            daemon=True,
        )
        delayed.start()
        with slow_clients(port, slowloris=20, uploaders=2):
            time.sleep(1)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read().decode() if process.stdout else ""
    assert process.returncode == 0, output  # it stopped by itself, before the SIGKILL
    lines = state.read_text().splitlines()
    assert json.loads(lines[-1])[0] == "end"
    restarted = Server(["--state-file", str(state)]).start()
    try:
        for record in made:
            got = requests.get(
                f"{restarted.api_url}/audit/records/{record}", headers=AUTH, timeout=5
            )
            assert got.status_code == 200
    finally:
        restarted.stop()
