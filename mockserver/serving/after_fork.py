"""Imported by uWSGI (`--import`) in its worker as it loads the app (`--lazy-apps`): the
worker handles the stop itself (`serving.stop.install`)."""

from __future__ import annotations

from mockserver.serving import stop

stop.install()
