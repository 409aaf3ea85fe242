"""The exceptions and the warning category safeplot raises."""

from __future__ import annotations


class SafeplotWarning(UserWarning):
    """Category of every warning safeplot emits: the backend switched to Agg at import, a guard
    report (pyplot used without the lock, once per call site), and pyplot used by a thread of no
    request under a middleware.  (A long hold of the lock is logged on the ``safeplot`` logger
    instead.)"""


class LockTimeout(TimeoutError):
    """The plotting lock was not acquired within the timeout.

    ``timeout`` is the number of seconds waited; ``holder`` is the name of
    what held the lock when the wait gave up (``None`` if it was released just
    then), and ``holder_kind`` says what that is: ``"thread"``, ``"request"``
    (a request under a middleware, named by its method and path), ``"task"``
    (a Celery task run, named by its task name and id) or ``"greenlet"``.
    The exception pickles with its attributes, and its ``args`` are the three
    of them, so it crosses process boundaries intact (a Celery result's
    ``get()`` re-raises it whole).
    """

    def __init__(self, timeout: float, holder: str | None, holder_kind: str = "thread") -> None:
        super().__init__()
        # The arguments are the exception's args, so that what rebuilds an exception from its
        # type and args (Celery's result backends) gets it back whole.  Set after __init__:
        # OSError (TimeoutError's base) keeps only two of three arguments in args.
        self.args = (timeout, holder, holder_kind)
        self.timeout = timeout
        self.holder = holder
        self.holder_kind = holder_kind

    def __str__(self) -> str:
        if self.holder is None:
            held_by = "held by another thread"
        else:
            held_by = f"held by {self.holder_kind} {self.holder!r}"
        return f"safeplot.lock not acquired within {self.timeout:g} s; {held_by}"

    def __reduce__(self) -> tuple[type[LockTimeout], tuple[float, str | None, str]]:
        return (type(self), (self.timeout, self.holder, self.holder_kind))


class UnlockedPyplotError(RuntimeError):
    """pyplot was called without :data:`safeplot.lock` where that is refused.

    Under ``safeplot.guard("raise")``; on an event loop (an ``async def``
    endpoint or view) under a middleware, where waiting for the lock would
    stall every request; and in code a request or a Celery task left running
    after it ended (a thread it did not wait for), at its next touch of
    matplotlib, which the ended request can no longer hold the lock for.
    """


class RenderTimeout(TimeoutError):
    """A :class:`safeplot.RenderPool` job ran past the pool's ``time_limit``.

    ``callback`` names the callback (``module.qualname``) and ``time_limit``
    is the limit in seconds.  The worker that ran it was stopped and a new one
    started; other jobs are not affected.  Pickles with its attributes.
    """

    def __init__(self, callback: str, time_limit: float) -> None:
        super().__init__()
        self.args = (callback, time_limit)  # rebuilt from its args, like LockTimeout
        self.callback = callback
        self.time_limit = time_limit

    def __str__(self) -> str:
        return (
            f"{self.callback} ran past the RenderPool's time limit of {self.time_limit:g} s; "
            "its worker was stopped and replaced"
        )

    def __reduce__(self) -> tuple[type[RenderTimeout], tuple[str, float]]:
        return (type(self), (self.callback, self.time_limit))


class WorkerCrashed(RuntimeError):
    """The :class:`safeplot.RenderPool` worker running a job died (a segfault, ``os._exit``, the OOM killer).

    ``callback`` names the job's callback; ``exitcode`` is the worker's exit
    code, negative for the signal that killed it (``-11``: SIGSEGV), None if
    unknown.  Only that job fails; a new worker takes the dead one's place.
    Pickles with its attributes.
    """

    def __init__(self, callback: str, exitcode: int | None) -> None:
        super().__init__(callback, exitcode)
        self.callback = callback
        self.exitcode = exitcode

    def __str__(self) -> str:
        if self.exitcode is None:
            how = "for an unknown reason"
        elif self.exitcode < 0:
            how = f"killed by signal {_signal_name(-self.exitcode)}"
        else:
            how = f"with exit code {self.exitcode}"
        return f"the RenderPool worker running {self.callback} died {how}"

    def __reduce__(self) -> tuple[type[WorkerCrashed], tuple[str, int | None]]:
        return (type(self), (self.callback, self.exitcode))


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
