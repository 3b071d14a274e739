"""openapi-core, imported whole, once, by one thread at a time.

The server imports openapi-core on first use (a quarter of a second), from whichever thread
needs it first: a request's, or the one that warms the validators once a worker serves
(`serving.after_fork`). Its package imports its submodules in a cycle, so two threads that
import parts of it at once can each hold a module the other waits for; Python then raises
`_DeadlockError` in one of them (a request answered 500, or a traceback in the log). Every place
that imports from openapi-core lazily calls `load` first: the first call imports the whole
package under a lock, and the imports after it only look the modules up.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_loaded = False


def load() -> None:
    """Import openapi-core whole (and its werkzeug adapter), unless done already."""
    global _loaded
    if _loaded:
        return
    with _lock:
        if not _loaded:
            import openapi_core.contrib.werkzeug  # noqa: F401  (the package first, whole)

            _loaded = True
