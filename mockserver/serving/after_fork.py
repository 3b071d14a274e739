"""Imported by uWSGI (`--import`) before it forks its worker: the worker then runs
`serving.stop.install` first thing (`uwsgi.post_fork_hook`), and warms its validators in the
background (openapi-core, which start-up leaves out, is loaded while the worker already
answers: the first request that needs it seldom waits for it)."""

from __future__ import annotations

import threading

import uwsgi  # only importable inside uWSGI

from mockserver import log, wsgi
from mockserver.serving import stop
from mockserver.state import State


def after_fork() -> None:
    stop.install()
    if wsgi.application is not None:
        state: State = wsgi.application.extensions["mockserver"]
        threading.Thread(target=_warm, args=(state,), name="warm", daemon=True).start()


def _warm(state: State) -> None:
    try:
        state.validator.warm()
        state.control_validator.warm()
    except Exception:  # a request that needs them makes them again, and says what is wrong
        log.logger.exception("warming the validators failed")


uwsgi.post_fork_hook = after_fork
