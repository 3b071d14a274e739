"""The process's open-files limit (`ulimit -n`, RLIMIT_NOFILE) raised, before uWSGI forks its
workers, to what the server's own bounds may hold at once: each worker's connections
(`--threads`) and as many connections to Redis, the delayed requests the delay loop holds
(`faults.delay_loop.LIMIT`), and a few more (the listening socket, the log, files). A soft
limit of 1 024 (the usual default) would refuse connections long before those bounds, and
silently: uWSGI's accept fails with EMFILE. Only the soft limit moves, up to the hard one;
a hard limit below the need is said in one warning line at start-up."""

from __future__ import annotations

import resource

from mockserver import log
from mockserver.faults import delay_loop

SPARE = 64  # descriptors besides connections: the listening socket, the log, files, epoll


def needed(threads: int) -> int:
    """Descriptors a worker may hold at once with `threads` (`--threads`)."""
    return 2 * threads + delay_loop.LIMIT + SPARE


def raise_limit(threads: int) -> None:
    """The soft limit raised to `needed(threads)` (at most the hard limit), said in the log."""
    need = needed(threads)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.logger.info("open files limit (ulimit -n) raised from %d to %d", soft, target)
    if target < need:
        log.logger.warning(
            "open files limit (ulimit -n) is %d, its hard limit: fewer than the %d that "
            "--threads %d and the %d delayed requests held may need; past it new connections "
            "are refused (raise it: ulimit -Hn, systemd's LimitNOFILE=, docker --ulimit nofile=)",
            target,
            need,
            threads,
            delay_loop.LIMIT,
        )
