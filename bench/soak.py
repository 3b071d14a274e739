"""Soak: 16 writers and 4 readers on one mock for a fixed time, then every promise checked.

    .venv/bin/python bench/soak.py [--duration 60] [--max-records N] [--journal-size N]
    .venv/bin/python bench/soak.py --store redis --processes 2 --restart-redis [N]

With `--store redis` the mock keeps its state on a redis-server of the soak's own (append-only
file on, so a restart keeps every write it acknowledged), with `--processes N` workers;
`--restart-redis` stops Redis at half-time (SIGTERM: it writes its file and exits) and starts
it again a second later; `--restart-redis N` does so N times, evenly spread (two: at a third
and at two thirds of the run, so the memory check's second half holds a restart that comes
after another one). The answers while it is down are the documented store-lost 503s
(a problem whose detail starts "The store Redis at"): counted apart, never a problem; the
rules' `fired` stays exact, `matched` may count a request whose answer was a store-lost 503
(its decision was taken before the store went), and coverage and journal miss the requests
that could not be written (the check then allows that many).

Starts `mockserver` on a free loopback port with small bounds (`--max-records`,
`--journal-size`) that the run fills early, one server thread per client connection (a kept-
alive connection holds a uWSGI thread: see bench/README.md), an admin token (passed in the
environment) and a fixed `--fault-seed`; registers three fault rules in the session `soak`
(two with `times`); then runs, for `--duration` seconds, writer threads (POSTs of distinct
valid ~1.3 KB records, each writer its own API token) and reader threads (GET by id of
written records, RQL lists, totals, streamed reads), all over keep-alive connections
(http.client), every request timed and its answer checked. A line of progress every 5 s
(stderr); the worker's RSS and the session's counts are sampled every second.

After the load: the fault rules' counters, the session's coverage and its journal are compared
with what the clients saw; then every 201 is read back. The store keeps the newest
`--max-records` records (the oldest are evicted), so "every 201 is readable" means: the total
is min(201s, bound); every stored record is one of ours; none was evicted while a record
certainly created after it was kept (the only order the clients can prove: a record whose 201
arrived before another's POST was sent was stored before it); every stored record reads back
by id equal to its 201 and to what was sent; evicted ones are 404. Prints the checks and exits
1 if one fails. Raw figures go to bench/results/soak-<time>.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import random
import secrets
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import targets as tg
from payload import valid_body
from report import table
from targets import log

RECORDS = "/public/v1/audit/records"
SESSION = "soak"
SLOW_SECONDS = 1.0  # no request may take longer
FLAT_MB = 4.0  # memory is flat: RSS growth over the second half of the run at most this
EVENTS = (
    "platform.commerce.order.created",
    "platform.commerce.order.updated",
    "platform.commerce.order.completed",
)
CREATE, GET, LIST = "createAuditRecord", "getAuditRecord", "listAuditRecords"
FAULTED_WRITER, SPREAD_WRITER, FAULTED_READER = "writer-00", "writer-01", "reader-00"
SPREAD_PROBABILITY = 0.02  # rule 3 fires all run long: the journal's window holds some
EVICTED_PROBES = 200  # evicted records read back (each must be a 404)
STORE_LOST = b'"detail":"The store Redis at '  # the documented 503 of a lost store


# --- what the writers send ------------------------------------------------------------------


def token_id(writer: int) -> str:
    return f"TKN-0000-{writer:04d}"


def object_id(writer: int, seq: int) -> str:
    return f"ORD-{writer:04d}-{seq // 10000:04d}-{seq % 10000:04d}"


def record_body(template: dict[str, Any], writer: int, seq: int) -> dict[str, Any]:
    """The record writer `writer` sends as its `seq`-th POST: the same every time it is asked
    (so what was sent is rebuilt for the check, not kept), distinct from every other one."""
    order = {"id": object_id(writer, seq), "name": f"Soak order {writer}-{seq}"}
    order["objectType"] = "Order"
    return {
        **template,
        "event": EVENTS[seq % len(EVENTS)],
        "summary": f"Soak record {seq} of writer {writer}",
        "details": f"writer {writer} record {seq}: {template['details']}",
        "object": order,
        "documents": {"order": {**order, "status": "Processing", "revision": seq}},
    }


def digest(record: Any) -> bytes:
    """A record's content, whatever the key order of its JSON."""
    return hashlib.blake2b(
        orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).digest()


@dataclass(slots=True)
class Created:
    """A 201: the record's id, who sent it, and when (before sending, after the answer)."""

    id: str
    writer: int
    seq: int
    sent: float
    received: float
    digest: bytes


# --- the clients -----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int  # 0: no answer (a connection error or a timeout)
    headers: dict[str, str]
    body: bytes
    seconds: float
    error: str = ""
    request_id: str = ""


class Connection:
    """One keep-alive connection (http.client); reopened after an error, which is counted, and
    before a request when the server has closed it meanwhile (uWSGI closes a connection idle
    for 4 s: a client checks, as urllib3 does, rather than send into a closed socket)."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self.reopened = 0  # connections the server had closed before a request

    def call(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Answer:
        started = time.perf_counter()
        if self._conn is not None and _dropped(self._conn.sock):
            self.reopened += 1
            self.close()
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            self._conn.request(method, path, body=body, headers=headers)
            response = self._conn.getresponse()
            data = response.read()
            found = {k.lower(): v for k, v in response.getheaders()}
            if response.will_close:
                self.close()
            return Answer(response.status, found, data, time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return Answer(0, {}, b"", time.perf_counter() - started, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _dropped(sock: socket.socket | None) -> bool:
    """An idle kept-alive socket that is readable has been closed by the server (or holds
    bytes nobody asked for): either way it cannot carry the next request."""
    return sock is not None and bool(select.select([sock], [], [], 0)[0])


@dataclass
class Tally:
    """What one client thread saw."""

    name: str
    latencies: dict[str, list[float]] = field(default_factory=dict)  # by kind of request
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    statuses: dict[str, int] = field(default_factory=dict)  # request id -> status
    scripted: list[int] = field(default_factory=list)  # ordinals of the answers a rule made
    scripted_requests: set[str] = field(default_factory=set)  # and their request ids
    ordinal: int = 0  # requests a fault rule can match (POSTs, or GETs by id)
    problems: int = 0
    problem_notes: list[str] = field(default_factory=list)
    transport_errors: int = 0
    unscripted_5xx: int = 0
    store_lost: int = 0  # the documented 503 of a store out of reach (Redis restarted)
    slow: int = 0
    requests: int = 0

    def problem(self, note: str) -> None:
        self.problems += 1
        if len(self.problem_notes) < 5:
            self.problem_notes.append(f"{self.name}: {note}")


class Client:
    """A writer or a reader: its connection, headers and tally."""

    def __init__(self, name: str, port: int, token: str) -> None:
        self.name = name
        self.connection = Connection(port)
        self.tally = Tally(name)
        self.headers = {
            "Authorization": f"Bearer {token}",
            "X-Mock-Session": SESSION,
            "X-Soak-Client": name,
        }
        self._count = 0

    def call(
        self,
        kind: str,
        operation: str,
        method: str,
        path: str,
        body: bytes | None = None,
        extra: dict[str, str] | None = None,
    ) -> Answer:
        self._count += 1
        request_id = f"{self.name}/{self._count}"
        headers = {**self.headers, "X-Soak-Request": request_id, **(extra or {})}
        if body is not None:
            headers["Content-Type"] = "application/json"
        answer = self.connection.call(method, path, headers, body)
        answer.request_id = request_id
        tally = self.tally
        tally.requests += 1
        tally.latencies.setdefault(kind, []).append(answer.seconds)
        tally.statuses[request_id] = answer.status
        if answer.seconds > SLOW_SECONDS:
            tally.slow += 1
            tally.problem(f"{method} {path[:80]} took {answer.seconds:.2f} s")
        if answer.status == 0:
            tally.transport_errors += 1
            tally.problem(f"{method} {path[:80]}: {answer.error}")
        else:
            tally.answers[(operation, answer.status)] += 1
        return answer

    def scripted(self, answer: Answer, ordinal: int) -> None:
        """An answer a fault rule made: the `ordinal`-th request the rule could match."""
        self.tally.scripted.append(ordinal)
        self.tally.scripted_requests.add(answer.request_id)

    def unexpected(self, answer: Answer, what: str) -> None:
        """An answer the load did not script: a 5xx is counted as such, anything else as a
        problem (a 0 status is a transport error, already counted); the documented store-lost
        503 is counted apart."""
        if answer.status == 503 and answer.body.find(STORE_LOST) >= 0:
            self.tally.store_lost += 1
            return
        if answer.status >= 500:
            self.tally.unscripted_5xx += 1
        if answer.status:
            self.tally.problem(f"{what}: {answer.status} {answer.body[:200]!r}")


@dataclass
class Shared:
    """What the threads share: the 201s in the order they arrived, and the stop signal."""

    created: list[Created] = field(default_factory=list)  # list.append is atomic
    stop: threading.Event = field(default_factory=threading.Event)
    bound: int = 0
    started_iso: str = ""


def writer(client: Client, number: int, shared: Shared, template: dict[str, Any]) -> None:
    """POST distinct records as fast as the answers come; keep every 201's id and content."""
    tally = client.tally
    seq = 0
    while not shared.stop.is_set():
        seq += 1
        raw = orjson.dumps(record_body(template, number, seq))
        sent = time.perf_counter()
        tally.ordinal = seq
        answer = client.call("POST", CREATE, "POST", RECORDS, raw)
        if answer.status == 201:
            stored = orjson.loads(answer.body)
            done = Created(stored["id"], number, seq, sent, time.perf_counter(), digest(stored))
            shared.created.append(done)
        elif (
            answer.status == 503
            and client.name in (FAULTED_WRITER, SPREAD_WRITER)
            and STORE_LOST not in answer.body
        ):
            client.scripted(answer, seq)
        else:
            client.unexpected(answer, f"POST #{seq}")
    client.connection.close()


def reader(client: Client, number: int, shared: Shared) -> None:
    """GETs by id (the faulted reader's may be scripted 503s), `eq(object.id)` and
    `eq(actor.id)` lists, totals, an event filter, and a streamed read every 9th request."""
    plan = ("get", "object", "get", "actor", "get", "total", "get", "event", "stream")
    rng = random.Random(number)
    step = 0
    while not shared.stop.is_set():
        known = len(shared.created)
        if not known:
            time.sleep(0.01)
            continue
        # from the newest half of the bound only: certainly still stored when it is read
        record = shared.created[rng.randrange(max(0, known - shared.bound // 2), known)]
        kind = plan[step % len(plan)]
        step += 1
        READS[kind](client, shared, record, known)
    client.connection.close()


def read_by_id(client: Client, shared: Shared, record: Created, known: int) -> None:
    tally = client.tally
    tally.ordinal += 1
    answer = client.call("GET by id", GET, "GET", f"{RECORDS}/{record.id}")
    if answer.status == 200:
        if digest(orjson.loads(answer.body)) != record.digest:
            client.tally.problem(f"GET {record.id}: not the record its 201 answered")
    elif answer.status == 503 and client.name == FAULTED_READER and STORE_LOST not in answer.body:
        client.scripted(answer, tally.ordinal)
    else:
        client.unexpected(answer, f"GET {record.id}")


def read_object(client: Client, shared: Shared, record: Created, known: int) -> None:
    path = f"{RECORDS}?eq(object.id,'{object_id(record.writer, record.seq)}')"
    answer = client.call("list", LIST, "GET", path)
    if answer.status != 200:
        client.unexpected(answer, path)
        return
    found = orjson.loads(answer.body)
    ids = [item["id"] for item in found["data"]]
    if found["$meta"]["pagination"]["total"] != 1 or ids != [record.id]:
        client.tally.problem(f"{path}: {found['$meta']} {ids}, expected [{record.id}]")


def read_actor(client: Client, shared: Shared, record: Created, known: int) -> None:
    actor = token_id(record.writer)
    path = f"{RECORDS}?eq(actor.id,'{actor}')&order=-timestamp&limit=20"
    answer = client.call("list", LIST, "GET", path)
    if answer.status != 200:
        client.unexpected(answer, path)
        return
    found = orjson.loads(answer.body)
    data, total = found["data"], found["$meta"]["pagination"]["total"]
    stamps = [item["timestamp"] for item in data]
    if (
        not 1 <= total <= shared.bound
        or any(item["actor"]["id"] != actor for item in data)
        or stamps != sorted(stamps, reverse=True)
    ):
        client.tally.problem(f"{path}: total {total}, {len(data)} items, not all as asked")


def read_total(client: Client, shared: Shared, record: Created, known: int) -> None:
    """The total lies between the 201s already received (capped by the bound) and the bound."""
    answer = client.call("list", LIST, "GET", f"{RECORDS}?limit=0")
    if answer.status != 200:
        client.unexpected(answer, "limit=0")
        return
    total = orjson.loads(answer.body)["$meta"]["pagination"]["total"]
    if not min(known, shared.bound) <= total <= shared.bound:
        client.tally.problem(f"limit=0: total {total}, {known} 201s seen, bound {shared.bound}")


def read_event(client: Client, shared: Shared, record: Created, known: int) -> None:
    event = EVENTS[record.seq % len(EVENTS)]
    path = f"{RECORDS}?and(eq(event,'{event}'),ge(timestamp,{shared.started_iso}))&limit=5"
    answer = client.call("list", LIST, "GET", path)
    if answer.status != 200:
        client.unexpected(answer, path)
        return
    data = orjson.loads(answer.body)["data"]
    if not data or any(item["event"] != event for item in data):
        client.tally.problem(f"{path}: {len(data)} items, not all as asked")


def read_stream(client: Client, shared: Shared, record: Created, known: int) -> None:
    actor = token_id(record.writer)
    path = f"{RECORDS}?eq(actor.id,'{actor}')&limit=50"
    extra = {"MPT-Streaming": "true", "Accept": "application/jsonl"}
    answer = client.call("stream", LIST, "GET", path, extra=extra)
    if answer.status != 200:
        client.unexpected(answer, f"stream {path}")
        return
    items = [orjson.loads(line) for line in answer.body.splitlines() if line.strip()]
    declared = int(answer.headers.get("mpt-item-count", "-1"))
    if len(items) != declared or not 1 <= declared <= 50:
        client.tally.problem(f"stream {path}: {len(items)} items, {declared} declared")
    elif any(item["actor"]["id"] != actor for item in items):
        client.tally.problem(f"stream {path}: an item of another actor")


READS: dict[str, Callable[[Client, Shared, Created, int], None]] = {
    "get": read_by_id,
    "object": read_object,
    "actor": read_actor,
    "total": read_total,
    "event": read_event,
    "stream": read_stream,
}


# --- the server ------------------------------------------------------------------------------


@dataclass
class Server:
    process: Any
    base: str
    port: int
    admin: dict[str, str]
    log_path: Path

    def control(self, method: str, path: str, body: Any = None, timeout: float = 120) -> Any:
        data = None if body is None else orjson.dumps(body)
        headers = {**self.admin, "Content-Type": "application/json"}
        sep = "&" if "?" in path else "?"
        url = f"{self.base}/_mock{path}{sep}session={SESSION}"
        status, answer = tg.http(method, url, data, headers, timeout=timeout)
        if status >= 300:
            raise RuntimeError(f"{method} /_mock{path}: {status} {answer[:300]!r}")
        return orjson.loads(answer) if answer else None


def start_server(processes: tg.Processes, logs: Path, args: argparse.Namespace) -> Server:
    """`mockserver` on a free loopback port with the soak's bounds; the admin token is passed
    in the environment (not on the command line, which every user of the machine can read)."""
    port = tg.free_port()
    command = [str(tg.MOCKSERVER_BIN), "--port", str(port), *server_flags(args)]
    token = secrets.token_urlsafe(24)
    env = {**os.environ, "MOCKSERVER_ADMIN_TOKEN": token}
    log_path = logs / f"soak-{port}.log"
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            command,
            cwd=tg.ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        processes.started.append(process)
    admin = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    tg.wait_until(f"{base}/_mock/health", process, 120, headers=admin)
    return Server(process, base, port, admin, log_path)


def server_flags(args: argparse.Namespace) -> list[str]:
    return [
        "--max-records",
        str(args.max_records),
        "--journal-size",
        str(args.journal_size),
        "--fault-seed",
        "1",
        *(["--threads", str(args.server_threads)] if args.server_threads else []),
        *(["--store", args.store_url, "--store-prefix", "soak"] if args.store_url else []),
        *(["--processes", str(args.processes)] if args.processes > 1 else []),
    ]


def fault_rules(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Rule 1: half of writer-00's POSTs, at random (seeded), answer 503, until `times` is used
    up. Rule 2: after 20 of reader-00's GETs by id, the next `times` answer 503. Rule 3: 2 % of
    writer-01's POSTs answer 503, all run long (no `times`)."""
    return [
        {
            "method": "POST",
            "path": RECORDS,
            "when": {"headers": {"X-Soak-Client": FAULTED_WRITER}},
            "status": 503,
            "headers": {"Retry-After": "0"},
            "probability": 0.5,
            "times": args.post_faults,
        },
        {
            "method": "GET",
            "path": RECORDS + "/{id}",
            "when": {"headers": {"X-Soak-Client": FAULTED_READER}},
            "status": 503,
            "after": 20,
            "times": args.get_faults,
        },
        {
            "method": "POST",
            "path": RECORDS,
            "when": {"headers": {"X-Soak-Client": SPREAD_WRITER}},
            "status": 503,
            "probability": SPREAD_PROBABILITY,
        },
    ]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def workers(master: int) -> list[int]:
    """The uWSGI worker process(es): the children of the server's process."""
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


@dataclass
class OwnRedis:
    """A redis-server of the soak's own on a free loopback port, with its append-only file
    (fsync every second; a SIGTERM writes it whole): a restart keeps what it acknowledged."""

    processes: tg.Processes
    directory: Path
    port: int = field(default_factory=tg.free_port)
    process: Any = None
    restarts: list[dict[str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        import redis

        self.directory.mkdir(parents=True, exist_ok=True)
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
        command += ["--dir", str(self.directory)]
        with (self.directory / "redis.log").open("ab") as output:
            self.process = self.processes.spawn(command, output)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_timeout=1).ping()
                return self
            except redis.exceptions.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart(self, down: float, started: float) -> None:
        """SIGTERM (Redis writes its file and exits), `down` seconds without it, started again."""
        stopped = time.perf_counter()
        self.processes.started.remove(self.process)
        self.process.terminate()
        self.process.wait(timeout=60)
        gone = time.perf_counter()
        time.sleep(down)
        self.start()
        back = time.perf_counter()
        self.restarts.append(
            {
                "stop_at_s": stopped - started,
                "gone_at_s": gone - started,
                "back_at_s": back - started,
            }
        )
        log(f"redis-server restarted: down from {gone - started:.1f} s to {back - started:.1f} s")


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """One second of the run: the worker's memory and the session's counts."""

    t: float
    worker_mb: float
    master_mb: float
    workers: list[int]
    records: int
    journal: int
    requests: int
    created: int
    health_ms: float  # GET /_mock/health (-1 records: no answer)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def monitor(server: Server, shared: Shared, tallies: list[Tally], duration: float) -> list[Sample]:
    """Every second: the worker's RSS and the session's record and journal counts; a line of
    progress every 5 s."""
    samples: list[Sample] = []
    started = time.perf_counter()
    last_line, last_requests = started, 0
    while True:
        now = time.perf_counter()
        elapsed = now - started
        if elapsed >= duration:
            return samples
        pids = workers(server.process.pid)
        asked = time.perf_counter()
        try:
            health = server.control("GET", "/health", timeout=5)
        except (OSError, RuntimeError) as exc:  # a timeout too: the check reports it
            log(f"GET /_mock/health: {exc}")
            health = {"records": -1, "journal": -1}
        health_ms = (time.perf_counter() - asked) * 1000
        requests = sum(t.requests for t in tallies)
        sample = Sample(
            round(elapsed, 2),
            round(sum(rss_mb(pid) for pid in pids), 2),
            round(rss_mb(server.process.pid), 2),
            pids,
            health["records"],
            health["journal"],
            requests,
            len(shared.created),
            round(health_ms, 2),
        )
        samples.append(sample)
        if now - last_line >= 5 or len(samples) == 1:
            rate = (requests - last_requests) / (now - last_line) if last_requests else 0.0
            problems = sum(t.problems for t in tallies)
            log(
                f"{elapsed:5.1f}s {rate:6.0f} req/s  201s {sample.created:>7,}  "
                f"stored {sample.records:>6,}  journal {sample.journal:>6,}  "
                f"worker RSS {sample.worker_mb:6.1f} MB  problems {problems}"
            )
            last_line, last_requests = now, requests
        time.sleep(max(0.0, 1.0 - (time.perf_counter() - now)))


def load(
    args: argparse.Namespace, server: Server, shared: Shared, own: OwnRedis | None = None
) -> tuple[list[Client], list[Sample], float]:
    """The writers and readers for `--duration` seconds, the monitor in this thread."""
    template = valid_body()
    writers = [
        Client(f"writer-{n:02d}", server.port, f"idt:{token_id(n)}:soak")
        for n in range(args.writers)
    ]
    readers = [
        Client(f"reader-{n:02d}", server.port, "idt:TKN-9999-0000:soak-reader")
        for n in range(args.readers)
    ]
    threads = [
        threading.Thread(target=writer, args=(c, n, shared, template), name=c.name)
        for n, c in enumerate(writers)
    ] + [
        threading.Thread(target=reader, args=(c, n, shared), name=c.name)
        for n, c in enumerate(readers)
    ]
    clients = writers + readers
    started = time.perf_counter()
    if own is not None and args.restart_redis:
        threads.append(restarts(own, args, started))
    for thread in threads:
        thread.start()
    try:
        samples = monitor(server, shared, [c.tally for c in clients], args.duration)
    finally:
        shared.stop.set()
        for thread in threads:
            thread.join()
    return clients, samples, time.perf_counter() - started


def restarts(own: OwnRedis, args: argparse.Namespace, started: float) -> threading.Thread:
    """A thread restarting Redis `--restart-redis` times, evenly spread over the run."""

    def run() -> None:
        for n in range(1, args.restart_redis + 1):
            at = started + args.duration * n / (args.restart_redis + 1)
            time.sleep(max(0.0, at - time.perf_counter()))
            own.restart(args.redis_down, started)

    return threading.Thread(target=run, name="restarts", daemon=True)


# --- the checks ------------------------------------------------------------------------------


def check_faults(
    args: argparse.Namespace,
    server: Server,
    rule_ids: list[str],
    tallies: dict[str, Tally],
) -> list[Check]:
    """The rules' counters, the coverage and the journal against what the clients saw; read
    before any other request reaches the session."""
    rules = {rule["id"]: rule for rule in server.control("GET", "/faults")["data"]}
    coverage = server.control("GET", "/coverage")
    journal = server.control("GET", f"/requests?limit={args.journal_size}")["data"]
    counts = {
        rid: server.control("POST", "/requests/count", {"fault": rid})["count"] for rid in rule_ids
    }
    count_503 = server.control("POST", "/requests/count", {"status": 503})["count"]
    checks = []

    # rules 1 and 3: a writer's POSTs at random (the writer sends one at a time, so the server
    # sees its POSTs in the order it sent them, and a rule stops matching once used up)
    for number, rid, name, times in (
        (1, rule_ids[0], FAULTED_WRITER, args.post_faults),
        (3, rule_ids[2], SPREAD_WRITER, None),
    ):
        rule, w = rules[rid], tallies[name]
        used_up = times is not None and len(w.scripted) == times
        matched = w.scripted[-1] if used_up else w.ordinal
        ok = (
            rule["fired"] == len(w.scripted) <= (times or len(w.scripted))
            and matched - w.store_lost <= rule["matched"] <= matched
            and rule["active"] is not used_up
        )
        limit = "no times" if times is None else f"times {times}"
        checks.append(
            Check(
                f"fault rule {number} counters exact",
                ok,
                f"fired {rule['fired']} = {len(w.scripted)} 503s seen by {name} ({limit}"
                f"{', used up' if used_up else ', not used up'}); matched {rule['matched']} "
                f"(expected {matched} of its {w.ordinal} POSTs, less up to its "
                f"{w.store_lost} store-lost 503s)",
            )
        )
    # rule 2: reader-00's GETs by id, after 20, then `times` 503s in a row
    get_rule, r = rules[rule_ids[1]], tallies[FAULTED_READER]
    after, times = 20, args.get_faults
    expected = list(range(after + 1, min(r.ordinal, after + times) + 1))
    last = min(r.ordinal, after + times)
    if r.store_lost:  # a store-lost 503 before or in the window shifts the ordinals
        ok = get_rule["fired"] == len(r.scripted) <= times and (
            last - r.store_lost <= get_rule["matched"] <= last
        )
    else:
        ok = (
            r.scripted == expected
            and get_rule["fired"] == len(expected)
            and get_rule["matched"] == last
        )
    checks.append(
        Check(
            "fault rule 2 counters exact",
            ok,
            f"fired {get_rule['fired']} = {len(r.scripted)} 503s seen by {FAULTED_READER}, "
            f"its GETs by id #{after + 1}-#{after + times} (times {times}); matched "
            f"{get_rule['matched']} of its {r.ordinal} GETs by id ({r.store_lost} store-lost "
            "503s)",
        )
    )

    # coverage: every (operation, status) the session answered, against the clients' tallies
    answered: Counter[tuple[str, int]] = Counter()
    for tally in tallies.values():
        answered.update(tally.answers)
    counted: Counter[tuple[str, int]] = Counter()
    for op in coverage["operations"]:
        for status, count in op["statuses"].items():
            if count:
                counted[(op["operation"], int(status))] += count
    for extra in coverage["undocumented"]:
        counted[(extra["operation"], extra["status"])] += extra["count"]
    fired = {f["id"]: f["fired"] for f in coverage["faults"]}
    wanted = {rid: rules[rid]["fired"] for rid in rule_ids if rules[rid]["fired"]}
    lost = sum(t.store_lost for t in tallies.values())
    for (op, status), seen in list(answered.items()):  # a store-lost 503 is never counted
        if status == 503 and lost:
            answered[(op, status)] = min(seen, counted[(op, status)])
    off = sum(abs(counted[k] - answered[k]) for k in set(counted) | set(answered))
    allowed = lost + len(tallies) if lost else 0  # in flight when the store went
    differ = sorted(
        f"{op} {status}: server {counted[(op, status)]}, clients {answered[(op, status)]}"
        for op, status in set(counted) | set(answered)
        if counted[(op, status)] != answered[(op, status)]
    )
    if differ and off <= allowed:
        differ = []
    checks.append(
        Check(
            "coverage = clients' answers" + (f" (within {allowed}: {off} off)" if allowed else ""),
            not differ and fired == wanted,
            f"{sum(answered.values()):,} answers in {len(answered)} (operation, status) pairs "
            f"all equal; faults fired {fired}"
            if not differ and fired == wanted
            else f"differ: {differ[:4]}; faults fired {fired}, rules {wanted}",
        )
    )

    # journal: the last --journal-size requests, each as its client saw it
    statuses = {rid: status for t in tallies.values() for rid, status in t.statuses.items()}
    scripted = {
        rule_ids[0]: tallies[FAULTED_WRITER].scripted_requests,
        rule_ids[1]: tallies[FAULTED_READER].scripted_requests,
        rule_ids[2]: tallies[SPREAD_WRITER].scripted_requests,
    }
    total = len(statuses)
    ids = [entry["id"] for entry in journal]
    wrong = []
    in_window = Counter[str]()
    for entry in journal:
        rid = entry["headers"].get("X-Soak-Request", "")
        fault = next((rule for rule, seen in scripted.items() if rid in seen), None)
        if fault:
            in_window[fault] += 1
        if statuses.get(rid) != entry["status"] or entry["fault"] != fault:
            seen = f"{statuses.get(rid)}/{fault}"
            wrong.append(f"{rid}: journal {entry['status']}/{entry['fault']}, client {seen}")
    consecutive = ids == list(range(ids[0], ids[0] + len(ids))) if ids else True
    if lost:  # requests the store could not journal: the newest journaled, ids in a row
        ok = (
            len(journal) == min(total - lost, args.journal_size)
            and consecutive
            and not wrong
            and all(counts[rid] == in_window[rid] for rid in rule_ids)
            and count_503 >= sum(counts.values())
        )
    else:
        ok = (
            len(journal) == min(total, args.journal_size)
            and ids == list(range(total - len(journal) + 1, total + 1))
            and not wrong
            and all(counts[rid] == in_window[rid] for rid in rule_ids)
            and count_503 == sum(counts.values())
        )
    checks.append(
        Check(
            "journal = clients' requests",
            ok,
            f"{len(journal):,} entries kept of {total:,} requests (ids {ids[0] if ids else '-'}"
            f"-{ids[-1] if ids else '-'}); statuses and faults as the clients saw them"
            f"{'' if not wrong else f' except {len(wrong)}: {wrong[:3]}'}; count by fault "
            f"{counts} (clients: {dict(in_window)}), count of 503 {count_503}",
        )
    )
    return checks


def check_records(
    args: argparse.Namespace, server: Server, shared: Shared
) -> tuple[list[Check], dict[str, Any]]:
    """Every 201 readable, as far as the bound allows: count, which ones, content."""
    created = shared.created
    by_id = {c.id: c for c in created}
    bound = args.max_records
    expected = min(len(created), bound)
    reader = Client("verify", server.port, "idt:TKN-9999-0001:soak-verify")
    answer = reader.call("list", LIST, "GET", f"{RECORDS}?limit=0")
    total = (
        orjson.loads(answer.body)["$meta"]["pagination"]["total"] if answer.status == 200 else -1
    )
    streamed = reader.call(
        "stream",
        LIST,
        "GET",
        RECORDS,
        extra={"MPT-Streaming": "true", "Accept": "application/jsonl"},
    )
    lines = streamed.body.splitlines() if streamed.status == 200 else []
    stored = [orjson.loads(line) for line in lines if line.strip()]
    declared = int(streamed.headers.get("mpt-item-count", "-1"))
    kept = [item["id"] for item in stored]
    checks = [
        Check(
            "201s readable: count",
            total == expected == len(stored) == declared,
            f"{len(created):,} 201s, bound {bound:,}: expected min = {expected:,}; "
            f"total (limit=0) {total:,}, streamed {len(stored):,} (MPT-Item-Count {declared:,})",
        )
    ]

    unknown = [i for i in kept if i not in by_id]
    kept_set = set(kept)
    evicted = [c for c in created if c.id not in kept_set]
    survivors = [by_id[i] for i in kept if i in by_id]
    if len(created) <= bound:
        which_ok = not unknown and not evicted and len(kept_set) == len(kept)
        rule = "all of them stored"
    else:
        # an evicted record must not have been certainly created after a kept one
        latest_evicted = max((c.sent for c in evicted), default=float("-inf"))
        earliest_kept = min((c.received for c in survivors), default=float("inf"))
        # and the store's own order (insertion order, as streamed) must agree with the clients'
        running, disorder = float("-inf"), 0
        for c in survivors:
            disorder += running > c.received
            running = max(running, c.sent)
        which_ok = (
            not unknown
            and len(kept_set) == len(kept)
            and latest_evicted <= earliest_kept
            and disorder == 0
        )
        rule = (
            f"the newest kept: the last evicted record's POST was sent "
            f"{(earliest_kept - latest_evicted) * 1000:.1f} ms before the first kept record's "
            f"201 arrived (must be >= 0); the store's order agrees with the clients' "
            f"({disorder} inversions)"
        )
    checks.append(
        Check(
            "201s readable: which",
            which_ok,
            f"{len(unknown)} stored ids not ours, {len(kept) - len(kept_set)} duplicates, "
            f"{len(evicted):,} evicted; {rule}",
        )
    )

    # content: each kept record by id, against its 201 and what was sent
    template = valid_body()
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    queue = list(survivors)

    def read_back(number: int) -> None:
        client = Client(f"verify-{number}", server.port, "idt:TKN-9999-0001:soak-verify")
        while True:
            with lock:
                if not queue:
                    break
                c = queue.pop()
            got = client.call("GET by id", GET, "GET", f"{RECORDS}/{c.id}")
            note = ""
            if got.status != 200:
                note = f"{c.id}: {got.status}"
            else:
                record = orjson.loads(got.body)
                sent = record_body(template, c.writer, c.seq)
                if digest(record) != c.digest:
                    note = f"{c.id}: differs from its 201"
                elif any(record.get(k) != v for k, v in sent.items()):
                    note = f"{c.id}: differs from what was sent"
                elif record["actor"]["id"] != token_id(c.writer):
                    note = f"{c.id}: actor {record['actor']['id']}"
            with lock:
                statuses[got.status] += 1
                if note:
                    failures.append(note)
        client.connection.close()

    streamed_differ = sum(
        digest(item) != by_id[item["id"]].digest for item in stored if item["id"] in by_id
    )
    started = time.perf_counter()
    workers_ = [threading.Thread(target=read_back, args=(n,)) for n in range(4)]
    for thread in workers_:
        thread.start()
    for thread in workers_:
        thread.join()
    read_seconds = time.perf_counter() - started
    checks.append(
        Check(
            "201s readable: content",
            not failures and not streamed_differ and statuses[200] == len(survivors),
            f"{statuses[200]:,} of {len(survivors):,} GET by id 200 and equal to their 201 and "
            f"to the body sent ({read_seconds:.1f} s); {streamed_differ} streamed records differ"
            + (f"; failures {len(failures)}: {failures[:3]}" if failures else ""),
        )
    )

    # the newest evicted ones (at the edge of the bound) are gone
    probes = sorted(evicted, key=lambda c: c.received)[-EVICTED_PROBES:]
    answers = [reader.call("GET by id", GET, "GET", f"{RECORDS}/{c.id}") for c in probes]
    gone = Counter(a.status for a in answers)
    errors = sorted({a.error for a in answers if a.error})
    checks.append(
        Check(
            "evicted records are 404",
            gone[404] == len(probes),
            f"{len(probes)} newest evicted read: {dict(gone)}"
            + (f" ({errors})" if errors else "")
            + f"; {reader.connection.reopened} idle connection(s) closed by the server reopened"
            if probes
            else "none evicted",
        )
    )
    reader.connection.close()
    return checks, {
        "created": len(created),
        "expected": expected,
        "total": total,
        "streamed": len(stored),
        "evicted": len(evicted),
        "read_back_seconds": read_seconds,
    }


def check_memory(
    args: argparse.Namespace, samples: list[Sample]
) -> tuple[Check, Check, dict[str, Any]]:
    """Flat: the bounds (store and journal) reached in the first half of the run, and the
    worker's RSS in the second half at most FLAT_MB above its value at the half."""
    half = args.duration / 2
    reached = next(
        (s for s in samples if s.records >= args.max_records and s.journal >= args.journal_size),
        None,
    )
    second = [s for s in samples if s.t >= half]
    first = samples[0] if samples else None
    figures: dict[str, Any] = {"bounds_reached_s": reached.t if reached else None}
    if not second or first is None or reached is None:
        bound_check = Check(
            "bounds reached by half-time",
            False,
            "store or journal bound not reached: a smaller --max-records/--journal-size "
            "or a longer --duration",
        )
        return bound_check, Check("memory flat at the bounds", False, "not judged"), figures
    base = second[0]
    peak = max(s.worker_mb for s in second)
    growth = peak - base.worker_mb
    per_record = (reached.worker_mb - first.worker_mb) / max(reached.records - first.records, 1)
    unbounded = (second[-1].created - base.created) * per_record
    slope = per_minute([(s.t, s.worker_mb) for s in second])
    figures.update(
        {
            "rss_start_mb": first.worker_mb,
            "rss_at_bounds_mb": reached.worker_mb,
            "rss_at_half_mb": base.worker_mb,
            "rss_peak_second_half_mb": peak,
            "rss_end_mb": second[-1].worker_mb,
            "growth_second_half_mb": growth,
            "slope_second_half_mb_per_min": slope,
            "mb_per_record_before_bounds": per_record,
            "unbounded_growth_second_half_mb": unbounded,
        }
    )
    pids = {tuple(s.workers) for s in samples}
    bound_check = Check(
        "bounds reached by half-time",
        reached.t <= half,
        f"store {args.max_records:,} and journal {args.journal_size:,} full at {reached.t:.0f} s "
        f"of {args.duration:.0f} s",
    )
    flat = Check(
        "memory flat at the bounds",
        reached.t <= half and growth <= FLAT_MB and len(pids) == 1,
        f"worker RSS {first.worker_mb:.1f} MB at start, {reached.worker_mb:.1f} at the bounds, "
        f"{base.worker_mb:.1f} at {base.t:.0f} s, peak {peak:.1f} after (+{growth:.1f} MB, "
        f"rule <= {FLAT_MB:.0f} MB; trend {slope:+.2f} MB/min; without the bounds it would add "
        f"~{unbounded:.0f} MB at {per_record * 1024:.1f} KB/record); worker pid "
        f"{'unchanged' if len(pids) == 1 else f'changed: {sorted(pids)}'}",
    )
    return bound_check, flat, figures


def per_minute(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, MB), in MB per minute."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return 60 * sum((t - mean_t) * (v - mean_v) for t, v in points) / spread


def latency_rows(tallies: list[Tally]) -> tuple[list[list[str]], dict[str, Any]]:
    kinds: dict[str, list[float]] = {}
    for tally in tallies:
        for kind, values in tally.latencies.items():
            kinds.setdefault(kind, []).extend(values)
    kinds["all"] = [v for values in list(kinds.values()) for v in values]
    rows, figures = [], {}
    for kind, values in kinds.items():
        row = {
            "requests": len(values),
            "p50_ms": percentile(values, 0.5) * 1000,
            "p99_ms": percentile(values, 0.99) * 1000,
            "max_ms": max(values, default=0.0) * 1000,
            "over_1s": sum(v > SLOW_SECONDS for v in values),
        }
        figures[kind] = row
        rows.append(
            [
                kind,
                f"{row['requests']:,}",
                f"{row['p50_ms']:.1f}",
                f"{row['p99_ms']:.1f}",
                f"{row['max_ms']:.1f}",
                str(row["over_1s"]),
            ]
        )
    return rows, figures


def server_errors(log_path: Path) -> int:
    """Tracebacks and unexpected-error entries in the server's log."""
    text = log_path.read_text(errors="replace")
    return text.count("Traceback") + text.count("unexpected error")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (60)")
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--readers", type=int, default=4)
    parser.add_argument("--max-records", type=int, default=20_000, help="the store's bound")
    parser.add_argument("--journal-size", type=int, default=2_000, help="the journal's bound")
    parser.add_argument(
        "--server-threads",
        type=int,
        help="the server's --threads (default: the server's own, 64; a kept-alive connection "
        "holds a server thread, see bench/README.md)",
    )
    parser.add_argument(
        "--store",
        choices=("memory", "redis"),
        default="memory",
        help="where the mock keeps its state: memory, or a redis-server of the soak's own",
    )
    parser.add_argument("--processes", type=int, default=1, help="the server's --processes")
    parser.add_argument(
        "--restart-redis",
        nargs="?",
        type=int,
        const=1,
        default=0,
        metavar="N",
        help="stop redis-server at half-time and start it again (--store redis); N times, "
        "evenly spread, with N",
    )
    parser.add_argument(
        "--redis-down", type=float, default=1.0, help="seconds Redis stays down (1)"
    )
    parser.add_argument("--post-faults", type=int, help="times of rule 1 (default 4 x duration)")
    parser.add_argument("--get-faults", type=int, help="times of rule 2 (default 2 x duration)")
    args = parser.parse_args()
    args.post_faults = args.post_faults or max(10, round(4 * args.duration))
    args.get_faults = args.get_faults or max(5, round(2 * args.duration))
    args.store_url = None
    if args.store == "memory" and (args.processes > 1 or args.restart_redis):
        parser.error("--processes > 1 and --restart-redis need --store redis")
    if args.writers < 2 or args.readers < 1:
        parser.error("at least two writers and one reader (the fault rules need them)")
    return args


def soak(
    args: argparse.Namespace, processes: tg.Processes, shared: Shared, results: dict[str, Any]
) -> tuple[list[Check], Server, list[Tally]]:
    """Start the server, load it, check everything but its log; figures into `results`."""
    own = None
    if args.store == "redis":
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        own = OwnRedis(processes, tg.BENCH / "results" / f"soak-redis-{stamp}").start()
        args.store_url = own.url
        log(f"redis-server on port {own.port}, append-only file in {own.directory}")
    server = start_server(processes, tg.BENCH / "results", args)
    command = f"mockserver --port {server.port} {' '.join(server_flags(args))}"
    results["command"] = command
    log(f"{command} (admin token in MOCKSERVER_ADMIN_TOKEN), pid {server.process.pid}")
    rules = server.control("POST", "/faults", fault_rules(args))["data"]
    rule_ids = [rule["id"] for rule in rules]
    shared.started_iso = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    log(
        f"load: {args.writers} writers, {args.readers} readers for {args.duration:.0f} s; "
        f"{rule_ids[0]}: POST of {FAULTED_WRITER}, p=0.5, times {args.post_faults}; "
        f"{rule_ids[1]}: GET by id of {FAULTED_READER}, after 20, times {args.get_faults}; "
        f"{rule_ids[2]}: POST of {SPREAD_WRITER}, p={SPREAD_PROBABILITY}"
    )
    clients, samples, seconds = load(args, server, shared, own)
    log(f"load stopped after {seconds:.1f} s; checking")
    tallies = {c.name: c.tally for c in clients}
    every = list(tallies.values())
    checks = check_faults(args, server, rule_ids, tallies)
    record_checks, record_figures = check_records(args, server, shared)
    bound_check, flat_check, memory = check_memory(args, samples)
    unscripted = sum(t.unscripted_5xx for t in every)
    store_lost = sum(t.store_lost for t in every)
    outage_samples = (round(args.redis_down) + 3) * args.restart_redis
    slow = sum(t.slow for t in every)
    transport = sum(t.transport_errors for t in every)
    problems = sum(t.problems for t in every)
    notes = [note for t in every for note in t.problem_notes][:5]
    reopened = sum(c.connection.reopened for c in clients)
    checks += [
        Check("no unscripted 5xx", unscripted == 0, f"{unscripted} unscripted 5xx answers"),
        Check(
            "store-lost 503s only while Redis was down",
            args.restart_redis or store_lost == 0,
            f"{store_lost} store-lost 503s (the documented answer while the store is out of "
            f"reach); Redis restarts: {own.restarts if own else 'none'}",
        ),
        Check("no request over 1 s", slow == 0, f"{slow} requests over {SLOW_SECONDS:.0f} s"),
        Check(
            "control API answered",
            all(s.health_ms <= SLOW_SECONDS * 1000 for s in samples)
            and sum(s.records < 0 for s in samples) <= outage_samples,
            f"GET /_mock/health every second during the load: max "
            f"{max((s.health_ms for s in samples), default=0):.1f} ms, "
            f"{sum(s.records < 0 for s in samples)} unanswered (at most {outage_samples}: "
            "health answers 503 while Redis is down)",
        ),
        Check(
            "every answer as expected",
            problems == 0 and transport == 0,
            f"{problems} unexpected answers (slow ones included), {transport} connection errors, "
            f"{reopened} connections found closed by the server before a request"
            + (f": {notes}" if notes else ""),
        ),
        *record_checks,
        bound_check,
        flat_check,
    ]
    requests = sum(t.requests for t in every)
    results.update(
        {
            "load_seconds": seconds,
            "requests": requests,
            "req_per_s": requests / seconds,
            "records": record_figures,
            "memory": memory,
            "samples": [vars(s) for s in samples],
            "store_lost_503": store_lost,
            "redis_restarts": own.restarts if own else [],
        }
    )
    return checks, server, every


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    (tg.BENCH / "results").mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    processes = tg.Processes()
    shared = Shared(bound=args.max_records)
    results: dict[str, Any] = {"settings": dict(vars(args)), "date": stamp}
    try:
        checks, server, tallies = soak(args, processes, shared, results)
    except KeyboardInterrupt:
        log("interrupted: stopping the server")
        return 130
    finally:
        shared.stop.set()
        processes.stop_all()  # the server's log is complete once it has stopped
    crashes = server_errors(server.log_path)
    where = next(i for i, c in enumerate(checks) if c.name == "no unscripted 5xx") + 1
    logged = f"{crashes} tracebacks or unexpected errors"
    checks.insert(where, Check("no error in the server log", crashes == 0, logged))
    rows, results["latency"] = latency_rows(tallies)
    results["checks"] = [vars(c) for c in checks]
    out = tg.BENCH / "results" / f"soak-{stamp}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    report(args, results, rows, checks)
    log(f"raw results: {out.relative_to(tg.ROOT)}; log: {server.log_path.relative_to(tg.ROOT)}")
    return 1 if any(not c.ok for c in checks) else 0


def report(
    args: argparse.Namespace, results: dict[str, Any], rows: list[list[str]], checks: list[Check]
) -> None:
    seconds, requests = results["load_seconds"], results["requests"]
    created = results["records"]["created"]
    print(
        f"\nSoak {results['date']}: {args.writers} writers + {args.readers} readers for "
        f"{seconds:.1f} s, loopback keep-alive; {results['command']}"
    )
    print(
        f"{requests:,} requests, {requests / seconds:,.0f} req/s ({created:,} 201s, "
        f"{created / seconds:,.0f}/s); {os.cpu_count()} CPUs shared by the server and the "
        "Python clients (one process, GIL-bound)"
    )
    print("\nLatency as the clients measured it (ms)")
    print(table(["request", "count", "p50", "p99", "max", "> 1 s"], rows, left=1))
    print("\nChecks")
    for check in checks:
        print(f"  {'ok  ' if check.ok else 'FAIL'}  {check.name}")
        for line in textwrap.wrap(check.detail, 92):
            print(f"        {line}")
    failed = [c.name for c in checks if not c.ok]
    print(f"\n{'FAILED: ' + ', '.join(failed) if failed else 'all checks passed'}")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    sys.exit(main())
