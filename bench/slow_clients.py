"""Slow clients: does a handful of them take the server down?

    .venv/bin/python bench/slow_clients.py [--baseline REV] [--rounds 3] [--duration 6]

Per round, a fresh server of this checkout (and, with `--baseline`, one of that revision,
checked out under bench/.tools as bench/gate.py does) is measured twice: once without
attackers ("clean"), then with them open ("attacked"): `--slowloris` connections (default
200) sending their headers one byte a second, never ending them, and `--uploaders` (default
8) POSTs declaring a 100 000-byte body and sending it one byte a second (and with
`--delayed N`, N requests with `Prefer: delay=120000` whose clients leave after 1 s; with
`--held N`, N requests with `Prefer: delay=120000` whose clients stay, held for the whole
attacked phase: against the server's `--threads` 512, 2 000 of them held every thread before
a delay held none). Each time
`/_mock/health` is probed every 50 ms on a new connection, first alone for half the duration,
then while 8 normal clients run (wrk, `GET /public/v1/audit/records/{id}`, 8 connections).
Prints per server the health latency p50/p99 while attacked, alone and under the normal
clients (a probe that times out after 2 s counts as 2 000 ms; the timeouts are counted), the
normal clients' req/s clean and attacked, and the attacked/clean ratio of the same round:
medians over the rounds. The issue's figures: health < 100 ms, ratio >= 0.80 while attacked.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import targets as tg
import wrk
from gate import first_id, start, worktree
from targets import log

HOST = "127.0.0.1"
PROBE_TIMEOUT = 2.0
PROBE_EVERY = 0.05
RECORDS = "/public/v1/audit/records"


class Attackers:
    """Slowloris connections and slow uploaders, each fed one byte a second by one thread."""

    def __init__(
        self, port: int, slowloris: int, uploaders: int, delayed: int = 0, held: int = 0
    ) -> None:
        self.port = port
        self.sockets: list[tuple[socket.socket, bytes]] = []
        self.refused = 0
        self.dropped = 0
        self._stop = threading.Event()
        delay = (
            f"GET {RECORDS} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {tg.TOKEN}\r\n"
            "Prefer: delay=120000\r\n\r\n"
        ).encode()
        self._leaving = []  # delayed requests whose clients leave after a second
        self.held = _opened(port, delay, held)  # delayed requests whose clients stay
        self.refused += held - len(self.held)
        for _ in range(delayed):
            with contextlib.suppress(OSError):
                self._leaving.append(socket.create_connection((HOST, port), timeout=5))
                self._leaving[-1].sendall(delay)
        for _ in range(slowloris):
            self._open(f"GET /_mock/health HTTP/1.1\r\nHost: {HOST}\r\n".encode(), b"X-Slow: x")
        head = (
            f"POST {RECORDS} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {tg.TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(uploaders):
            self._open(head.encode(), b"[" + b" " * 99_999)
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _open(self, head: bytes, rest: bytes) -> None:
        try:
            connection = socket.create_connection((HOST, self.port), timeout=5)
            connection.sendall(head)
            connection.setblocking(False)
            self.sockets.append((connection, rest))
        except OSError:
            self.refused += 1

    def _feed(self) -> None:
        position = 0
        while not self._stop.wait(1.0):
            for connection in self._leaving:
                connection.close()
            self._leaving.clear()
            for connection, rest in list(self.sockets):
                try:
                    connection.send(rest[position % len(rest) : position % len(rest) + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    self.sockets.remove((connection, rest))
                    self.dropped += 1
            position += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection, _ in self.sockets:
            connection.close()
        for connection in self.held:
            connection.close()


def _answered(connections: list[socket.socket]) -> int:
    """How many of the connections have an answer (or an end) to read."""
    answered = 0
    for connection in connections:
        connection.setblocking(False)
        try:
            connection.recv(1, socket.MSG_PEEK)
            answered += 1
        except BlockingIOError:
            pass
        except OSError:
            answered += 1
    return answered


def _opened(port: int, request: bytes, count: int) -> list[socket.socket]:
    """`count` connections that sent `request`, opened 32 at a time (a server whose threads
    are all taken leaves new ones in its listen queue, or refuses them)."""

    def one(_: int) -> socket.socket | None:
        try:
            connection = socket.create_connection((HOST, port), timeout=5)
            connection.sendall(request)
            return connection
        except OSError:
            return None

    with ThreadPoolExecutor(32) as pool:
        return [c for c in pool.map(one, range(count)) if c is not None]


@dataclass
class Prober:
    """Probes /_mock/health on a new connection every PROBE_EVERY seconds, in a thread."""

    port: int
    millis: list[float] = field(default_factory=list)
    timeouts: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        request = f"GET /_mock/health HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        while not self._stop.wait(PROBE_EVERY):
            started = time.perf_counter()
            try:
                with socket.create_connection((HOST, self.port), timeout=PROBE_TIMEOUT) as c:
                    c.settimeout(PROBE_TIMEOUT)
                    c.sendall(request.encode())
                    if not c.recv(16).startswith(b"HTTP/1.1 200"):
                        raise OSError("not a 200")
                self.millis.append((time.perf_counter() - started) * 1000)
            except OSError:
                self.timeouts += 1
                self.millis.append(PROBE_TIMEOUT * 1000)

    def stop(self) -> tuple[float, float, int]:
        """p50, p99 (ms) and the timeouts."""
        self._stop.set()
        self._thread.join()
        ordered = sorted(self.millis) or [PROBE_TIMEOUT * 1000]
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
        return statistics.median(ordered), p99, self.timeouts


@dataclass
class Phase:
    rps: float
    health_p50: float
    health_p99: float
    health_timeouts: int
    alone_p50: float = 0.0  # health with no normal clients
    alone_p99: float = 0.0


def measure(port: int, url: str, wrk_bin: str, duration: float) -> Phase:
    prober = Prober(port)
    time.sleep(duration / 2)
    alone_p50, alone_p99, alone_timeouts = prober.stop()
    prober = Prober(port)
    load = wrk.Load(url, "get.lua", None, connections=8, threads=2, duration=duration, timeout=4)
    try:
        rps = wrk.run(wrk_bin, load).rps
    except subprocess.TimeoutExpired:  # wrk never got a connection: nothing was answered
        log("  wrk got no connection (every thread of the server held)")
        rps = 0.0
    p50, p99, timeouts = prober.stop()
    return Phase(rps, p50, p99, timeouts + alone_timeouts, alone_p50, alone_p99)


def one_server(target: tg.Target, args: argparse.Namespace, wrk_bin: str) -> tuple[Phase, Phase]:
    port = int(target.base.rsplit(":", 1)[1])
    url = f"{target.base}{RECORDS}/{first_id(target)}"
    wrk.run(wrk_bin, wrk.Load(url, "get.lua", None, connections=8, duration=1))  # warm-up
    clean = measure(port, url, wrk_bin, args.duration)
    attackers = Attackers(port, args.slowloris, args.uploaders, args.delayed, args.held)
    try:
        time.sleep(2)  # every attacker connected and sending
        attacked = measure(port, url, wrk_bin, args.duration)
        if attackers.held:
            held = attackers.held
            log(f"  held {len(held)} delayed requests, {_answered(held)} answered meanwhile")
    finally:
        attackers.close()
    if attackers.refused or attackers.dropped:
        log(f"  attackers refused {attackers.refused}, dropped by the server {attackers.dropped}")
    return clean, attacked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", help="also measure this revision (e.g. main's commit)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--slowloris", type=int, default=200)
    parser.add_argument("--uploaders", type=int, default=8)
    parser.add_argument(
        "--delayed",
        type=int,
        default=0,
        help="requests delayed 120 s whose clients leave after 1 s",
    )
    parser.add_argument(
        "--held",
        type=int,
        default=0,
        help="requests delayed 120 s whose clients stay, for the whole attacked phase",
    )
    args = parser.parse_args()
    wrk_bin = tg.ensure_wrk()
    results = tg.BENCH / "results"
    results.mkdir(exist_ok=True)
    sources = {"current": tg.ROOT}
    if args.baseline:
        sources["baseline"] = worktree(args.baseline)
    runs: dict[str, list[tuple[Phase, Phase]]] = {name: [] for name in sources}
    for number in range(1, args.rounds + 1):
        for name, source in sources.items():
            processes = tg.Processes()
            try:
                target = start(processes, results, f"slow-{name}", source, 100)
                clean, attacked = one_server(target, args, wrk_bin)
            finally:
                processes.stop_all()
            runs[name].append((clean, attacked))
            log(
                f"round {number} {name}: clean {clean.rps:.0f} req/s, health p99 "
                f"{clean.health_p99:.1f} ms; attacked {attacked.rps:.0f} req/s, health p99 "
                f"{attacked.health_p99:.1f} ms ({attacked.health_timeouts} timeouts)"
            )
    print(
        f"{args.slowloris} slowloris + {args.uploaders} slow uploaders + {args.delayed} "
        f"delayed requests whose clients left + {args.held} held; medians of "
        f"{args.rounds} rounds, {args.duration:.0f} s each"
    )
    print("health while attacked: alone (no normal clients), then under the normal clients")
    print(
        f"{'server':<10}{'alone p50':>11}{'alone p99':>11}{'load p50':>11}{'load p99':>11}"
        f"{'timeouts':>9}{'clean rps':>10}{'attacked':>9}{'ratio':>7}"
    )
    for name, pairs in runs.items():
        med = statistics.median
        print(
            f"{name:<10}{med(a.alone_p50 for _, a in pairs):>9.1f}ms"
            f"{med(a.alone_p99 for _, a in pairs):>9.1f}ms"
            f"{med(a.health_p50 for _, a in pairs):>9.1f}ms"
            f"{med(a.health_p99 for _, a in pairs):>9.1f}ms"
            f"{med(a.health_timeouts for _, a in pairs):>9.0f}"
            f"{med(c.rps for c, _ in pairs):>10.0f}{med(a.rps for _, a in pairs):>9.0f}"
            f"{med(a.rps / c.rps for c, a in pairs):>7.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
