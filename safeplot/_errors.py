"""The exceptions and the warning category safeplot raises."""

from __future__ import annotations


class SafeplotWarning(UserWarning):
    """Category of every warning safeplot emits (backend switched, lock held long)."""


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

    Under ``safeplot.guard("raise")``; and on an event loop (an ``async def``
    endpoint) under ``safeplot.asgi.SafeplotMiddleware``, where waiting for
    the lock would stall every request.
    """
