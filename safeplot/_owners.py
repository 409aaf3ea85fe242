"""Who a hold of the plotting lock belongs to: a thread, a request followed into its threads, a job.

Every hold of :data:`safeplot.lock` belongs to an :class:`Owner`:

* a :class:`Runner`, what runs code: an OS thread (one per thread, made at
  its first use), or a greenlet (:class:`GreenletRunner`) once gevent or
  eventlet has patched ``threading``;
* a :class:`RequestOwner`: a request's context, set by a middleware for the
  request's lifetime.  ``contextvars`` carries it into every thread that runs
  the request's code (a thread pool's, ``asyncio.to_thread``, asgiref's
  ``sync_to_async``), so all of them share the request's hold.  They take
  turns: one runner at a time has the request's *turn*, and keeps it until it
  is parked (:meth:`Runner.is_parked`: back in its pool, waiting for another
  thread or for the lock, ended), so that only one draws at a time;
* a :class:`JobOwner`: a thread-pool job of no request, under a middleware.

:func:`current` tells who the calling code is, and a runner makes the
:class:`Waiter` it waits for the lock with.  The lock, the groups, the hooks
and the web adapters all use owners through the methods here.
"""

from __future__ import annotations

import _thread
import contextlib
import contextvars
import copy
import sys
import threading
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

from . import _compat


class Owner:
    """Someone a hold of the lock belongs to.

    :attr:`frames` are the groups open for this owner, outermost first (kept
    by :mod:`safeplot._group`; the lock only reads the first, after a fork).
    """

    __slots__ = ("__weakref__", "frames", "saved", "suspended")
    kind = "owner"  # how a LockTimeout names the holder: "thread", "request"
    ends_unannounced = False  # whether its hold may end with nobody giving it back (see is_idle)

    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.saved: Any = None  # its groups' state while they are set aside (see _group.suspend)
        # Its hold set aside while its code ran none (see _lock): (levels, whether one is its implicit
        # group's), put back at its next touch.
        self.suspended: tuple[int, bool] | None = None

    def is_idle(self) -> bool:
        """Whether none of this owner's code runs now, so that its implicit group may be set aside."""
        return False

    @property
    def name(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        """How messages name this owner, e.g. ``thread 'worker-1'``."""
        return f"{self.kind} {self.name!r}"


class Runner(Owner):
    """What runs code: an OS thread.  Its :attr:`entries` are the groups it entered, innermost last."""

    __slots__ = ("_thread", "entries", "ident", "job")
    kind = "thread"

    def __init__(self) -> None:
        super().__init__()
        self.ident = threading.get_ident()
        self._thread = weakref.ref(threading.current_thread())
        self.entries: list[tuple[Owner, Any]] = []  # (the group's owner, its frame)
        self.job: JobOwner | None = None  # the pool job it runs for no request, once that took the lock

    @property
    def name(self) -> str:
        thread = self._thread()
        return thread.name if thread is not None else f"thread {self.ident}"

    def innermost_frame(self) -> FrameType | None:
        """The frame this runner is executing now (None when its thread has ended)."""
        if current_runner() is self:
            return sys._getframe(1)
        return self._frame_elsewhere()

    def _frame_elsewhere(self) -> FrameType | None:
        thread = self._thread()
        if thread is None or not thread.is_alive():
            return None  # its ident may be another thread's by now
        return sys._current_frames().get(self.ident)

    def activity(self) -> str:
        """What this runner does now: ``_compat.BUSY``, ``PAUSED`` or ``DONE`` (see :func:`_compat.activity`).

        The calling runner itself is busy; one waiting for the lock is done
        with whatever it did before.
        """
        if current_runner() is self:
            return _compat.BUSY
        return _compat.activity(self.innermost_frame(), done_in=_WAITING_FOR_THE_LOCK)

    def is_parked(self) -> bool:
        """Whether this runner runs none of its own code now (it is paused, or done)."""
        return self.activity() != _compat.BUSY

    def new_waiter(self, owner: Owner, *, priority: bool) -> Waiter:
        """What this runner waits with for a hold for ``owner``."""
        return Waiter(owner, priority)


class Waiter:
    """One waiting call for the lock: :meth:`wait` returns when woken (or its time is up)."""

    __slots__ = ("_flag", "owner", "priority")

    def __init__(self, owner: Owner, priority: bool) -> None:
        self.owner = owner
        self.priority = priority  # a group coming back to the lock: it goes before the rest
        self._flag = _thread.allocate_lock()
        self._flag.acquire()

    def wait(self, seconds: float | None) -> None:
        self._flag.acquire(True, -1 if seconds is None else seconds)

    def wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # woken twice at once
            self._flag.release()


_WAITING_FOR_THE_LOCK = frozenset({Waiter.wait.__code__})  # a thread there runs nobody's code


class GreenletRunner(Runner):
    """What runs code where gevent or eventlet has patched ``threading``: a greenlet.

    Its waits for the lock yield to the hub (they wait on the patched
    ``_thread`` lock), so the greenlet holding the lock runs on meanwhile.
    """

    __slots__ = ("_greenlet", "_name")
    kind = "greenlet"

    def __init__(self, glet: Any) -> None:
        super().__init__()
        self._greenlet = weakref.ref(glet)
        self._name = _compat.greenlet_name(glet)

    @property
    def name(self) -> str:
        return self._name

    def _frame_elsewhere(self) -> FrameType | None:
        glet = self._greenlet()
        if glet is None or glet.dead:
            return None
        frame: FrameType | None = glet.gr_frame  # where it switched out (None: not started)
        return frame

    def activity(self) -> str:
        """As :meth:`Runner.activity`; a greenlet running now in another OS thread (a threadpool's)
        shows no frame, and is busy."""
        glet = self._greenlet()
        if current_runner() is not self and glet is not None and glet and glet.gr_frame is None:
            return _compat.BUSY  # started, not dead, switched in elsewhere
        return super().activity()


class _ThreadRunners(threading.local):
    def __init__(self) -> None:
        self.runner = Runner()


_runners = _ThreadRunners()  # a real thread-local if made before a greenlet library patched threading
_greenlet_runners: weakref.WeakKeyDictionary[Any, GreenletRunner] = weakref.WeakKeyDictionary()


class JobOwner(Owner):
    """A thread-pool job that runs for no request (``loop.run_in_executor(None, plot)``), under a middleware.

    Its first pyplot call takes the lock for it, as a group of its own
    (:mod:`safeplot._web`); the group ends with the job: when the frame
    ``job_frame`` that the pool's loop called for it returns.
    """

    __slots__ = ("job_frame", "runner")
    kind = "thread"
    ends_unannounced = True

    def __init__(self, runner: Runner, job_frame: FrameType) -> None:
        super().__init__()
        self.runner = runner
        self.job_frame = job_frame

    @property
    def name(self) -> str:
        return self.runner.name

    def finished(self) -> bool:
        """Whether the job has returned (its runner runs another, or waits for one)."""
        return not _compat.frame_is_running(self.job_frame, self.runner.innermost_frame())

    def is_idle(self) -> bool:
        return self.runner.is_parked()


def current_runner() -> Runner:
    """The runner of the calling code: its greenlet's where threading is green, else its thread's."""
    glet = _compat.current_greenlet()
    if glet is None:
        return _runners.runner
    runner = _greenlet_runners.get(glet)
    if runner is None:
        runner = _greenlet_runners[glet] = GreenletRunner(glet)
    return runner


class RequestOwner(Owner):
    """A request's hold: shared by every thread that runs the request's code, which take turns.

    A middleware makes one per request and :meth:`enter`s it in the request's
    context; :meth:`leave` ends that.  ``begin_group`` is what a first touch of
    matplotlib's shared state in the request's code does (the middleware's
    request group).  ``loop_thread`` is the thread of the event loop the
    request is served on, if any: code on that loop must never wait for the
    lock (code on a loop of its own, such as asgiref's ``async_to_sync``
    makes, may).
    """

    __slots__ = (
        "_deferred_end",
        "_levels",
        "_token",
        "begin_group",
        "end_requested",
        "ended",
        "failure",
        "label",
        "loop_thread",
        "timeout",
        "turn",
        "views",
    )
    kind = "request"
    ends_unannounced = True

    def __init__(self, label: str, *, loop_thread: int | None = None) -> None:
        super().__init__()
        self.label = label
        self.loop_thread = loop_thread
        self.ended = False
        # What its first touch does (a weak reference to the middleware's request, which owns this).
        self.begin_group: Callable[[], Callable[[], None] | None] | None = None
        self.turn: Runner | None = None  # the runner that may use the request's hold now
        # What a runner that lost the turn while paused saw (its current figure, rcParams,
        # registries), put back when it takes the turn again (see _group.switch_turn).
        self.views: dict[Runner, Any] = {}
        self.end_requested = False  # it has ended while one of its threads was at work
        self.failure: BaseException | None = None  # a RenderPool failure its code met (see note_failure)
        # The middleware's timeout: what its code's groups wait at most, too (None: the configured
        # default; a wait of no limit is (None,)).
        self.timeout: tuple[float | None] | None = None
        self._levels: dict[Runner, int] = {}  # explicit holds (acquire, locked()) per runner
        self._token: contextvars.Token[RequestOwner | None] | None = None
        self._deferred_end: Callable[[], None] | None = None

    @property
    def name(self) -> str:
        return self.label

    def describe(self) -> str:
        turn = self.turn
        where = f" in thread {turn.name!r}" if turn is not None else ""
        return f"request {self.label!r}{where}"

    def note_failure(self, error: BaseException) -> None:
        """Remember a RenderPool failure of this request's code, for its middleware to answer for.

        A copy is kept, without the traceback the error gets once raised
        (its frames would tie this owner into a reference cycle).
        """
        self.failure = copy.copy(error)

    def ended_message(self) -> str:
        """What code the request left running is told when it touches matplotlib after the response."""
        return (
            f"matplotlib used by code of request {self.label!r} after its response ended "
            "(a thread or task it left running): the middleware no longer holds the lock for it; "
            "run such work in safeplot.locked() or await it before answering"
        )

    def on_its_event_loop(self) -> bool:
        """Whether the calling code runs on the event loop that serves this request (it must not wait)."""
        return self.loop_thread == threading.get_ident() and _compat.running_event_loop()

    # -- the request's context ------------------------------------------------------

    def enter(self) -> None:
        """Make this the request of the calling context (and of the threads it is copied into)."""
        self._token = _request.set(self)

    def leave(self) -> None:
        """Mark the request ended and take it out of the calling context (the one :meth:`enter` ran in).

        Code the request left running keeps a copy of its context; for it,
        :func:`current` no longer names this request, except for a runner
        that is still inside a hold it took for the request.
        """
        self.ended = True
        token, self._token = self._token, None
        if token is not None:
            _request.reset(token)

    # -- turns (the lock changes them under its own mutex) --------------------------

    def levels(self, runner: Runner) -> int:
        """How many explicit holds ``runner`` has for this request."""
        return self._levels.get(runner, 0)

    def add_level(self, runner: Runner) -> None:
        self._levels[runner] = self._levels.get(runner, 0) + 1

    def drop_level(self, runner: Runner) -> int:
        """Drop one of ``runner``'s explicit holds; return how many it has left."""
        left = self._levels[runner] - 1
        if left:
            self._levels[runner] = left
        else:
            del self._levels[runner]
        return left

    def has_levels(self) -> bool:
        """Whether any runner holds the lock for this request explicitly now."""
        return bool(self._levels)

    def claim_turn(self, runner: Runner) -> tuple[Runner, str] | None:
        """Take the request's turn for ``runner`` if whoever has it is not at work; else None.

        Returns (the runner that had it, what it was doing: ``PAUSED`` or
        ``DONE``), ``runner`` and ``DONE`` if nobody else had it.  The turn is
        written before the other runner is looked at, so that once it runs
        again, its next touch of shared state finds it is not its turn (the
        lock's mutex held: see :meth:`safeplot._lock.PlotLock.held_by_caller`).
        """
        previous = self.turn
        if previous is None or previous is runner:
            self.turn = runner
            return runner, _compat.DONE
        self.turn = runner
        doing = previous.activity()
        if doing == _compat.BUSY:
            self.turn = previous  # at work: it keeps the turn
            return None
        return previous, doing

    def is_idle(self, also: Runner | None = None, ending: Runner | None = None) -> bool:
        """Whether none of the request's threads runs its code now (each is paused or done).

        ``also``: a runner to count among them (the one that had the turn);
        ``ending``: the runner ending the request, done with its code.
        """
        runners = set(self._levels)
        for runner in (self.turn, also):
            if runner is not None:
                runners.add(runner)
        if ending is not None:
            runners.discard(ending)
        return all(runner.activity() != _compat.BUSY for runner in runners)

    def defer_end(self, end: Callable[[], None]) -> None:
        """Have ``end`` run when the last explicit hold of this (ended) request is given back.

        For a request that ends while one of its threads is inside a group or
        ``with safeplot.lock:``: its group is ended when that thread leaves.
        Runs ``end`` at once if no runner holds the lock for it explicitly.
        """
        if self._levels:
            self._deferred_end = end
        else:
            end()

    def run_deferred_end(self) -> None:
        """Run what :meth:`defer_end` deferred, once."""
        end, self._deferred_end = self._deferred_end, None
        if end is not None:
            end()

    def clear_turns(self) -> None:
        self.turn = None
        self._levels.clear()
        self.views.clear()


class TaskOwner(RequestOwner):
    """A task run's hold (a Celery task under :class:`safeplot.celery.SafeplotTask`): a request by
    another name."""

    __slots__ = ()
    kind = "task"


_request: contextvars.ContextVar[RequestOwner | None] = contextvars.ContextVar(
    "safeplot_request", default=None
)


def current_request() -> RequestOwner | None:
    """The request whose context the calling code runs in (ended or not), or None."""
    return _request.get()


def current() -> tuple[Owner, Runner]:
    """Who the calling code is: (the owner its holds belong to, the runner it runs on).

    The owner is the request of its context while that request lasts (or
    while this runner still holds the lock for it), else the pool job of no
    request the runner runs (once its first touch made it a group), else the
    runner itself.
    """
    runner = current_runner()
    request = _request.get()
    if request is not None and (not request.ended or request.levels(runner)):
        return request, runner
    job = runner.job
    if job is not None and not job.finished():
        return job, runner
    return runner, runner
