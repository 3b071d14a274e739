"""The pytest plugin, tested as users run it: test files of their own, run by `pytester`
(in-process, or in a subprocess for pytest-xdist), against an in-process mock or an external
one (`--mockserver-url`, `MOCKSERVER_URL`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from support import Server

StartServer = Callable[..., Server]

# what the users' test files start with
HEADER = """
import requests
import pytest

AUTH = {"Authorization": "Bearer idt:TKN-1234-5678:secret"}
RECORD = {"event": "platform.commerce.order.created", "object": {"id": "ORD-1234-5678"},
          "summary": "made by a test"}


def create(mock, **extra):
    return requests.post(mock.api_url + "/audit/records", json={**RECORD, **extra},
                         headers=AUTH, timeout=5)
"""


def test_each_test_gets_a_clean_session_of_its_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        HEADER
        + """
NAMES = []


def test_one(mock):
    assert create(mock).status_code == 201
    assert len(mock.records()) == 1
    NAMES.append(mock.session)


def test_two(mock):
    assert mock.records() == []
    assert mock.journal() == []
    assert mock.faults() == []
    mock.fail(503)
    assert create(mock).status_code == 503
    NAMES.append(mock.session)


def test_three(mock):
    assert mock.faults() == []  # the rule of test_two stayed there
    assert create(mock).status_code == 201
    NAMES.append(mock.session)
    assert len(set(NAMES)) == 3


def test_the_server_fixture(mockserver_server, mock):
    assert mock.url == mockserver_server.url
    assert mockserver_server.api_url == mockserver_server.url + "/public/v1"
    health = mockserver_server.client().health()
    assert health["session"] == "default"
    assert health["records"] == 0  # the tests' records are in their own sessions
"""
    )
    pytester.runpytest().assert_outcomes(passed=4)


def test_the_marker_seeds_records_and_loads_a_scenario(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        scenario="""
rules:
  - {method: POST, path: /public/v1/audit/records, status: 503, times: 1}
""",
    )
    pytester.makepyfile(
        HEADER
        + """
pytestmark = pytest.mark.mockserver(seed_records=3, faker_seed=7)


def test_seeded(mock):
    assert len(mock.records()) == 3
    listed = requests.get(mock.api_url + "/audit/records", headers=AUTH, timeout=5).json()
    assert listed["$meta"]["pagination"]["total"] == 3


def test_seeded_again_the_same(mock):
    assert len(mock.records()) == 3


@pytest.mark.mockserver(scenario="scenario.yaml")
def test_scenario(mock):
    assert create(mock).status_code == 503
    assert create(mock).status_code == 201
    mock.assert_called(method="POST", times=2)
"""
    )
    pytester.runpytest().assert_outcomes(passed=3)


def test_marker_settings_give_a_server_of_their_own(pytester: pytest.Pytester) -> None:
    pytester.makefile(
        ".yaml",
        tokens="""
tokens:
  - token: reader
    rights: ["*:read"]
""",
    )
    pytester.makepyfile(
        HEADER
        + """
@pytest.mark.mockserver(tokens="tokens.yaml")
def test_a_reader_cannot_write(mock, mockserver_server):
    assert mock.url != mockserver_server.url
    answer = requests.post(mock.api_url + "/audit/records", json=RECORD,
                           headers={"Authorization": "Bearer reader"}, timeout=5)
    assert answer.status_code == 403


def test_the_default_server_takes_any_token(mock):
    answer = requests.post(mock.api_url + "/audit/records", json=RECORD,
                           headers={"Authorization": "Bearer reader"}, timeout=5)
    assert answer.status_code == 201
"""
    )
    pytester.runpytest().assert_outcomes(passed=2)


EXTERNAL_TESTS = (
    HEADER
    + """
import os


@pytest.mark.parametrize("number", range(6))
def test_isolated(mock, number):
    assert mock.url == os.environ["EXPECTED_URL"]
    assert create(mock, details=str(number)).status_code == 201
    assert [r["details"] for r in mock.records()] == [str(number)]
    assert len(mock.journal()) == 1


@pytest.mark.mockserver(tokens="tokens.yaml")
def test_needs_its_own_server(mock):
    pass
"""
)


def external_default_session(server: Server) -> dict[str, int]:
    health = requests.get(f"{server.url}/_mock/health", timeout=5).json()
    return {"records": health["records"], "journal": health["journal"]}


def test_mockserver_url_runs_the_tests_against_that_server(
    pytester: pytest.Pytester, start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("EXPECTED_URL", server.url)
    pytester.makepyfile(EXTERNAL_TESTS)
    result = pytester.runpytest("--mockserver-url", server.url, "-rs")
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["*needs a server configured with tokens*"])
    assert external_default_session(server) == {"records": 0, "journal": 0}  # all in theirs


def test_the_environment_variable_names_the_server_too(
    pytester: pytest.Pytester, start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("EXPECTED_URL", server.url)
    monkeypatch.setenv("MOCKSERVER_URL", server.url)
    pytester.makepyfile(EXTERNAL_TESTS)
    pytester.runpytest().assert_outcomes(passed=6, skipped=1)


def test_the_suite_runs_in_parallel_with_xdist(
    pytester: pytest.Pytester, start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = start_server()
    monkeypatch.setenv("EXPECTED_URL", server.url)
    pytester.makepyfile(EXTERNAL_TESTS)
    result = pytester.runpytest_subprocess("-n", "2", "--mockserver-url", server.url)
    result.assert_outcomes(passed=6, skipped=1)
    result.stdout.fnmatch_lines(["*2 workers*"])
    assert external_default_session(server) == {"records": 0, "journal": 0}


def test_session_names_are_valid_and_distinct() -> None:
    from mockserver.testing.plugin import session_name

    names = [session_name(f"tests/test_x.py::test_{'long' * 30}[a b/c]") for _ in range(3)]
    assert len(set(names)) == 3
    for name in names:
        assert len(name) <= 64
        assert all(c.isalnum() or c in "._-" for c in name)  # what the server accepts


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--mockserver-url*"])
    pytester.makepyfile("def test_markers(pytestconfig): pass")
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["*@pytest.mark.mockserver(*"])
