"""`--processes N`: N uWSGI workers sharing a Redis store; refused on the memory store (one line
saying why). Two real servers of two workers each on one Redis: a rule with `times: 5` fires
exactly five times under 32 clients, and ids drawn by four processes never collide."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from redis_server import RedisServer
from support import AUTH, MOCKSERVER, Server, new_record
from test_redis_faults import hammer

RECORDS = "/public/v1/audit/records"


def workers(server: Server) -> list[int]:
    """The pids of the server's worker processes (uWSGI's master's children)."""
    assert server.process is not None
    master = server.process.pid
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master:
                found.append(int(entry.name))
    return found


def test_several_processes_on_the_memory_store_are_refused_in_one_line() -> None:
    for args, env in ((["--processes", "2"], {}), ([], {"MOCKSERVER_PROCESSES": "3"})):
        done = subprocess.run(
            [str(MOCKSERVER), *args],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        [line] = done.stderr.splitlines()
        assert "needs a store the processes share (--store redis://...)" in line
        assert "--processes" in line


def test_two_servers_of_two_processes_share_the_rules_and_the_ids(
    start_server: Callable[..., Server], engine: RedisServer, engine_prefix: str
) -> None:
    args = ("--store", engine.url, "--store-prefix", engine_prefix, "--processes", "2")
    one, two = start_server(*args), start_server(*args)
    assert len(workers(one)) == len(workers(two)) == 2
    rule = {"method": "GET", "path": RECORDS, "status": 503, "times": 5}
    assert requests.post(one.url + "/_mock/faults", json=rule, timeout=10).status_code == 201
    assert hammer([one.api_url, two.api_url], 32, 4) == Counter({200: 123, 503: 5})
    for server in (one, two):
        [state] = requests.get(server.url + "/_mock/faults", timeout=10).json()["data"]
        assert (state["matched"], state["fired"]) == (5, 5)

    def post(n: int) -> str:
        with requests.Session() as http:
            url = (one if n % 2 else two).api_url + "/audit/records"
            made = [http.post(url, json=new_record(), headers=AUTH, timeout=30) for _ in range(8)]
        assert {answer.status_code for answer in made} == {201}
        return ",".join(answer.json()["id"] for answer in made)

    with ThreadPoolExecutor(16) as pool:
        ids = [i for joined in pool.map(post, range(16)) for i in joined.split(",")]
    assert len(ids) == len(set(ids)) == 128
    listed = requests.get(f"{one.api_url}/audit/records", headers=AUTH, timeout=30).json()
    assert listed["$meta"]["pagination"]["total"] == 128
    with requests.Session() as http:
        for n, record_id in enumerate(ids):  # each readable on both servers
            url = f"{(two if n % 2 else one).api_url}/audit/records/{record_id}"
            assert http.get(url, headers=AUTH, timeout=30).json()["id"] == record_id
    assert one.stop() == two.stop() == 0


def test_a_forked_process_draws_other_ids() -> None:
    """uWSGI forks its workers from one process: each draws ids from a generator seeded again
    after the fork, not the sequence its siblings draw."""
    from mockserver.resources.ids import IdFormat

    ids = IdFormat("AUD", 4)
    ids.make()  # the generator in use before the fork
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(writing, ",".join(ids.make() for _ in range(3)).encode())
        os._exit(0)
    os.close(writing)
    os.waitpid(child, 0)
    theirs = os.read(reading, 1000).decode().split(",")
    os.close(reading)
    assert set(theirs).isdisjoint(ids.make() for _ in range(3))
