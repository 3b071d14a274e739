"""Imported by uWSGI (`--import`) before it forks its workers: each then runs `after_fork`
first thing (`uwsgi.post_fork_hook`): its own ids' generator, and `serving.stop.install`."""

from __future__ import annotations

import uwsgi  # only importable inside uWSGI

from mockserver.resources import ids
from mockserver.serving import stop


def after_fork() -> None:
    ids.reseed()
    stop.install()


uwsgi.post_fork_hook = after_fork
