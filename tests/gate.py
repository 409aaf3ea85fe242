"""A gate a thread waits at *busily*, for tests that need a hold that stays held.

safeplot counts a thread waiting in ``Event.wait`` (or any waiting primitive)
as paused, not at work: under a middleware its request's hold is then set
aside for whoever waits for the lock.  A thread blocked in C on a plain lock
counts as at work, as a thread drawing does.
"""

from __future__ import annotations

import threading


class Gate:
    """Like a ``threading.Event`` to wait for, but waited for on a plain lock (at work, to safeplot)."""

    def __init__(self) -> None:
        self._closed = threading.Lock()
        self._closed.acquire()

    def wait(self, timeout: float) -> bool:
        """Wait until :meth:`open` (True), at most ``timeout`` seconds (False)."""
        if not self._closed.acquire(timeout=timeout):
            return False
        self._closed.release()
        return True

    def open(self) -> None:
        if self._closed.locked():
            self._closed.release()

    def close(self) -> None:
        self._closed.acquire(blocking=False)
