"""Imported by uWSGI (`--import`) in each worker as it loads the app (`--lazy-apps`): the
worker draws ids of its own (`resources.ids.reseed`: uWSGI's fork runs no `os.register_at_fork`
handler), handles the stop itself (`serving.stop.install`), says when it replaces a worker
that ended unexpectedly (`_started_again`; health counts them, `workerRestarts`), takes its
slot in the table that spreads connections over the workers (`serving.balance`), starts its
loop (`--serving loop`, `serving.loop`), keeps to its CPU with `--pin-workers`
(`serving.affinity`), and warms its validators in the background (openapi-core, which
start-up leaves out, is loaded while the worker already answers: the first request that needs
it seldom waits for it)."""

from __future__ import annotations

import threading

from mockserver import log, wsgi
from mockserver.resources import ids
from mockserver.serving import affinity, balance, front, stop
from mockserver.state import State


def _warm(state: State) -> None:
    try:
        state.validator.warm()
        state.control_validator.warm()
    except Exception:  # a request that needs them makes them again, and says what is wrong
        log.logger.exception("warming the validators failed")


def _join_the_table() -> None:
    """This worker's slot in the connections' table (`serving.balance`; several workers)."""
    if balance.TABLE is not None:
        import uwsgi

        balance.TABLE.join(int(uwsgi.worker_id()) - 1)


def _restarts() -> int:
    """The times uWSGI's master started one of its workers again: each time, the one before
    had ended unexpectedly (killed, or crashed; a stop starts none again)."""
    import uwsgi

    return sum(int(worker["respawn_count"]) for worker in uwsgi.workers())


def _started_again(state: State) -> None:
    """Said in one line when this worker replaces one that ended unexpectedly: on the memory
    store, what that one held since start-up is gone."""
    import uwsgi

    worker = int(uwsgi.worker_id())
    again = next((w["respawn_count"] for w in uwsgi.workers() if w["id"] == worker), 0)
    if not again:
        return
    shared = state.settings.store != "memory"
    log.logger.warning(
        "worker %d started again (restart %d): the one before it ended unexpectedly "
        "(killed, or crashed); %s",
        worker,
        again,
        "the store holds what it made"
        if shared
        else "the memory store starts again from the start-up state: what it made since is lost",
    )


def _pin(state: State) -> None:
    """With `--pin-workers`: this worker's threads on its CPU, said in one line."""
    if state.settings.pin_workers:
        import uwsgi

        worker = int(uwsgi.worker_id())
        cpu = affinity.cpu_for(worker, affinity.usable())
        affinity.pin(cpu)
        log.logger.info("worker %d pinned to CPU %d (--pin-workers)", worker, cpu)


ids.reseed()
stop.install()
_join_the_table()
if wsgi.application is not None:
    _state: State = wsgi.application.extensions["mockserver"]
    _state.restarts = _restarts
    _started_again(_state)
    _pin(_state)
    if _state.settings.loop:
        front.start_loop(_state.settings.threads)
    threading.Thread(target=_warm, args=(_state,), name="warm", daemon=True).start()
