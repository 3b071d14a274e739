"""A delay (a rule's `delay_ms`, `Prefer: delay=`) that ends when its client hangs up or the
server stops, waited in the request's thread: on a server that gives each connection a thread
of its own (werkzeug's, in-process tests). Under uWSGI the delay is handed over instead and
holds no thread (`http.delayed`, `faults.delay_loop`, which shares STOPPING and SLICE).

The request's thread waits on its client's connection (`poll` for the peer's FIN or a reset,
not for data: a pipelined request does not end the wait) in slices of `SLICE`, so a client
that leaves frees the thread within a slice, and `STOPPING` (set by the server on SIGTERM,
`serving.stop`) ends every delay at once: the delayed request is then answered, and SIGTERM
waits for no delay.
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import Any

from mockserver.faults import connection

STOPPING = threading.Event()  # the server is stopping: no delay waits any longer
SLICE = 0.1  # seconds between two looks at STOPPING
_GONE = select.POLLRDHUP | select.POLLHUP | select.POLLERR | select.POLLNVAL


def delay(seconds: float, environ: dict[str, Any]) -> bool:
    """Wait `seconds`; False when the client hung up meanwhile (nothing is then to be sent)."""
    try:
        fd = os.dup(connection.descriptor(environ))
    except (connection.NoSocket, OSError):  # a server that hides the connection: just wait
        STOPPING.wait(seconds)
        return True
    try:
        return _wait(fd, time.monotonic() + seconds)
    finally:
        os.close(fd)


def _wait(fd: int, deadline: float) -> bool:
    poller = select.poll()
    poller.register(fd, _GONE)
    while not STOPPING.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return True
        if poller.poll(min(left, SLICE) * 1000):
            return False
    return True
