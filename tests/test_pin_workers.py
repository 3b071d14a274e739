"""`--pin-workers`: each worker process, every thread of it, kept on one CPU of those the server
may use, the workers on them in turn, said in one line each; off by default; refused in one
line where Linux's affinity calls are missing."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from redis_server import RedisServer
from support import AUTH, Server
from test_redis_processes import workers

from mockserver.serving import affinity


def cpus_of(pid: int) -> set[str]:
    """The CPU lists (`Cpus_allowed_list`) of every thread of a process."""
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        found.add(re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.MULTILINE)[1])  # type: ignore[index]
    return found


@contextmanager
def started_on(cpus: set[int]) -> Iterator[None]:
    """What this thread starts meanwhile may use `cpus` only (a child takes its starter's)."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def said(server: Server, pattern: str, count: int) -> list[re.Match[str]]:
    """The log lines matching `pattern`, once `count` of them are there (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        found = [m for line in list(server.log) if (m := re.search(pattern, line))]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_workers_take_the_cpus_in_turn() -> None:
    assert [affinity.cpu_for(worker, [2, 5, 7]) for worker in range(1, 6)] == [2, 5, 7, 2, 5]
    assert affinity.usable() == sorted(os.sched_getaffinity(0))


def test_a_worker_is_kept_on_the_cpu_it_was_given_with_every_thread(
    start_server: Callable[..., Server],
) -> None:
    last = max(os.sched_getaffinity(0))
    with started_on({last}):  # as `taskset -c LAST mockserver --pin-workers`
        server = start_server("--pin-workers")
    [worker] = workers(server)
    [line] = said(server, r"worker (\d+) pinned to CPU (\d+) \(--pin-workers\)", 1)
    assert line.groups() == ("1", str(last))
    assert cpus_of(worker) == {str(last)}
    answer = requests.get(f"{server.api_url}/audit/records", headers=AUTH, timeout=30)
    assert answer.status_code == 200  # it serves, its request threads on that CPU too
    assert cpus_of(worker) == {str(last)}


def test_two_workers_are_kept_on_two_cpus(
    start_server: Callable[..., Server], redis_server: RedisServer, redis_prefix: str
) -> None:
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        pytest.fail("this test needs a machine of two CPUs or more (the project's has two)")
    with started_on(set(usable[:2])):
        server = start_server(
            "--store", redis_server.url, "--store-prefix", redis_prefix,
            "--processes", "2", "--pin-workers",
        )  # fmt: skip
    lines = said(server, r"worker (\d+) pinned to CPU (\d+) \(--pin-workers\)", 2)
    assert sorted(m.groups() for m in lines) == [("1", str(usable[0])), ("2", str(usable[1]))]
    held = sorted(cpus_of(pid) for pid in workers(server))
    assert held == [{str(usable[0])}, {str(usable[1])}]


def test_workers_are_not_pinned_by_default(start_server: Callable[..., Server]) -> None:
    usable = sorted(os.sched_getaffinity(0))
    server = start_server()
    [worker] = workers(server)
    whole = os.sched_getaffinity(worker)
    assert sorted(whole) == usable
    assert not said(server, r"pinned to CPU", 0)


def test_pinning_where_linux_affinity_is_missing_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mockserver.settings import Settings, SettingsError

    monkeypatch.delattr(os, "sched_setaffinity")
    with pytest.raises(SettingsError) as refusal:
        Settings.from_env({"MOCKSERVER_PIN_WORKERS": "1"})
    assert str(refusal.value) == "--pin-workers needs Linux (os.sched_setaffinity)"
