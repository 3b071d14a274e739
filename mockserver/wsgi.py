"""The WSGI entry point: `mockserver.wsgi:application` is the app the `mockserver` command
built before it started uWSGI.

For other WSGI servers, `build()` makes the app from the `MOCKSERVER_*` variables, as the
command would without flags (e.g. `gunicorn 'mockserver.wsgi:build()'`).
"""

from __future__ import annotations

from flask import Flask

application: Flask | None = None


def build() -> Flask:
    """An app configured from the `MOCKSERVER_*` variables, as the command would build it."""
    from mockserver.app import create_app
    from mockserver.settings import Settings

    return create_app(Settings.from_env())
