"""`--pin-workers`: each worker process kept on one CPU, the workers on the CPUs the server may
use in turn (worker 1 on the first, worker 2 on the second, ...; `taskset -c 2,3 mockserver`
chooses them).

A request's thread sleeps and wakes several times (its client, its turn, the GIL, Redis). A
thread woken on another core than its waker's costs that core an interrupt and a switch, and
on a virtual machine an idle core is woken through the hypervisor. With every thread of a
worker on one core, the waker's core runs the woken thread next: on this project's 2-core VM a
GET by id switched threads 1.3 times instead of 6.3 and cost 156 µs of CPU, not 395; memory x 1
served 1.3x to 1.9x the GETs a second in most rounds (docs/performance.md). The price: a
pinned worker stays on its core when other work keeps that core busy (it then serves less),
so it is a choice, not the default."""

from __future__ import annotations

import os
from collections.abc import Sequence


def usable() -> list[int]:
    """The CPUs this process may run on, in order."""
    return sorted(os.sched_getaffinity(0))


def cpu_for(worker: int, cpus: Sequence[int]) -> int:
    """The CPU of worker `worker` (uWSGI's ids: 1, 2, ...), the workers on `cpus` in turn."""
    return cpus[(worker - 1) % len(cpus)]


def pin(cpu: int) -> None:
    """Every thread of this process kept on `cpu` (Linux sets a thread's affinity, not a
    process's; threads started later take their starter's)."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {cpu})
        except ProcessLookupError:  # the thread ended meanwhile
            continue
