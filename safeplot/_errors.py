"""The exceptions and the warning category safeplot raises."""

from __future__ import annotations


class SafeplotWarning(UserWarning):
    """Category of every warning safeplot emits (backend switched, lock held long)."""


class LockTimeout(TimeoutError):
    """The plotting lock was not acquired within the timeout.

    ``timeout`` is the number of seconds waited; ``holder`` is the name of
    what held the lock when the wait gave up (``None`` if it was released just
    then), and ``holder_kind`` says what that is: ``"thread"``, ``"request"``
    (a request under a middleware, named by its method and path) or
    ``"greenlet"``.  The exception pickles with its attributes, so it crosses
    process boundaries intact.
    """

    def __init__(self, timeout: float, holder: str | None, holder_kind: str = "thread") -> None:
        self.timeout = timeout
        self.holder = holder
        self.holder_kind = holder_kind
        held_by = f"held by {holder_kind} {holder!r}" if holder is not None else "held by another thread"
        super().__init__(f"safeplot.lock not acquired within {timeout:g} s; {held_by}")

    def __reduce__(self) -> tuple[type[LockTimeout], tuple[float, str | None, str]]:
        return (type(self), (self.timeout, self.holder, self.holder_kind))


class UnlockedPyplotError(RuntimeError):
    """pyplot was called without :data:`safeplot.lock` where that is refused.

    Under ``safeplot.guard("raise")``; and on an event loop (an ``async def``
    endpoint) under ``safeplot.asgi.SafeplotMiddleware``, where waiting for
    the lock would stall every request.
    """
