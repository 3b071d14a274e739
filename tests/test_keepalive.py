"""Kept-alive connections: uWSGI's HTTP/1.1 socket serves a connection on one thread for as
long as it stays open, so the default number of threads must cover the clients a CI job keeps
connected at once, and the control API must still answer while they are."""

from __future__ import annotations

import http.client
import threading
import time

from support import AUTH, EVENT_TYPES, Server

CLIENTS = 40  # more than the 8 threads of old, fewer than the 64 of today


def test_many_kept_alive_clients_and_the_control_api_are_all_served(server: Server) -> None:
    """Each of 40 clients sends requests on its own connection for 2 s: every one is served
    while the others are still connected (a starved one gets its first answer only when the
    others have closed theirs), and so is the control API."""
    first_answer: list[float] = []
    answers = [0] * CLIENTS
    errors: list[BaseException] = []
    until = time.monotonic() + 2.0

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3)
        try:
            while time.monotonic() < until:
                connection.request("GET", EVENT_TYPES + "?limit=1", headers=AUTH)
                response = connection.getresponse()
                response.read()
                assert response.status == 200
                if answers[number] == 0:
                    first_answer.append(time.monotonic())
                answers[number] += 1
        except BaseException as exc:  # a timeout: the connection was never served
            errors.append(exc)
        finally:
            connection.close()

    clients = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in clients:
        thread.start()
    time.sleep(0.5)
    health = http.client.HTTPConnection("127.0.0.1", server.port, timeout=3)
    health.request("GET", "/_mock/health")
    assert health.getresponse().status == 200
    for thread in clients:
        thread.join()
    assert errors == []
    assert len(first_answer) == CLIENTS
    assert max(first_answer) < until, "a client was served only once the others had gone"
