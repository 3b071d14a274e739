"""`serving.stop.InFlight`: the requests being served are counted until the server closes
their answer (WSGI's `close`, which uWSGI calls once the answer is written), whatever its
kind: a whole answer (a list, iterated by the server in C) or a stream."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from mockserver.serving.stop import InFlight


def _list_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


class _Stream:
    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield b"a"
        yield b"b"

    def close(self) -> None:
        self.closed = True


def test_a_whole_answer_is_in_flight_until_closed() -> None:
    served = InFlight(_list_app)
    answer = served({}, lambda *args: None)
    assert served.count == 1
    assert isinstance(answer, list)  # the server iterates it itself
    assert list(answer) == [b"ok"]
    assert served.count == 1  # written, not yet closed
    answer.close()  # type: ignore[attr-defined]
    assert served.count == 0


def test_a_stream_is_in_flight_until_closed_and_its_own_close_runs() -> None:
    stream = _Stream()
    served = InFlight(lambda environ, start_response: stream)
    answer = served({}, lambda *args: None)
    assert b"".join(answer) == b"ab"
    assert served.count == 1
    answer.close()  # type: ignore[attr-defined]
    assert stream.closed
    assert served.count == 0


def test_a_request_that_fails_is_not_left_in_flight() -> None:
    def failing(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        raise RuntimeError("boom")

    served = InFlight(failing)
    with pytest.raises(RuntimeError):
        served({}, lambda *args: None)
    assert served.count == 0


def test_requests_are_counted_apart() -> None:
    served = InFlight(_list_app)
    environs: list[dict[str, Any]] = [{}, {}]  # the server holds each until it is answered
    first, second = (served(environ, lambda *args: None) for environ in environs)
    assert served.count == 2
    first.close()  # type: ignore[attr-defined]
    assert served.count == 1
    second.close()  # type: ignore[attr-defined]
    assert served.count == 0
