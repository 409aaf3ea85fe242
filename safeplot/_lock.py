"""The process-wide plotting lock: re-entrancy, timeouts, statistics, fork safety."""

from __future__ import annotations

import contextvars
import logging
import math
import os
import sys
import threading
import time
from types import FrameType, TracebackType
from typing import Any

from ._errors import LockTimeout

TIMEOUT_ENV = "SAFEPLOT_TIMEOUT"
DEFAULT_LONG_HOLD = 10.0
logger = logging.getLogger("safeplot")
_INTERNAL_PACKAGES = frozenset({"safeplot", "matplotlib", "contextlib", "functools"})
_PYPLOT_MODULES = frozenset({"matplotlib.pyplot", "safeplot._backend"})


def call_site(named: str = "") -> tuple[str, int, str]:
    """Where the code calling into safeplot or matplotlib is: (file, line, function called).

    Walks up the stack past safeplot's and matplotlib's frames (and contextlib's
    and functools' wrappers); the function is the outermost pyplot function
    passed (safeplot's replacement ``savefig`` included), ``named`` if none was.
    """
    frame: FrameType | None = sys._getframe(1)
    function = named
    while frame is not None:
        module = frame.f_globals.get("__name__") or ""
        if module.partition(".")[0] not in _INTERNAL_PACKAGES:
            return frame.f_code.co_filename, frame.f_lineno, function
        if module in _PYPLOT_MODULES:
            function = frame.f_code.co_name
        frame = frame.f_back
    return "<unknown>", 0, function


def check_timeout(value: object, *, name: str = "timeout") -> float | None:
    """Validate a timeout in seconds; return it as a float, or None for "wait forever".

    Raises TypeError for a non-number (bools included) and ValueError for a
    negative or NaN number.  ``math.inf`` means the same as None.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {value!r}")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{name} must be >= 0 seconds or None, not {value!r}")
    return None if math.isinf(seconds) else seconds


class _Stats:
    __slots__ = (
        "acquisitions",
        "encode_windows",
        "figures_closed",
        "hold_seconds_max",
        "hold_seconds_total",
        "timeouts",
        "wait_seconds_max",
        "wait_seconds_total",
        "waits",
    )

    def __init__(self) -> None:
        self.acquisitions = 0
        self.encode_windows = 0
        self.waits = 0
        self.timeouts = 0
        self.figures_closed = 0
        self.wait_seconds_total = 0.0
        self.wait_seconds_max = 0.0
        self.hold_seconds_total = 0.0
        self.hold_seconds_max = 0.0


class PlotLock:
    """A re-entrant lock with the interface of ``threading.RLock``, plus:

    * ``with lock:`` waits at most the process-wide default timeout (see
      :func:`safeplot.configure`) and raises :class:`safeplot.LockTimeout`
      when it runs out; ``acquire()`` itself behaves exactly like RLock's and
      returns False on a timeout;
    * it knows its holder, for error messages and :func:`safeplot.stats`;
    * after ``os.fork()`` the child gets it unheld, unless the forking thread
      itself held it (then that thread still holds it in the child, at the same
      depth, and releases it as usual).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._stats_mutex = threading.Lock()
        self._owner: int | None = None
        # Set while the hold is an ASGI request's (see context_owner): then it is the
        # caller's only if its context carries that request, whichever thread holds it.
        self._context_owner: object | None = None
        self._owner_name: str | None = None
        self._depth = 0
        self._acquired_at = 0.0
        self._taken_at: tuple[str, int, str] | None = None
        self._stats = _Stats()
        self.default_timeout: float | None = None
        self.long_hold: float | None = DEFAULT_LONG_HOLD
        self.encode_window = True  # see configure()

    def __repr__(self) -> str:
        holder = f"held by {self._owner_name!r} depth={self._depth}" if self._owner else "unheld"
        return f"<safeplot.lock {holder}>"

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, as ``threading.RLock.acquire`` does.

        Returns True once held (at once if this thread already holds it), or
        False if ``blocking`` is False and the lock is taken, or if ``timeout``
        seconds passed first.  Raises ValueError for a timeout with
        ``blocking=False``, like RLock.
        """
        return self._acquire(blocking, timeout, counted=True)

    def _acquire(self, blocking: bool, timeout: float, *, counted: bool) -> bool:
        me = threading.get_ident()
        if self._held_by_caller():
            self._depth += 1
            return True
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        if not self._mutex.acquire(False):
            if not blocking:
                return False
            started = time.monotonic()
            got = self._mutex.acquire(True, timeout)
            waited = time.monotonic() - started
            self._record_wait(waited, timed_out=not got)
            if not got:
                return False
        self._owner = me
        self._owner_name = threading.current_thread().name
        self._depth = 1
        self._taken_at = call_site() if self.long_hold is not None else None
        self._acquired_at = time.monotonic()
        if counted:
            with self._stats_mutex:
                self._stats.acquisitions += 1
        return True

    def _record_wait(self, waited: float, *, timed_out: bool) -> None:
        with self._stats_mutex:
            stats = self._stats
            stats.waits += 1
            stats.timeouts += timed_out
            stats.wait_seconds_total += waited
            stats.wait_seconds_max = max(stats.wait_seconds_max, waited)

    def acquire_within(self, timeout: float | None) -> None:
        """Acquire, waiting at most ``timeout`` seconds (None: forever).

        Raises :class:`safeplot.LockTimeout`, naming the holder, if the time runs out.
        """
        if not self.acquire(True, -1 if timeout is None else timeout):
            raise LockTimeout(timeout if timeout is not None else math.inf, self._owner_name)

    def release(self) -> None:
        """Release one level of this thread's hold; the last release frees the lock.

        Raises RuntimeError if the calling thread does not hold the lock.
        """
        if not self._held_by_caller():
            raise RuntimeError("cannot release un-acquired lock")
        self._depth -= 1
        if self._depth:
            return
        held = time.monotonic() - self._acquired_at
        try:
            # Logged while still held, so that whoever takes the lock next
            # finds the record already written.
            self._log_long_hold(held)
        finally:
            self._owner = None
            self._owner_name = None
            self._context_owner = None
            with self._stats_mutex:
                stats = self._stats
                stats.hold_seconds_total += held
                stats.hold_seconds_max = max(stats.hold_seconds_max, held)
            self._mutex.release()

    def _held_depth(self) -> int:
        """How many times the calling thread holds the lock (0: not at all)."""
        return self._depth if self._held_by_caller() else 0

    def _release_for_window(self) -> tuple[int, tuple[str, int, str] | None]:
        """Release every level of this thread's hold at once; return what :meth:`_end_window` needs.

        Raises RuntimeError if the calling thread does not hold the lock.
        """
        depth = self._held_depth()
        if not depth:
            raise RuntimeError("cannot release un-acquired lock")
        with self._stats_mutex:
            self._stats.encode_windows += 1
        taken_at = self._taken_at
        self._depth = 1
        self.release()
        return depth, taken_at

    def _end_window(self, hold: tuple[int, tuple[str, int, str] | None]) -> None:
        """Take the lock back after :meth:`_release_for_window`, waiting as long as it takes (no timeout).

        Not counted as an acquisition: the group that opened the window was.
        """
        self._acquire(True, -1, counted=False)
        self._depth, self._taken_at = hold  # a long hold is reported where the group began

    def _log_long_hold(self, held: float) -> None:
        long_hold = self.long_hold
        if long_hold is not None and held > long_hold and self._taken_at is not None:
            filename, lineno, _ = self._taken_at
            logger.warning(
                "safeplot.lock was held for %.2f s (over %g s) by thread %r; taken at %s:%d",
                held,
                long_hold,
                self._owner_name,
                filename,
                lineno,
            )

    def __enter__(self) -> PlotLock:
        self.acquire_within(self.default_timeout)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def is_owned(self) -> bool:
        """Whether the calling thread holds the lock."""
        return self._held_by_caller()

    def _held_by_caller(self) -> bool:
        # A hold claimed for a context (an ASGI request) is held by every thread running it.
        if self._context_owner is not None:
            return self._context_owner is context_owner.get()
        return self._owner == threading.get_ident()

    def _claim_for_context(self) -> None:
        """Make this thread's hold the hold of its context's owner (an ASGI request), not the thread's.

        The thread may then run other contexts' work (a thread pool's): for
        them the lock is not held.  The owner ends the hold with
        :meth:`_take_over`, in whatever thread runs its context then.
        """
        if not self._held_by_caller():
            raise RuntimeError("cannot claim un-acquired lock")
        self._context_owner = context_owner.get()

    def _take_over(self) -> None:
        """Hold, in the calling thread, the hold this context's owner claimed in another; never waits.

        Raises RuntimeError if the lock is not held for this context's owner.
        """
        owner = context_owner.get()
        if owner is None or self._context_owner is not owner:
            raise RuntimeError("safeplot.lock is not held for this context")
        self._owner = threading.get_ident()
        self._owner_name = threading.current_thread().name
        self._depth = 1  # the whole hold: a level the context's code never released goes with it

    @property
    def holder(self) -> str | None:
        """The name of the thread holding the lock, or None when it is free."""
        return self._owner_name

    def count_figures_closed(self, count: int) -> None:
        with self._stats_mutex:
            self._stats.figures_closed += count

    def stats(self) -> dict[str, Any]:
        with self._stats_mutex:
            snapshot: dict[str, Any] = {name: getattr(self._stats, name) for name in _Stats.__slots__}
        snapshot["holder"] = self._owner_name
        return snapshot

    def _reinit_after_fork(self) -> None:
        self._context_owner = None
        self._mutex = threading.Lock()
        self._stats_mutex = threading.Lock()
        self._stats = _Stats()
        if self._owner is not None and self._owner == threading.get_ident():
            self._mutex.acquire()
        else:
            self._owner = None
            self._owner_name = None
            self._depth = 0


# Who holds the lock in a context (an ASGI request, in every thread its code runs in).
context_owner: contextvars.ContextVar[object | None] = contextvars.ContextVar(
    "safeplot_context_owner", default=None
)
lock = PlotLock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lock._reinit_after_fork)

_UNSET: Any = object()


def configure(
    *, timeout: float | None = _UNSET, long_hold: float | None = _UNSET, encode_window: bool = _UNSET
) -> None:
    """Set process-wide defaults; arguments not given keep their value.

    ``timeout``: seconds that ``safeplot.locked()``, ``with safeplot.lock:``
    and the helpers wait for the lock before raising
    :class:`safeplot.LockTimeout`; None waits forever (the default, unless the
    ``SAFEPLOT_TIMEOUT`` environment variable set one at import).

    ``long_hold``: a hold of the lock longer than this many seconds (a group,
    a request under the middleware) logs one WARNING on the ``safeplot``
    logger, saying for how long and where the lock was taken; None turns that
    off.  Default 10.

    ``encode_window``: whether a ``locked()`` group lets the lock go while PIL
    encodes a raster image of one of its own pyplot figures (default True).
    Turn it off when code inside groups holds a lock of its own across
    ``savefig``: re-taking safeplot's lock while holding it could deadlock
    with a group that takes safeplot's lock and then that one.

    Raises TypeError/ValueError for a timeout that is not None or a number >=
    0, TypeError for an ``encode_window`` that is not a bool.
    """
    if timeout is not _UNSET:
        lock.default_timeout = check_timeout(timeout)
    if long_hold is not _UNSET:
        lock.long_hold = check_timeout(long_hold, name="long_hold")
    if encode_window is not _UNSET:
        if not isinstance(encode_window, bool):
            raise TypeError(f"encode_window must be True or False, not {encode_window!r}")
        lock.encode_window = encode_window


def stats() -> dict[str, Any]:
    """Counters of the plotting lock since the process started (or forked).

    Keys: ``acquisitions``, ``waits`` (acquires that had to wait, timed out or not),
    ``timeouts``, ``figures_closed`` (by groups), ``wait_seconds_total``,
    ``wait_seconds_max``, ``hold_seconds_total``, ``hold_seconds_max``, and
    ``holder``: the name of the thread holding the lock now, or None.
    """
    return lock.stats()


def _timeout_from_env(raw: str | None) -> float | None:
    if raw is None or not raw.strip() or raw.strip().lower() == "none":
        return None
    try:
        return check_timeout(float(raw), name=TIMEOUT_ENV)
    except (TypeError, ValueError):
        raise ValueError(f"{TIMEOUT_ENV}={raw!r}: expected a number of seconds >= 0 or 'none'") from None


lock.default_timeout = _timeout_from_env(os.environ.get(TIMEOUT_ENV))
