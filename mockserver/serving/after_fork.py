"""Imported by uWSGI (`--import`) in each worker as it loads the app (`--lazy-apps`): the
worker draws ids of its own (`resources.ids.reseed`: uWSGI's fork runs no `os.register_at_fork`
handler) and handles the stop itself (`serving.stop.install`)."""

from __future__ import annotations

from mockserver.resources import ids
from mockserver.serving import stop

ids.reseed()
stop.install()
