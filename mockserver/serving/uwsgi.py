"""Running the app on a production WSGI server: uWSGI (pyuwsgi), one process (or
`--processes N` on a shared store), many threads (or a loop: `serving.loop`).

One worker process keeps the in-memory store shared by every request; its loop (one thread
serving every connection in turn, others taking over while a request waits: `--serving`) or
its threads serve requests concurrently (delays and slow clients do not block others). On a
Redis store, N workers forked from the process that built the app share what Redis holds
(settings refuse N > 1 on the memory store). uWSGI accepts the connections on its raw socket
and hands each to `serving.front`, which speaks HTTP/1.1 on it (llhttp parses, in C) and calls
the app; the front's socket (in the environ) is the one connection faults act on.

The app is built before uWSGI starts, so a bad spec or tokens file stops the command with a
clear message; uWSGI then serves that very app object (`mockserver.wsgi:application`).
"""

from __future__ import annotations

import errno
import gc
import shlex
import socket
from pathlib import Path

from flask import Flask

from mockserver import log, wsgi
from mockserver.proxy import drift
from mockserver.proxy.forward import PROXY
from mockserver.serving import balance, descriptors, stop
from mockserver.serving.stop import SHUTDOWN_GRACE
from mockserver.sessions.tally import exit_command
from mockserver.settings import Settings

RAW_ENTRY = Path(__file__).with_name("raw_entry.py")  # its `application`: `front.serve_connection`
# when uWSGI's master kills a worker still stopping: after its grace and a minute to save
STOP_MERCY = SHUTDOWN_GRACE + 60
ACCEPTING = 2  # uWSGI's threads in a worker with a loop: they accept, the loop serves


class StartupError(Exception):
    """The server cannot start; the message says why."""


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_port(host: str, port: int) -> None:
    """Fail fast, with a clear message, when the address is taken or cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise StartupError(f"port {port} on {host} is already in use") from exc
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


LOOPBACK = ("127.", "::1", "localhost")


def exposure_warning(settings: Settings) -> list[str]:
    """Lines to log when the control API is open to the network: a non-loopback address
    and no admin token."""
    if settings.admin_token or settings.host.startswith(LOOPBACK):
        return []
    return [
        "!" * 78,
        f"! the control API (/_mock) is open to anyone who can reach {settings.host}:"
        f"{settings.port}:",
        "! they can reset it, read its journal and script its faults, also from the",
        "! dashboard (/_mock/ui), which is open too.",
        "! Set MOCKSERVER_ADMIN_TOKEN (or --admin-token) to protect it.",
        "!" * 78,
    ]


def uwsgi_options(settings: Settings) -> list[str]:
    """uWSGI's command line for these settings."""
    options = [
        "--raw-socket",  # uWSGI accepts, `serving.front` speaks HTTP/1.1 on each connection
        bind_address(settings.host, settings.port),
        "--python-raw",
        str(RAW_ENTRY),
        "--module",
        "mockserver.wsgi:application",
        "--master",
        "--processes",
        str(settings.processes),  # more than one only on a shared store (settings checks)
        "--threads",  # with a loop, uWSGI's threads only accept (`serving.loop`)
        str(ACCEPTING if settings.loop else settings.threads),
        "--enable-threads",
        "--need-app",  # with --lazy-apps: a worker exiting 22 ends the master with 22 (stop.FAILED)
        "--lazy-apps",  # the app (built before the fork) is taken up in the worker
        "--hook-master-start",
        "unix_signal:1 kill_them_all",  # SIGHUP (a terminal's hangup) stops it as SIGTERM does
        "--hook-master-start",
        "unix_signal:15 kill_them_all",  # SIGTERM: SIGINT to the worker (serving.stop), whose
        "--hook-master-start",  # status the master's loop then reads (gracefully_kill_them_all
        "unix_signal:17 worker_wakeup",  # drops it); SIGCHLD wakes that loop at once
        "--import",
        "mockserver.serving.after_fork",  # the worker handles that SIGINT itself:
        *_python_handlers(),  # Python's handlers (set as the app loads) replace uWSGI's
        "--disable-logging",  # the app logs one line per request itself
        "--reload-mercy",
        "10",
        "--worker-reload-mercy",
        str(STOP_MERCY),
    ]
    if settings.log_level != "debug":
        options += ["--logto", "/dev/null"]  # uWSGI's banner; the app keeps its own stderr
    return options


def _python_handlers() -> list[str]:
    """The worker's stop signals handed to Python's handlers (`serving.stop`) once the worker
    accepts: uWSGI sets its own for them then."""
    options = []
    for signum in stop.STOP_SIGNALS:
        options += ["--hook-accepting-once", f"unix_signal:{int(signum)} PyErr_SetInterruptEx"]
    return options


def serve(app: Flask, settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    import pyuwsgi

    in_flight = stop.InFlight(app.wsgi_app)
    app.wsgi_app = in_flight  # type: ignore[method-assign]
    stop.watch(in_flight, app.extensions["mockserver"])
    wsgi.application = app
    gc.freeze()  # what start-up built (spec, validators, seeded stores) is never scanned again
    log_fd = log.keep_stderr()
    url = f"http://{bind_address(settings.host, settings.port)}"
    log.logger.info("serving on %s (health: %s/_mock/health)", url, url)
    for line in exposure_warning(settings):
        log.logger.warning(line)
    descriptors.raise_limit(settings.threads)  # the workers inherit it
    log.before_fork()  # no pending lines for the worker to write again, no thread in the way
    options = uwsgi_options(settings)
    balance.share(settings.processes)  # before the fork: the workers' connections, counted
    holder = app.extensions["mockserver"]
    holder.forked = True
    if holder.tally is not None:  # the master writes the coverage report once its worker is gone
        command = exit_command(holder.spec.path, holder.tally.report, settings.log_format, log_fd)
        options += ["--exec-as-user-atexit", shlex.join(command)]
    proxy = app.extensions.get(PROXY)
    if proxy is not None and settings.drift_report is not None:  # the same, for the drift report
        command = drift.exit_command(settings.drift_report, proxy.url, settings.log_format, log_fd)
        options += ["--exec-as-user-atexit", shlex.join(command)]
    pyuwsgi.run(options)
