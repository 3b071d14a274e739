"""SIGTERM in uWSGI's worker: at most `SHUTDOWN_GRACE` seconds, whatever is in flight, and an
exit status that says whether the `--state-file` was saved.

On SIGTERM uWSGI's master sends its worker SIGINT (`kill_them_all`, `serving.uwsgi`'s hook) and
waits for it to end. Here the worker handles that SIGINT itself (`install`, run in the worker
as it loads the app), and a SIGTERM sent to the worker too (`pkill`, `kill -- -PGID`,
systemd's default `KillMode=control-group`: every process of the server at once; uWSGI's own
handler for it could leave the worker, and so the master, running for good). Every delay
ends at once (`faults.waiting.STOPPING`: delayed requests are answered), the requests in
flight (`InFlight`, and the delayed ones `faults.delay_loop` holds) get the rest of the
grace, then the exit handlers run (the `--state-file` is written, the logs flushed) and the
worker exits, cutting what is still open (slow clients, a stream); the master then exits
too. `docker stop` (SIGTERM, SIGKILL 10 s later) thus finds the state file written.

When the state file could not be written, the worker exits with `FAILED`, uWSGI's code for a
worker whose app failed: with `--lazy-apps` and `--need-app` its master then ends the whole
server with that code (uWSGI's master passes no other worker status on).
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
from mockserver.faults import delay_loop, waiting
from mockserver.state import State

SHUTDOWN_GRACE = 5  # seconds in-flight requests get to finish after SIGTERM
STOP_SIGNAL = signal.SIGINT  # what uWSGI's master sends its worker on SIGTERM (kill_them_all)
# any starts the worker's stop; the last two when sent to the worker itself (`pkill`, a
# terminal's hangup, which reaches every process of its foreground group)
STOP_SIGNALS = (STOP_SIGNAL, signal.SIGTERM, signal.SIGHUP)
FAILED = 22  # uWSGI's UWSGI_FAILED_APP_CODE: the one worker status its master exits with

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
        if type(result) is list:  # a whole answer (nearly always): the server iterates it in C
            return _ClosingList(result, self.open, key)
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


class _ClosingList(list[bytes]):
    """A whole answer's list of bytes, with the same `close` (no Python-level `__iter__` for
    the server to call)."""

    __slots__ = ("key", "open")

    def __init__(self, parts: list[bytes], open_: set[int], key: int) -> None:
        super().__init__(parts)
        self.open = open_
        self.key = key

    def close(self) -> None:
        self.open.discard(self.key)


_in_flight: InFlight | None = None
_state: State | None = None
RECEIVING: set[int] = set()  # connections whose request's body is arriving (`serving.front`)


def watch(in_flight: InFlight, state: State) -> None:
    """The counter `install` waits on, and the state whose save decides the exit status (set
    before uWSGI starts)."""
    global _in_flight, _state
    _in_flight = in_flight
    _state = state


def install() -> None:
    """In the worker, as it loads the app (`serving.after_fork`): any of STOP_SIGNALS starts
    the stop. Python's own handler only notes the signal; a thread, woken by the wake-up
    descriptor, does the stopping."""
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write)
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda signum, frame: None)
    threading.Thread(target=_wait_for_signal, args=(read,), name="stop", daemon=True).start()


def _wait_for_signal(read: int) -> None:
    while not (came := set(os.read(read, 64)).intersection(STOP_SIGNALS)):
        pass
    if STOP_SIGNAL not in came:  # not the master's: the whole server stops, not this worker
        os.kill(os.getppid(), signal.SIGTERM)  # alone (a new one would start without its records)
    stop()


def _open() -> int:
    """Requests not yet answered: in the server's threads, those whose body is still arriving,
    and delayed ones handed over (`faults.delay_loop`: their delays end at STOPPING, then they
    are answered)."""
    held = _in_flight.count if _in_flight is not None else 0
    return held + len(RECEIVING) + delay_loop.busy()


def stop() -> None:
    """End the delays, give the requests in flight the grace, run the exit handlers, exit
    (with `FAILED` when the state file could not be saved)."""
    waiting.STOPPING.set()
    deadline = time.monotonic() + SHUTDOWN_GRACE
    while _open() > 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if _open() > 0:
        log.logger.warning(
            "stopping: %d requests still in flight after the %d s grace are cut",
            _open(),
            SHUTDOWN_GRACE,
        )
    atexit._run_exitfuncs()
    os._exit(FAILED if _state is not None and _state.unsaved else 0)
