"""`--state-file`: records, event types and fault rules survive a restart; the file is written
atomically (a `kill -9` during the write leaves the previous file); a bad file stops start-up."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from support import AUTH, EVENT_TYPES, MOCKSERVER, RECORDS, ROOT, Server, free_port, new_record

from mockserver.serving.stop import FAILED
from mockserver.sessions import state_file as snapshot
from mockserver.storage.memory import MemoryBackend as Stores

StartServer = Callable[..., Server]
SESSION = {"X-Mock-Session": "team-a"}


def logged(server: Server, text: str) -> bool:
    """Whether the server's output has `text` (read by a thread: it may take a moment)."""
    deadline = time.monotonic() + 5
    while not any(text in line for line in server.log):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def post(server: Server, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    answer = requests.post(
        server.url + RECORDS, json=body, headers={**AUTH, **(headers or {})}, timeout=5
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def read(server: Server, path: str, headers: dict[str, str] | None = None) -> Any:
    answer = requests.get(server.url + path, headers={**AUTH, **(headers or {})}, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def control(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    answer = requests.request(method, f"{server.url}/_mock{path}", timeout=5, **kwargs)
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def test_records_event_types_and_rules_survive_a_restart(
    start_server: StartServer, tmp_path: Path
) -> None:
    state = tmp_path / "state.jsonl"
    first = start_server("--state-file", str(state))
    created = [post(first, new_record(details=f"record {n}")) for n in range(3)]
    theirs = post(first, new_record(details="team a's"), SESSION)
    kinds = read(first, EVENT_TYPES + "?limit=1000")["data"]
    control(first, "POST", "/faults", json={"method": "DELETE", "status": 503, "times": 3})
    spent = {"method": "GET", "path": RECORDS + "/{id}", "status": 500, "times": 2}
    control(first, "POST", "/faults", json=spent)
    assert requests.get(first.url + RECORDS + "/AUD-1", headers=AUTH, timeout=5).status_code == 500
    assert first.stop() == 0
    assert logged(first, f"state saved to {state}"), first.log

    second = start_server("--state-file", str(state))
    assert logged(second, f"state loaded from {state}")
    rules = control(second, "GET", "/faults")["data"]
    assert [(r["id"], r["matched"], r["fired"], r["active"]) for r in rules] == [
        ("rule-1", 0, 0, True),
        ("rule-2", 1, 1, True),
    ]
    assert requests.get(second.url + RECORDS + "/AUD-1", headers=AUTH, timeout=5).status_code == 500
    gone = requests.get(second.url + RECORDS + "/AUD-1", headers=AUTH, timeout=5)
    assert gone.status_code == 404  # `times: 2` counted across the restart
    for record in created:
        assert read(second, f"{RECORDS}/{record['id']}") == record
    assert read(second, RECORDS)["$meta"]["pagination"]["total"] == 3
    assert read(second, f"{RECORDS}/{theirs['id']}", SESSION) == theirs
    assert read(second, RECORDS, SESSION)["$meta"]["pagination"]["total"] == 1
    assert read(second, EVENT_TYPES + "?limit=1000")["data"] == kinds
    added = control(second, "POST", "/faults", json={"status": 502, "times": 1})["data"]
    assert added[0]["id"] == "rule-3"  # ids go on from the saved ones


def test_a_missing_file_is_written_at_shutdown(start_server: StartServer, tmp_path: Path) -> None:
    state = tmp_path / "new" / "state.jsonl"
    state.parent.mkdir()
    server = start_server("--state-file", str(state))
    assert logged(server, f"no state file {state} yet")
    record = post(server, new_record())
    assert server.stop() == 0
    stored = snapshot.read(state, lambda: Stores(100), {RECORDS: lambda item: ""})[
        "default"
    ].storage.open(RECORDS)
    assert [orjson.loads(raw) for raw in stored] == [record]
    assert list(state.parent.iterdir()) == [state]  # no temporary file left behind


def test_a_failed_save_at_stop_exits_non_zero_naming_the_file_and_the_reason(
    start_server: StartServer, tmp_path: Path
) -> None:
    """The folder checked at start-up is gone by the stop: the exit code says the data was not
    kept (uWSGI's 22), and one line says where and why."""
    folder = tmp_path / "volume"
    folder.mkdir()
    state = folder / "state.jsonl"
    server = start_server("--state-file", str(state))
    post(server, new_record())
    shutil.rmtree(folder)
    assert server.stop() == FAILED
    said = [line for line in server.log if "could not save" in line]
    assert len(said) == 1, server.log
    reason = "No such file or directory"
    assert said[0].endswith(f"ERROR could not save the state file {state}: {reason}"), said
    assert not folder.exists()


def test_reset_goes_back_to_the_start_up_configuration_not_the_file(
    start_server: StartServer, tmp_path: Path
) -> None:
    state = tmp_path / "state.jsonl"
    first = start_server("--state-file", str(state))
    post(first, new_record())
    assert first.stop() == 0
    second = start_server("--state-file", str(state))
    assert read(second, RECORDS)["$meta"]["pagination"]["total"] == 1
    control(second, "POST", "/reset")
    assert read(second, RECORDS)["$meta"]["pagination"]["total"] == 0


def test_kill_9_saves_nothing_and_keeps_the_previous_file(
    start_server: StartServer, tmp_path: Path
) -> None:
    state = tmp_path / "state.jsonl"
    first = start_server("--state-file", str(state))
    kept = post(first, new_record(details="kept"))
    assert first.stop() == 0
    assert state.exists(), first.log
    before = state.read_bytes()
    second = start_server("--state-file", str(state))
    post(second, new_record(details="lost"))
    assert second.process is not None
    worker = subprocess.run(["pgrep", "-P", str(second.process.pid)], capture_output=True)
    for pid in [second.process.pid, *map(int, worker.stdout.split())]:
        os.kill(pid, signal.SIGKILL)
    second.process.wait(timeout=10)
    assert state.read_bytes() == before
    third = start_server("--state-file", str(state))
    assert read(third, RECORDS)["data"] == [kept]


WRITER = """
import sys
from pathlib import Path
from mockserver import create_app, Settings
from mockserver.serving.stop import FAILED
from mockserver.sessions import state_file as snapshot
app = create_app(Settings(seed_records=int(sys.argv[2]), faker_seed=int(sys.argv[3])))
holder = app.extensions["mockserver"]
path = Path(sys.argv[1])
while True:
    snapshot.save(path, holder.sessions, "test")
    print("saved", flush=True)
"""


def test_a_kill_9_during_the_write_leaves_the_previous_file(tmp_path: Path) -> None:
    """A process saving 20 000 records in a loop is killed at random moments; each time the
    file holds a whole state, the one before or the new one: never a mix, never cut short."""
    state = tmp_path / "state.jsonl"
    _writer(state, 300, once=True).wait()
    rng = random.Random(7)
    for _ in range(6):
        writer = _writer(state, 20_000)
        assert writer.stdout is not None
        if rng.random() < 0.5:
            assert writer.stdout.readline() == "saved\n"  # one whole save, then kill mid-write
        time.sleep(rng.uniform(0.0, 0.4))
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        assert _held(state) in (300, 20_000)


def _writer(path: Path, records: int, once: bool = False) -> subprocess.Popen[str]:
    script = WRITER.replace("while True:", "for _ in range(1):") if once else WRITER
    return subprocess.Popen(
        [sys.executable, "-c", script, str(path), str(records), "2"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def _held(path: Path) -> int:
    """How many records the state file holds (StateFileError if it is not whole)."""
    return len(
        snapshot.read(path, lambda: Stores(100_000), {RECORDS: lambda item: ""})[
            "default"
        ].storage.open(RECORDS)
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"garbage\n", "state.jsonl:1:1: Expecting value"),
        (b'["state",\n', "state.jsonl:1:10: Expecting value"),
        (b'["state"]\n', "state.jsonl:1:1: not a [kind, payload] JSON line"),
        (b'["state",{"version":99}]\n["end",{"sessions":0,"items":0}]\n', "not a mockserver state"),
        (b'["state",{"version":1}]\n["session","default"]\n', "cut short (no 'end' line)"),
        (
            b'["state",{"version":1}]\n["session","default"]\n["end",{"sessions":1,"items":5}]\n',
            "holds {'sessions': 1, 'items': 0}",
        ),
        (
            b'["state",{"version":1}]\n["session","default"]\n["rules",[{"id":"rule-1",'
            b'"rule":{"status":"x"},"matched":0,"fired":0}]]\n["end",{"sessions":1,"items":0}]\n',
            "rule rule-1 is not valid",
        ),
        (
            b'["state",{"version":1}]\n["session","default"]\n["collection",{"path":"'
            + RECORDS.encode()
            + b'","template":"'
            + RECORDS.encode()
            + b'"}]\n["item",{"no":"id"}]\n["end",{"sessions":1,"items":1}]\n',
            "a 'item' line that makes no sense",
        ),
    ],
    ids=[
        "not-json",
        "cut-json",
        "not-a-pair",
        "other-version",
        "cut-short",
        "count-mismatch",
        "bad-rule",
        "item-no-id",
    ],
)
def test_a_bad_state_file_stops_start_up_naming_it(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    state = tmp_path / "state.jsonl"
    state.write_bytes(content)
    done = subprocess.run(
        [str(MOCKSERVER), "--port", str(free_port()), "--state-file", str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert str(state) in done.stderr
    assert problem in done.stderr, done.stderr
    assert state.read_bytes() == content  # left as it was


def _saved_file(tmp_path: Path, records: list[dict[str, Any]]) -> tuple[Path, list[bytes]]:
    """A state file a server wrote, holding `records` (each created through the API), and
    its lines."""
    from mockserver import Settings, create_app

    app = create_app(Settings(check_responses=True))
    client = app.test_client()
    for body in records:
        assert client.post(RECORDS, json=body, headers=AUTH).status_code == 201
    path = tmp_path / "state.jsonl"
    snapshot.save(path, app.extensions["mockserver"].sessions, "test")
    return path, path.read_bytes().splitlines(keepends=True)


def _refused(path: Path) -> str:
    done = subprocess.run(
        [str(MOCKSERVER), "--port", str(free_port()), "--state-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    return done.stderr.strip()


def _item_lines(lines: list[bytes]) -> list[int]:
    """Where the records are (not the event types)."""
    return [i for i, line in enumerate(lines) if line.startswith(b'["item",{"id":"AUD-')]


def test_a_state_file_with_an_id_twice_is_refused_at_its_line(tmp_path: Path) -> None:
    path, lines = _saved_file(tmp_path, [new_record(), new_record()])
    first, second = _item_lines(lines)
    lines[second] = lines[first]
    path.write_bytes(b"".join(lines))
    item_id = orjson.loads(lines[first])[1]["id"]
    assert _refused(path) == f"mockserver: error: {path}:{second + 1}: id {item_id} again"


def test_a_state_file_with_lines_after_its_end_is_refused(tmp_path: Path) -> None:
    path, lines = _saved_file(tmp_path, [new_record()])
    path.write_bytes(b"".join([*lines, lines[-1]]))
    refusal = _refused(path)
    assert refusal == f"mockserver: error: {path}:{len(lines) + 1}: a line after the 'end' line"


def test_a_state_file_with_a_record_that_breaks_the_spec_is_refused(tmp_path: Path) -> None:
    path, lines = _saved_file(tmp_path, [new_record()])
    (at,) = _item_lines(lines)
    kind, item = orjson.loads(lines[at])
    item["object"]["id"] = 12  # a string in the spec
    lines[at] = orjson.dumps([kind, item]) + b"\n"
    path.write_bytes(b"".join(lines))
    refusal = _refused(path)
    assert refusal.startswith(f"mockserver: error: {path}:{at + 1}: item {item['id']} breaks")
    assert "object.id" in refusal, refusal


def test_a_state_file_in_a_folder_that_cannot_be_written_is_refused_at_start_up(
    tmp_path: Path,
) -> None:
    for path, reason in (
        (tmp_path / "absent" / "state.jsonl", f"no folder {tmp_path / 'absent'}"),
        (Path("/proc/state.jsonl"), "cannot write the state file in /proc"),
    ):
        assert _refused(path) == f"mockserver: error: {path}: " + (
            f"cannot write the state file: {reason}"
            if "absent" in str(path)
            else f"{reason}: No such file or directory"
        )


NUMBERS = [10**30, 10**400, -(2**70), 2**64, -(2**63), 2**64 - 1]


def test_integers_of_any_size_round_trip_exactly(start_server: StartServer, tmp_path: Path) -> None:
    """Through a POST, a GET, the journal and the state file (10**400 made the file
    unloadable at every restart; 2**64 came back as a float)."""
    state = tmp_path / "state.jsonl"
    server = start_server("--state-file", str(state))
    documents = {"numbers": NUMBERS}
    raw = b'{"numbers":[' + ",".join(str(n) for n in NUMBERS).encode() + b"]}"
    created = requests.post(
        server.url + RECORDS,
        data=orjson.dumps(new_record())[:-1] + b',"documents":' + raw + b"}",
        headers={**AUTH, "Content-Type": "application/json"},
        timeout=5,
    )
    assert created.status_code == 201, created.text
    assert _numbers(created.content) == documents
    path = f"{RECORDS}/{created.json()['id']}"
    fetched = requests.get(server.url + path, headers=AUTH, timeout=5)
    assert _numbers(fetched.content) == documents
    journal = requests.get(f"{server.url}/_mock/requests", timeout=5)
    assert _numbers(journal.content, ("data", 0, "body")) == documents
    assert server.stop() == 0
    restarted = start_server("--state-file", str(state))
    again = requests.get(restarted.url + path, headers=AUTH, timeout=5)
    assert again.status_code == 200, again.text
    assert _numbers(again.content) == documents


def _numbers(raw: bytes, where: tuple[Any, ...] = ()) -> Any:
    """The `documents` member, read exactly (the standard library keeps big integers)."""
    import json

    found = json.loads(raw)
    for step in where:
        found = found[step]
    return found["documents"]
