"""SIGTERM in uWSGI's worker: at most `SHUTDOWN_GRACE` seconds, whatever is in flight.

On SIGTERM uWSGI's master sends its worker SIGHUP (`gracefully_kill_them_all`) and waits for it
without a limit; left to itself, the worker would wait for every request, a 30 s delay too.
Here the worker handles that SIGHUP itself (`install`, run right after the fork): every delay
ends at once (`faults.waiting.STOPPING`: delayed requests are answered), the requests in flight
(`InFlight`) get the rest of the grace, then the exit handlers run (the `--state-file` is
written, the logs flushed) and the worker exits, cutting what is still open (slow clients, a
stream); the master then exits too. `docker stop` (SIGTERM, SIGKILL 10 s later) thus finds
the state file written.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mockserver import log
from mockserver.faults import waiting

SHUTDOWN_GRACE = 5  # seconds in-flight requests get to finish after SIGTERM
STOP_SIGNAL = signal.SIGHUP  # what uWSGI's master sends its worker on SIGTERM

WSGI = Callable[[dict[str, Any], Any], Iterable[bytes]]


class InFlight:
    """A WSGI middleware that knows the requests being served, their answers until written."""

    def __init__(self, app: WSGI) -> None:
        self.app = app
        self.open: set[int] = set()  # set.add and set.discard are atomic: no lock to take

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        key = id(environ)
        self.open.add(key)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self.open.discard(key)
            raise
        return _Closing(result, self.open, key)

    @property
    def count(self) -> int:
        return len(self.open)


class _Closing:
    """An answer's iterable that says when the server is done with it (WSGI's `close`, which
    uWSGI calls once the answer is written)."""

    __slots__ = ("inner", "key", "open")

    def __init__(self, inner: Iterable[bytes], open_: set[int], key: int) -> None:
        self.inner = inner
        self.open = open_
        self.key = key

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.inner)

    def close(self) -> None:
        try:
            closing = getattr(self.inner, "close", None)
            if closing is not None:
                closing()
        finally:
            self.open.discard(self.key)


_in_flight: InFlight | None = None


def watch(in_flight: InFlight) -> None:
    """The counter `install` waits on (set before uWSGI starts)."""
    global _in_flight
    _in_flight = in_flight


def install() -> None:
    """In the worker, right after the fork (`uwsgi.post_fork_hook`): SIGHUP starts the stop.
    Python's own handler only notes the signal; a thread, woken by the wake-up descriptor,
    does the stopping."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    signal.signal(STOP_SIGNAL, lambda signum, frame: None)
    threading.Thread(target=_wait_for_signal, args=(read,), name="stop", daemon=True).start()


def _wait_for_signal(read: int) -> None:
    while STOP_SIGNAL not in os.read(read, 64):
        pass
    stop()


def stop() -> None:
    """End the delays, give the requests in flight the grace, run the exit handlers, exit."""
    waiting.STOPPING.set()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    while _in_flight is not None and _in_flight.count > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if _in_flight is not None and _in_flight.count > 0:
        log.logger.warning(
            "stopping: %d requests still in flight after the %d s grace are cut",
            _in_flight.count,
            SHUTDOWN_GRACE,
        )
    atexit._run_exitfuncs()
    os._exit(0)
