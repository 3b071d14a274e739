"""Imported by uWSGI (`--import`) before it forks its worker: the worker then runs
`serving.stop.install` first thing (`uwsgi.post_fork_hook`)."""

from __future__ import annotations

import uwsgi  # only importable inside uWSGI

from mockserver.serving import stop

uwsgi.post_fork_hook = stop.install
