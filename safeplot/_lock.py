"""The process-wide plotting lock: holds by owners, turns, timeouts, statistics, fork safety.

One :class:`PlotLock`, :data:`lock`.  A hold belongs to an owner
(:mod:`safeplot._owners`): a thread, or a request that its threads share and
take turns in.  A wait for the lock can end in three ways: the lock is had, the
time runs out (:class:`safeplot.LockTimeout`), or the request the wait was for
ends (:class:`RequestEnded`: a hold is never taken for a request that has
ended).  A group coming back from its encode window (:mod:`safeplot._encode`)
goes before everyone else waiting, so that it is not starved.
"""

from __future__ import annotations

import _thread
import enum
import functools
import logging
import math
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, Final, Literal, NamedTuple, Protocol, Union

from . import _compat
from ._errors import LockTimeout
from ._owners import JobOwner, Owner, RequestOwner, Runner, Waiter, current, current_request

TIMEOUT_ENV = "SAFEPLOT_TIMEOUT"
DEFAULT_LONG_HOLD = 10.0
logger = logging.getLogger("safeplot")
# Frames call_site walks past: safeplot's, matplotlib's, and the standard library's wrappers they go
# through (contextlib, functools, and collections.abc's MutableMapping.update, which rcParams.update is).
_INTERNAL_PACKAGES = frozenset({"safeplot", "matplotlib", "contextlib", "functools", "collections"})
_PYPLOT_MODULES = frozenset({"matplotlib.pyplot", "safeplot._backend"})
# A wait whose end nobody announces (another thread of the request must park
# first) looks again after this long, doubling up to the second figure.
_FIRST_POLL, _LAST_POLL = 0.001, 0.02


class _Default(enum.Enum):
    """The configured default: given for a timeout (or a :func:`safeplot.configure` argument), it
    stands for the value :func:`safeplot.configure` set (``configure`` itself keeps it as it is)."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "safeplot.DEFAULT"


DEFAULT: Final = _Default.DEFAULT

TimeoutOption = Union[float, None, Literal[_Default.DEFAULT]]


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


def timeout_option(value: object, *, name: str = "timeout") -> TimeoutOption:
    """A timeout given to an API: :data:`DEFAULT` as it is, else as :func:`check_timeout` validates it."""
    return DEFAULT if value is DEFAULT else check_timeout(value, name=name)


def resolve_timeout(option: TimeoutOption) -> float | None:
    """The seconds to wait for an option.

    :data:`DEFAULT` is the timeout of the middleware whose request the calling
    code runs for, if it gave one, else the configured default timeout.
    """
    if option is not DEFAULT:
        return option
    request = current_request()
    if request is not None and not request.ended and request.timeout is not None:
        return request.timeout[0]
    return lock.default_timeout


class RequestEnded(Exception):
    """The request a wait for the lock was for has ended: no hold is taken for it."""


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


class WindowHold(NamedTuple):
    """What :meth:`PlotLock.close_window` needs to give a runner its hold back."""

    runner: Runner
    depth: int
    taken_at: tuple[str, int, str] | None


_TAKEN, _TURN, _WAIT, _POLL, _SUSPEND, _END, _ENDED = range(7)


class Transitions(Protocol):
    """What the groups do when the lock changes hands under an owner's code (see :mod:`safeplot._group`).

    Each runs in a transition: the lock's mutex let go, everyone else waiting.
    """

    def suspend(self, owner: Owner) -> None:
        """Set ``owner``'s groups aside: their state kept, the state of outside put back."""

    def resume(self, owner: Owner) -> None:
        """Put ``owner``'s groups back, after :meth:`suspend`."""

    def end(self, owner: Owner) -> None:
        """End ``owner``'s implicit group: close what it opened, put back what it changed."""

    def switch_turn(self, request: RequestOwner, previous: Runner, doing: str, runner: Runner) -> None:
        """``runner`` takes ``request``'s turn from ``previous`` (``doing``: paused or done)."""


def _chain(steps: list[Callable[[], None]]) -> Callable[[], None] | None:
    """One callable that runs ``steps`` in order; None for none."""
    if len(steps) <= 1:
        return steps[0] if steps else None

    def run_in_order() -> None:
        for step in steps:
            step()

    return run_in_order


class PlotLock:
    """A re-entrant lock with the interface of ``threading.RLock``, plus:

    * ``with lock:`` waits at most the process-wide default timeout (see
      :func:`safeplot.configure`) and raises :class:`safeplot.LockTimeout`
      when it runs out; ``acquire()`` itself behaves like RLock's and returns
      False on a timeout;
    * a hold belongs to its owner: a thread, or, under a middleware, the
      request whose code runs (in any of its threads, one at a time) or a
      thread-pool job of no request;
    * it is fair: the free lock goes to whoever has waited longest, and a
      group coming back from its encode window before them;
    * a request's (or job's) implicit group whose code runs no more is set
      aside for a waiter and put back at its next touch, or ended;
    * it knows its holder, for error messages and :func:`safeplot.stats`;
    * after ``os.fork()`` the child gets it unheld, and without the changes of
      a group another thread was running, unless the forking thread itself held
      it (then that thread still holds it in the child, at the same depth).
    """

    def __init__(self) -> None:
        self._mutex = _thread.allocate_lock()  # guards everything below; never held while waiting
        self._holder: Owner | None = None
        self._depth = 0
        self._implicit: Owner | None = None  # the owner whose implicit group (first touch) holds a level
        self._waiters: deque[Waiter] = deque()
        self._chosen: Waiter | None = None  # the waiter the free lock is handed to
        self._returning = 0  # priority waiters: groups coming back from an encode window
        self._acquired_at = 0.0
        self._taken_at: tuple[str, int, str] | None = None
        self._stats = _Stats()
        self._fork_resets: list[Callable[[Owner], None]] = []
        self._transitions: Transitions | None = None
        self._transition: Owner | None = None  # whose groups are being set aside or put back
        self.default_timeout: float | None = None
        self.long_hold: float | None = DEFAULT_LONG_HOLD
        self.encode_window = True  # see configure()

    def __repr__(self) -> str:
        holder = self._holder
        state = f"held by {holder.describe()} depth={self._depth}" if holder is not None else "unheld"
        return f"<safeplot.lock {state}>"

    # -- the RLock interface ------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Acquire the lock, as ``threading.RLock.acquire`` does, for the calling code's owner.

        Returns True once held (at once if the caller holds it already), or
        False if ``blocking`` is False and the lock is taken, or if ``timeout``
        seconds passed first.  Raises ValueError for a timeout with
        ``blocking=False``, like RLock.
        """
        if not blocking and timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        seconds = None if timeout is None or timeout < 0 else float(timeout)
        while True:
            owner, runner = current()
            try:
                return self._take(owner, runner, seconds, blocking=blocking) is not None
            except RequestEnded:
                continue  # the request ended while this waited: wait as the thread itself

    def acquire_within(self, timeout: float | None) -> None:
        """Acquire, waiting at most ``timeout`` seconds (None: forever).

        Raises :class:`safeplot.LockTimeout`, naming the holder, if the time runs out.
        """
        if not self.acquire(True, -1 if timeout is None else timeout):
            raise self._timeout_error(timeout)

    def release(self) -> None:
        """Release one level of the caller's hold; the last release frees the lock.

        Raises RuntimeError if the calling code does not hold the lock.
        """
        owner, runner = current()
        self.give_back(owner, runner)

    def __enter__(self) -> PlotLock:
        self.acquire_within(resolve_timeout(DEFAULT))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def is_owned(self) -> bool:
        """Whether the calling code holds the lock (and, in a request, has the request's turn)."""
        return self.held_by_caller()

    @property
    def holder(self) -> str | None:
        """The name of the thread (or request) holding the lock, or None when it is free."""
        holder = self._holder
        return holder.name if holder is not None else None

    # -- for safeplot's own rooms ---------------------------------------------------------

    def held_by_caller(self) -> bool:
        """Whether the calling code may use matplotlib's shared state now: its owner holds the lock,
        and in a request, its runner has the turn.  (Cheap: every hook asks it.)"""
        holder = self._holder
        if holder is None:
            return False
        owner, runner = current()
        return holder is owner and (not isinstance(owner, RequestOwner) or owner.turn is runner)

    def holder_owner(self) -> Owner | None:
        """The owner holding the lock now, or None."""
        return self._holder

    def take(self, owner: Owner, runner: Runner, timeout: float | None, *, implicit: bool = False) -> bool:
        """Take a hold for ``owner`` on ``runner``, waiting up to ``timeout`` seconds (None: forever).

        ``implicit``: the hold of an implicit group, a request's or a pool
        job's (begun by its first touch of shared state, given back by
        :meth:`end_implicit`), not one of ``runner``'s; if the request holds
        the lock already (in a group of another of its threads), ``runner``
        only gets the request's turn, and if its group was set aside, it is
        put back.  Returns whether a new level was taken (False in both cases).
        Raises :class:`safeplot.LockTimeout` when the time runs out and
        :class:`RequestEnded` when ``owner`` is a request that has ended (at
        once, or while this waited).
        """
        taken = self._take(owner, runner, timeout, blocking=True, implicit=implicit)
        if taken is None:
            raise self._timeout_error(timeout)
        return taken

    def try_take_for_runner(self, runner: Runner) -> bool:
        """Take a hold for ``runner`` as its own owner if the lock is free now; never waits."""
        return self._take(runner, runner, None, blocking=False) is not None

    def give_back(self, owner: Owner, runner: Runner) -> None:
        """Give back one level of ``runner``'s hold for ``owner``; RuntimeError if it has none.

        When ``owner`` is a request that ended while ``runner`` held the lock
        for it, its last level also ends the request's group (see
        :meth:`safeplot._owners.RequestOwner.defer_end`).
        """
        request = owner if isinstance(owner, RequestOwner) else None
        with self._mutex:
            if self._holder is not owner or (request is not None and not request.levels(runner)):
                raise RuntimeError("cannot release un-acquired lock")
            if request is not None:
                request.drop_level(runner)
            self._drop_level()
        if request is not None and request.ended and not request.has_levels():
            request.run_deferred_end()

    def end_implicit(self, owner: Owner) -> None:
        """Give back the level an implicit group holds (the group already put back what it changed)."""
        with self._mutex:
            if self._implicit is not owner:
                raise RuntimeError(f"no group of {owner.describe()} holds safeplot.lock")
            self._implicit = None
            self._drop_level()

    def request_ended(self, request: RequestOwner) -> None:
        """Wake whatever waits for a hold for ``request``: it has ended, so none will be taken."""
        with self._mutex:
            for waiter in self._waiters:
                if waiter.owner is request:
                    waiter.wake()

    def runner_holds(self, runner: Runner) -> int:
        """How many levels the lock is held by ``runner`` as its own owner (0: not held by it)."""
        return self._depth if self._holder is runner else 0

    def open_window(self, runner: Runner) -> WindowHold:
        """Let go of every level of ``runner``'s own hold at once, for an encode window.

        Raises RuntimeError if the lock is not held by ``runner`` as its own owner.
        """
        with self._mutex:
            if self._holder is not runner:
                raise RuntimeError("cannot open an encode window without holding safeplot.lock")
            self._stats.encode_windows += 1
            hold = WindowHold(runner, self._depth, self._taken_at)
            self._depth = 1
            self._drop_level()
            return hold

    def close_window(self, hold: WindowHold) -> None:
        """Take the hold back after :meth:`open_window`, before anyone else waiting; no timeout.

        Not counted as an acquisition: the group that opened the window was.
        """
        self._take(hold.runner, hold.runner, None, blocking=True, priority=True, counted=False)
        with self._mutex:
            self._depth, self._taken_at = hold.depth, hold.taken_at  # a long hold is reported where it began

    def on_transitions(self, transitions: Transitions) -> None:
        """What sets an owner's groups aside and puts them back, ends them, and switches turns."""
        self._transitions = transitions

    def sweep(self) -> None:
        """End an implicit group whose owner is done with it: a returned pool job's, an ended request's.

        Never waits.  Called at the end of every request, and by the job's own
        thread at its next touch.
        """
        with self._mutex:
            holder = self._holder
            if holder is not None and self._transition is None and self._take_over(holder, acting_on=(_END,)):
                self._end_holder()

    def end_request(self, request: RequestOwner) -> bool:
        """End a request's hold now if none of its threads is at work; never waits.

        Returns True if its group was set aside (the caller closes its figures
        where they are: nothing holds the lock for it) or ended here, False
        if a thread of the request is at work or holds the lock explicitly:
        then the group ends when that thread is done (it is then ended by
        whoever waits for the lock, or by the next :meth:`sweep`).
        """
        with self._mutex:
            if self._transition is request:
                request.end_requested = True
                return False
            if request.suspended is not None:
                request.suspended = None
                return True
            if self._holder is not request:
                return True
            request.end_requested = True
            # The calling thread ends the request: it runs none of the request's code any more.
            if self._take_over(request, ending=current()[1], acting_on=(_END,)) is None:
                return False
            self._end_holder()
            return True

    def on_fork_in_child(self, reset: Callable[[Owner], None]) -> None:
        """Call ``reset(holder)`` in a forked child whose lock was held by an owner not of the forking thread.

        The groups use it to put back the state outside the holder's groups.
        """
        self._fork_resets.append(reset)

    def count_figures_closed(self, count: int) -> None:
        with self._mutex:
            self._stats.figures_closed += count

    def stats(self) -> dict[str, Any]:
        with self._mutex:
            snapshot: dict[str, Any] = {name: getattr(self._stats, name) for name in _Stats.__slots__}
            holder = self._holder
        snapshot["holder"] = holder.name if holder is not None else None
        return snapshot

    # -- inside ---------------------------------------------------------------------------

    def _timeout_error(self, timeout: float | None) -> LockTimeout:
        holder = self._holder
        waited = timeout if timeout is not None else math.inf
        if holder is None:
            return LockTimeout(waited, None)
        return LockTimeout(waited, holder.name, holder.kind)

    def _take(
        self,
        owner: Owner,
        runner: Runner,
        timeout: float | None,
        *,
        blocking: bool,
        implicit: bool = False,
        priority: bool = False,
        counted: bool = True,
    ) -> bool | None:
        """Wait for a hold; True: a level taken, False: only the turn (see :meth:`take`), None: not had."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waiter: Waiter | None = None
        started = 0.0
        poll = _FIRST_POLL
        taken = ended = first_wait = False
        self._mutex.acquire()
        try:
            while True:
                state, then = self._try_take(owner, runner, implicit, priority, counted, waiter)
                if state in (_TAKEN, _TURN):
                    taken = True
                    if then is not None:  # put its groups back, or switch the request's turn
                        self._in_transition(owner, then)
                    return state == _TAKEN
                if state == _ENDED:
                    ended = True
                    raise RequestEnded
                if state == _SUSPEND:
                    self._suspend_holder()
                    continue
                if state == _END:
                    self._end_holder()
                    continue
                if not blocking:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if waiter is None:
                    started = time.monotonic()
                    waiter = runner.new_waiter(owner, priority=priority)
                    self._waiters.append(waiter)
                    self._returning += priority
                    first_wait = True
                if state == _POLL:
                    # Nobody announces what this waits for (a thread that parks): look again soon.
                    remaining = poll if remaining is None else min(poll, remaining)
                    poll = min(2 * poll, _LAST_POLL)
                holder = self._holder
                self._mutex.release()
                try:
                    if first_wait:
                        first_wait = False
                        if logger.isEnabledFor(logging.DEBUG):
                            held_by = holder.describe() if holder is not None else "nobody"
                            logger.debug("%s waits for safeplot.lock, held by %s", owner.describe(), held_by)
                    waiter.wait(remaining)
                finally:
                    self._mutex.acquire()
        finally:
            if waiter is not None:
                self._waiters.remove(waiter)
                self._returning -= priority
                if self._chosen is waiter:
                    self._chosen = None
                waited = time.monotonic() - started
                stats = self._stats
                stats.waits += 1
                stats.timeouts += not (taken or ended)
                stats.wait_seconds_total += waited
                stats.wait_seconds_max = max(stats.wait_seconds_max, waited)
                if not taken and self._holder is None:
                    self._wake_next()  # it may have been woken to take the lock: pass that on
                self._nudge()  # the next waiter may have to keep looking now
            self._mutex.release()

    def _try_take(
        self,
        owner: Owner,
        runner: Runner,
        implicit: bool,
        priority: bool,
        counted: bool,
        waiter: Waiter | None,
    ) -> tuple[int, Callable[[], None] | None]:
        """One look at the lock (the mutex held): take what ``owner`` asks for, or say why not.

        Returns the state and, when taken, what must run before the caller
        goes on (in a transition): its groups put back, its view switched in.
        """
        request = owner if isinstance(owner, RequestOwner) else None
        if request is not None and request.ended and (implicit or not request.levels(runner)):
            return _ENDED, None
        if self._transition is not None:
            return _WAIT, None  # an owner's groups are being set aside, put back or ended
        transitions = self._transitions
        holder = self._holder
        then: list[Callable[[], None]] = []
        resumed = False
        if holder is None:
            suspended = owner.suspended
            chosen = self._chosen
            first = suspended is not None or priority or chosen is waiter
            if not first and (chosen is not None or self._returning):
                return _WAIT, None  # the lock is handed to whoever waited longest: no barging
            self._start_hold(owner, counted=counted and suspended is None)
            if suspended is not None:  # its hold comes back with it
                assert transitions is not None
                owner.suspended = None
                self._depth, had_implicit = suspended
                self._implicit = owner if had_implicit else None
                then.append(functools.partial(transitions.resume, owner))
                resumed = True
        elif holder is not owner:
            taken_over = self._take_over(holder)
            if taken_over is not None:
                return taken_over, None
            return (_POLL if holder.ends_unannounced else _WAIT), None
        if request is not None:
            claimed = request.claim_turn(runner)
            if claimed is None:
                return _POLL, None  # another thread of the request is at work: it tells nobody when it stops
            previous, doing = claimed
            if transitions is not None and (previous is not runner or runner in request.views):
                then.append(functools.partial(transitions.switch_turn, request, previous, doing, runner))
        if implicit and (holder is owner or resumed):
            return _TURN, _chain(then)  # the request holds the lock already: its runner takes the turn
        if implicit:
            self._implicit = owner
        elif request is not None:
            request.add_level(runner)
        self._depth += 1
        return _TAKEN, _chain(then)

    def _start_hold(self, owner: Owner, *, counted: bool) -> None:
        self._chosen = None
        self._holder = owner
        self._depth = 0
        if isinstance(owner, RequestOwner):
            self._wake_owner(owner)  # its other threads wait for its turn now, not for the lock
        self._acquired_at = time.monotonic()
        self._taken_at = call_site() if self.long_hold is not None else None
        if counted:
            self._stats.acquisitions += 1

    def _take_over(
        self, holder: Owner, ending: Runner | None = None, acting_on: tuple[int, ...] = (_SUSPEND, _END)
    ) -> int | None:
        """Whether a waiter may end or set aside ``holder``'s hold (the mutex held): _END, _SUSPEND or None.

        Only an owner whose code a hook sees when it runs again (a request's,
        under a middleware, or a pool job of no request's), while none of its
        threads is at work: a pool job that has returned, or a request that
        has ended, has its group ended; any other has its hold set aside, to
        be put back at its next touch of shared state.

        The caller acts on what is returned (among ``acting_on``) at once: for
        a request, its turn is taken from its thread as it is decided.
        """
        if self._transitions is None or not holder.ends_unannounced:
            return None
        if isinstance(holder, JobOwner):
            if self._depth != 1 or self._implicit is not holder:
                return None
            job_decision = _END if holder.finished() else _SUSPEND if holder.is_idle() else None
            return job_decision if job_decision in acting_on else None
        if not isinstance(holder, RequestOwner):
            return None
        previous = holder.turn
        holder.turn = None  # written first: once its runner runs again, it finds it is not its turn
        decision: int | None = None
        if holder.is_idle(also=previous, ending=ending):
            if not holder.end_requested or holder.has_levels():
                decision = _SUSPEND
            elif self._implicit is holder:
                decision = _END
        if decision not in acting_on:
            holder.turn = previous
            return None
        return decision

    def _suspend_holder(self) -> None:
        """Set the holder's hold and groups aside and free the lock (the mutex held; let go meanwhile)."""
        holder = self._holder
        assert holder is not None and self._transitions is not None
        self._in_transition(holder, functools.partial(self._transitions.suspend, holder))
        holder.suspended = (self._depth, self._implicit is holder)
        self._implicit = None
        self._release_all()

    def _end_holder(self) -> None:
        """End the holder's implicit group (a returned job's, an ended request's) and free the lock."""
        holder = self._holder
        assert holder is not None and self._transitions is not None
        self._in_transition(holder, functools.partial(self._transitions.end, holder))
        self._implicit = None
        self._drop_level()

    def _in_transition(self, owner: Owner, change: Callable[[], None]) -> None:
        """Run ``change()`` with the mutex let go, others kept waiting meanwhile."""
        self._transition = owner
        self._mutex.release()
        try:
            change()
        finally:
            self._mutex.acquire()
            self._transition = None
            self._wake_owner(owner)
            self._nudge()

    def _drop_level(self) -> None:
        """One level fewer (the mutex held): the last one frees the lock and wakes the next waiter."""
        self._depth -= 1
        holder = self._holder
        if self._depth:
            if isinstance(holder, RequestOwner):
                self._wake_owner(holder)  # its other threads may take the turn now
            return
        if isinstance(holder, RequestOwner):
            holder.clear_turns()
        self._release_all()

    def _release_all(self) -> None:
        """Free the lock, whatever its depth (the mutex held), and hand it to the next waiter."""
        holder = self._holder
        held = time.monotonic() - self._acquired_at
        self._log_long_hold(held, holder)
        self._holder = None
        self._depth = 0
        self._taken_at = None
        self._implicit = None
        stats = self._stats
        stats.hold_seconds_total += held
        stats.hold_seconds_max = max(stats.hold_seconds_max, held)
        self._wake_next()

    def _wake_next(self) -> None:
        """Hand the free lock to the longest waiter (a group back from its encode window first)."""
        for waiter in self._waiters:
            if waiter.priority or not self._returning:
                self._chosen = waiter
                waiter.wake()
                return

    def _nudge(self) -> None:
        """Have the longest waiter look again: it keeps looking while the holder may end unannounced
        (an implicit group whose code stopped running), which no release would tell it."""
        holder = self._holder
        if holder is not None and holder.ends_unannounced and self._waiters:
            self._waiters[0].wake()

    def _wake_owner(self, owner: Owner) -> None:
        for waiter in self._waiters:
            if waiter.owner is owner:
                waiter.wake()

    def _log_long_hold(self, held: float, holder: Owner | None) -> None:
        long_hold = self.long_hold
        if long_hold is not None and held > long_hold and self._taken_at is not None and holder is not None:
            filename, lineno, _ = self._taken_at
            logger.warning(
                "safeplot.lock was held for %.2f s (over %g s) by %s; taken at %s:%d",
                held,
                long_hold,
                holder.describe(),
                filename,
                lineno,
            )

    # -- fork -----------------------------------------------------------------------------

    def _before_fork(self) -> None:
        self._mutex.acquire()  # so that the child never sees a change half made

    def _after_fork_in_parent(self) -> None:
        self._mutex.release()

    def _after_fork_in_child(self) -> None:
        self._mutex = _thread.allocate_lock()
        self._waiters = deque()  # the threads that waited are not in the child
        self._chosen = None
        self._returning = 0
        self._transition = None
        self._stats = _Stats()
        _compat.reset_drawing_locks_after_fork()
        holder = self._holder
        if holder is None:
            return
        owner, runner = current()
        if holder is owner and (owner is runner or holder.turn is runner):  # type: ignore[attr-defined]
            return  # the forking thread's own hold: it still holds it, and releases it as usual
        self._holder = None
        self._depth = 0
        self._implicit = None
        self._taken_at = None
        for reset in self._fork_resets:
            reset(holder)


lock = PlotLock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=lock._before_fork,
        after_in_parent=lock._after_fork_in_parent,
        after_in_child=lock._after_fork_in_child,
    )


def configure(
    *,
    timeout: TimeoutOption = DEFAULT,
    long_hold: TimeoutOption = DEFAULT,
    encode_window: bool | Literal[_Default.DEFAULT] = DEFAULT,
) -> None:
    """Set process-wide defaults; an argument left at :data:`safeplot.DEFAULT` keeps its value.

    ``timeout``: seconds that ``safeplot.locked()``, ``with safeplot.lock:``,
    the helpers and the middlewares wait for the lock before raising
    :class:`safeplot.LockTimeout`; None waits forever (the default, unless the
    ``SAFEPLOT_TIMEOUT`` environment variable set one at import).

    ``long_hold``: a hold of the lock longer than this many seconds (a group,
    a request under the middleware) logs one WARNING on the ``safeplot``
    logger, saying for how long, by whom and where the lock was taken; None
    turns that off.  Default 10.

    ``encode_window``: whether a ``locked()`` group lets the lock go while PIL
    encodes a raster image of one of its own pyplot figures (default True).
    Turn it off when code inside groups holds a lock of its own across
    ``savefig``: re-taking safeplot's lock while holding it could deadlock
    with a group that takes safeplot's lock and then that one.

    Raises TypeError/ValueError for a timeout that is not None or a number >=
    0, TypeError for an ``encode_window`` that is not a bool.
    """
    if timeout is not DEFAULT:
        lock.default_timeout = check_timeout(timeout)
    if long_hold is not DEFAULT:
        lock.long_hold = check_timeout(long_hold, name="long_hold")
    if encode_window is not DEFAULT:
        if not isinstance(encode_window, bool):
            raise TypeError(f"encode_window must be True or False, not {encode_window!r}")
        lock.encode_window = encode_window


def stats() -> dict[str, Any]:
    """Counters of the plotting lock since the process started (or forked).

    Keys: ``acquisitions``, ``waits`` (acquires that had to wait, timed out or
    not), ``timeouts``, ``figures_closed`` (by groups), ``encode_windows``
    (times a group let the lock go while PIL encoded its image; the group
    counts one acquisition either way, and its hold time is the time it
    really held the lock), ``wait_seconds_total``, ``wait_seconds_max``,
    ``hold_seconds_total``, ``hold_seconds_max``, and ``holder``: the name of
    the thread or request holding the lock now, or None.  Never raises.
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
