"""Sockets whose read and write timeouts the kernel keeps.

A socket with a timeout of Python's own (`settimeout`) makes CPython poll before every read
and every write: a system call more each time, and the GIL let go and taken back once more,
which under load wakes another thread each time. Measured on the server's connections
(`bench/cpu.py`, memory x 1, 8 connections): 9.4 context switches a GET by id with Python's
timeouts, 4.9 with the kernel's, and 4 to 22 % less CPU a request (bench/README.md, "Socket
timeouts kept by the kernel").

And system calls made holding the GIL (`holding_the_gil`): CPython lets the GIL go around
every system call it makes, and a thread that wants it back while another runs Python waits
until that one is made to let go (up to `sys.getswitchinterval()`, 5 ms), once for every call.
A call that cannot wait (a `recv` that does not block, a `dup`) is cheaper made through libc
with the GIL kept.
"""

from __future__ import annotations

import ctypes
import socket
import struct
from typing import Any


def timed_by_the_kernel(sock: socket.socket, seconds: float) -> None:
    """`sock` blocking, each read and each write given up after `seconds` by the kernel
    (SO_RCVTIMEO, SO_SNDTIMEO): a read or a write whose time runs out raises BlockingIOError
    (a write may have written part of its bytes first)."""
    sock.settimeout(None)
    limit = struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)


def holding_the_gil(name: str, restype: Any, *argtypes: Any) -> Any:
    """libc's `name`, called holding the GIL (`ctypes.PyDLL`; errno kept for
    `ctypes.get_errno`); None where it cannot be had. Only for calls that never block."""
    try:
        function = getattr(ctypes.PyDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = restype
    return function
