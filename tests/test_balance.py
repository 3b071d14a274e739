"""Keep-alive connections spread over the worker processes (`serving.balance`): a worker over
its share lets one connection go per answer (`Connection: close`) until it holds its share,
and sixteen connections opened at once on a server of two processes end up eight and eight."""

from __future__ import annotations

import http.client
from collections.abc import Callable
from pathlib import Path

from redis_server import RedisServer
from support import AUTH, Server

from mockserver.serving.balance import Table
from mockserver.serving.front import _Answer, _Request

Start = Callable[..., Server]


def test_a_worker_over_its_share_lets_connections_go_one_at_a_time() -> None:
    table = Table(2)
    table.join(1)
    others = [table.opened() for _ in range(4)]  # the other worker's four
    table.join(0)
    mine = [table.opened() for _ in range(12)]
    assert table.over_share()  # 12 of 16: the share is 8
    let_go = [place.let_go() for place in mine]
    assert let_go == [True] * 4 + [False] * 8  # the four let go still count in the whole
    assert not table.over_share()
    for place in mine:
        place.end()  # ended (after its answer, for the four): counted out once only
    comers = [table.opened() for _ in range(4)]  # the four clients back, here again: 4 of 8
    assert not table.over_share()
    assert len(others) == len(comers) == 4


def test_an_answer_of_a_worker_over_its_share_says_close_and_the_next_keeps_alive() -> None:
    table = Table(2)
    table.join(1)
    table.opened()  # the other worker's one
    table.join(0)
    mine = [table.opened() for _ in range(3)]  # 3 of 4: the share is 2
    request = _Request()
    request.method, request.version = "GET", "1.1"
    headers = [("Content-Length", "2")]
    first, second = _Answer(request, mine[0]), _Answer(request, mine[1])
    first.start("200 OK", headers)
    second.start("200 OK", headers)
    assert not first.keep_alive
    assert b"Connection: close" in first.head
    assert second.keep_alive  # 2 of 4 now, the one let go counted in the whole
    assert b"Connection" not in second.head


def test_one_worker_or_none_lets_nothing_go() -> None:
    table = Table(2)  # not joined: not a worker (the master, a test)
    place = table.opened()
    assert not table.over_share()
    assert not place.let_go()


def _established(port: int) -> dict[str, int]:
    """Socket inode -> 1, for the connections established on the server's `port`."""
    found: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and state == "01":
                found[inode] = 1
    return found


def _held_by(pid: int, inodes: dict[str, int]) -> int:
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def test_sixteen_connections_opened_at_once_end_up_eight_and_eight(
    start_server: Start, redis_server: RedisServer, redis_prefix: str
) -> None:
    server = start_server(
        "--store", redis_server.url, "--store-prefix", redis_prefix, "--processes", "2"
    )
    assert server.process is not None
    master = server.process.pid
    workers = [
        int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()
    ]
    assert len(workers) == 2
    connections = [
        http.client.HTTPConnection("127.0.0.1", server.port, timeout=10) for _ in range(16)
    ]
    for connection in connections:
        connection.connect()
    statuses: list[int] = []
    settled = False
    for _ in range(60):  # rounds until one lets no connection go (a client back may land
        let_go = 0  # on the busier worker again: it is let go again)
        for connection in connections:
            connection.request("GET", "/public/v1/audit/records?limit=1", headers=AUTH)
            answer = connection.getresponse()
            answer.read()
            statuses.append(answer.status)
            if answer.getheader("Connection") == "close":
                let_go += 1
                connection.close()
                connection.connect()
        held = sorted(_held_by(pid, _established(server.port)) for pid in workers)
        if let_go == 0 and held == [8, 8]:
            settled = True
            break
    assert settled
    assert set(statuses) == {200}
    for connection in connections:
        connection.close()
