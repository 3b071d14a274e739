"""Shared fixtures: in-process apps (Flask test client) and real servers (the console script).

Every app and server here runs with response checking on: each response any test sees is
validated against the spec with openapi-core, and a test fails when one does not conform.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis_server import ENGINES, RedisServer, forget, unique_prefix
from support import AUTH, PUBLISHED_SPEC, REFERENCE, Server, nonconforming, reference
from werkzeug.test import TestResponse

from mockserver import Settings, create_app


def pytest_report_header(config: pytest.Config) -> str:
    """One line saying whether the platform's reference documents are there."""
    if REFERENCE.exists():
        return f"reference documents: {REFERENCE}"
    return f"reference documents: {REFERENCE} absent: the tests that read them are skipped"


# ---------------------------------------------------------------- in-process apps


class Api(FlaskClient):
    """A test client that sends the bearer token unless a test passes its own headers."""

    def open(self, *args: Any, **kwargs: Any) -> TestResponse:
        headers = kwargs.pop("headers", None)
        kwargs["headers"] = AUTH if headers is None else headers
        return super().open(*args, **kwargs)


def findings(app: Flask) -> list[Any]:
    checker = app.extensions["mockserver"].checker
    return list(checker.findings) if checker else []


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """Build apps with given settings; afterwards every response they gave must conform."""
    made: list[tuple[Flask, bool]] = []

    def make(strict_conformance: bool = True, **settings: Any) -> Flask:
        settings.setdefault("check_responses", True)
        app = create_app(Settings(**settings))
        app.test_client_class = Api
        made.append((app, strict_conformance))
        return app

    yield make
    for app, strict_conformance in made:
        found = findings(app)
        if not strict_conformance:  # a foreign spec may leave statuses undocumented
            found = [f for f in found if f.kind != "undocumented"]
        assert not found, "responses that do not conform to the spec:\n" + "\n".join(
            map(str, found)
        )


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def api(app: Flask) -> Api:
    client = app.test_client()
    assert isinstance(client, Api)
    return client


# ---------------------------------------------------------------- real servers


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    """One server with the bundled spec for the whole session (tests use their own object ids)."""
    running = Server(["--seed-records", "200", "--faker-seed", "7"]).start()
    yield running
    assert running.stop() == 0
    assert not nonconforming(running), "\n".join(nonconforming(running))


@pytest.fixture(scope="session")
def published_server() -> Iterator[Server]:
    """A server running the platform's own published audit spec (with its quirks)."""
    running = Server(["--spec", str(reference(PUBLISHED_SPEC))]).start()
    yield running
    assert running.stop() == 0
    problems = [line for line in nonconforming(running) if "undocumented:" not in line]
    assert not problems, "\n".join(problems)


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start servers with given arguments; they are stopped after the test."""
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> Server:
        running = Server(list(args), env or {}, **kwargs).start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process and running.process.poll() is None:
            running.stop()


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server (no persistence) for this test process (each xdist worker its own)."""
    server = RedisServer().start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture
def redis_prefix(redis_server: RedisServer) -> Iterator[str]:
    """A key prefix of this test's own, its keys deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    forget(redis_server, prefix)


@pytest.fixture(scope="session")
def valkey_server() -> Iterator[RedisServer]:
    """A real valkey-server (no persistence) for this test process, as `redis_server`."""
    server = RedisServer(binary=ENGINES["valkey"]).start()
    yield server
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(params=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> RedisServer:
    """Redis 7 or Valkey, the engines the store works on: a test taking it runs on each."""
    server: RedisServer = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture
def engine_prefix(engine: RedisServer) -> Iterator[str]:
    """A key prefix of this test's own on `engine`, its keys deleted afterwards."""
    prefix = unique_prefix()
    yield prefix
    forget(engine, prefix)
