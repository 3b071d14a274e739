"""The WSGI entry point uWSGI loads: the app the `mockserver` command built before starting it.

For other WSGI servers: `MOCKSERVER_*` variables configure the app built here on first import
when the command did not build one (e.g. `gunicorn 'mockserver.wsgi:build()'`).
"""

from __future__ import annotations

from flask import Flask

application: Flask | None = None


def build() -> Flask:
    """An app configured from the `MOCKSERVER_*` variables, as the command would build it."""
    from mockserver.app import create_app
    from mockserver.cli import parser, settings_from

    return create_app(settings_from(parser().parse_args([])))
