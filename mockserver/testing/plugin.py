"""The pytest plugin (entry point `pytest11`): the mock in one fixture.

* `mockserver_server` (session scope): the server the tests talk to: started in this process
  on a free loopback port, or the one at `--mockserver-url URL` (`MOCKSERVER_URL`), e.g. a
  container in CI.
* `mock` (function scope): a `mockserver.Client` on a session of its own (`X-Mock-Session`),
  fresh from the server's start-up state, so tests never see each other's records, rules or
  journal, also in parallel (pytest-xdist). `mock.api_url` names the session in the URL, so a
  client under test needs no extra header.
* `@pytest.mark.mockserver(...)` (on a test, class or module): `seed_records=N` and
  `scenario=FILE` are applied to the test's session; other `Settings` (`spec`, `tokens`,
  `auth`, `strict`...) get an in-process server of their own (one per configuration).

The plugin imports the server only when a fixture is used: pytest runs that need none pay
nothing for it.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mockserver.testing.client import Client
    from mockserver.testing.embedded import MockServer

MARKER = "mockserver"
URL_VARIABLE = "MOCKSERVER_URL"
ADMIN_VARIABLE = "MOCKSERVER_ADMIN_TOKEN"  # the external server's admin token, if it has one
SESSION_OPTIONS = ("seed_records", "faker_seed", "scenario")  # applied through the control API


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mockserver", "audit API mock server")
    group.addoption(
        "--mockserver-url",
        default=None,
        help=f"use the mock server at this URL instead of one in-process (or ${URL_VARIABLE})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(seed_records=0, scenario=None, spec=None, tokens=None, **settings): "
        "the mock server state and configuration a test needs",
    )


class Servers:
    """The servers of a test run: the external one, or in-process ones by configuration."""

    def __init__(self, external: str | None) -> None:
        self.external = external.rstrip("/") if external else None
        self._running: dict[tuple[tuple[str, Any], ...], MockServer] = {}

    def url(self, options: dict[str, Any]) -> str:
        """The root URL of a server with these settings (none: the default one)."""
        if self.external is not None:
            if options:
                pytest.skip(
                    f"needs a server configured with {', '.join(sorted(options))}; "
                    "--mockserver-url gives one server as it is"
                )
            return self.external
        key = tuple(sorted((name, repr(value)) for name, value in options.items()))
        if key not in self._running:
            from mockserver.testing.embedded import MockServer

            self._running[key] = MockServer(**options).start()
        return self._running[key].url

    def close(self) -> None:
        for server in self._running.values():
            server.stop()
        self._running.clear()


class _Server:
    """What `mockserver_server` gives: the default server's URLs and its control API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.api_url = f"{url}/public/v1"

    def client(self, session: str | None = None) -> Client:
        from mockserver.testing.client import Client

        return Client(self.url, session, admin_token=os.environ.get(ADMIN_VARIABLE))


@pytest.fixture(scope="session")
def mockserver_servers(pytestconfig: pytest.Config) -> Iterator[Servers]:
    external = pytestconfig.getoption("--mockserver-url") or os.environ.get(URL_VARIABLE)
    servers = Servers(external)
    yield servers
    servers.close()


@pytest.fixture(scope="session")
def mockserver_server(mockserver_servers: Servers) -> _Server:
    return _Server(mockserver_servers.url({}))


_numbers = itertools.count(1)


def session_name(nodeid: str) -> str:
    """A session name of its own for a test: worker, a number, and the test's name."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    test = re.sub(r"[^A-Za-z0-9._-]+", "-", nodeid.rsplit("::", 1)[-1]).strip("-")
    return f"{worker}-{next(_numbers)}-{test}"[:64]


@pytest.fixture
def mock(request: pytest.FixtureRequest, mockserver_servers: Servers) -> Client:
    """The control API on a fresh session of its own; `mock.api_url` for the client under
    test."""
    from mockserver.testing.client import Client

    marker = request.node.get_closest_marker(MARKER)
    options = dict(marker.kwargs) if marker else {}
    session_options = {k: options.pop(k) for k in SESSION_OPTIONS if k in options}
    token = options.get("admin_token") or os.environ.get(ADMIN_VARIABLE)
    client = Client(
        mockserver_servers.url(options), session_name(request.node.nodeid), admin_token=token
    )
    client.reset()
    _prepare(client, session_options)
    return client


def _prepare(client: Client, options: dict[str, Any]) -> None:
    """Seed records and scenario rules into the test's session."""
    if options.get("seed_records"):
        from mockserver.resources.seeding import Seeder

        seeder = Seeder(options.get("faker_seed"))
        client.add_records(*seeder.records(int(options["seed_records"])))
    if options.get("scenario"):
        from mockserver.faults.scenario import read_rules

        rules = read_rules(Path(options["scenario"]))  # the server checks each rule
        client.add_faults([{**rule, "session": client.session} for rule in rules])
