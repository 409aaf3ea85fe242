"""Celery: legacy pyplot tasks run safely on every worker pool (extra ``safeplot[celery]``).

``SafeplotTask`` is a base task class.  Each run of a task under it is one
group, as a request is under the web middlewares: from the run's first touch
of matplotlib's shared state (pyplot, a style, ``rcParams``, creating an
artist) until its body returns, before the result is sent to the result
backend.  The group closes every figure the run opened and undoes its
style, ``rcParams`` and registry changes, so nothing leaks into the next
task of the same worker; a task that never plots never takes the lock.

The wait for the lock is bounded by the task's ``safeplot_timeout`` option,
else the app's ``safeplot_timeout`` setting, else safeplot's configured
default (``safeplot.configure(timeout=)`` or ``SAFEPLOT_TIMEOUT``).  A run that
does not get the lock in time fails with :class:`safeplot.LockTimeout` (the
caller's ``AsyncResult.get()`` raises it too); it never runs unlocked.

This is the only module of safeplot that imports Celery.
"""

from __future__ import annotations

from typing import Any

try:
    from celery import Task
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "safeplot.celery needs Celery >= 5.3; install it with: pip install 'safeplot[celery]'"
    ) from exc

from . import _web
from ._lock import DEFAULT, TimeoutOption, lock, timeout_option

__all__ = ["TIMEOUT_SETTING", "SafeplotTask"]

#: The name of the app setting (``app.conf.safeplot_timeout``) and of the task option
#: (``@app.task(safeplot_timeout=5)``) that bound a run's wait for the lock, in seconds.
TIMEOUT_SETTING = "safeplot_timeout"


class SafeplotTask(Task):  # type: ignore[misc]  # Celery ships no type information
    """A Celery task whose every run is one safeplot group.

    Use it for every task of an app, ``Celery("proj",
    task_cls="safeplot.celery:SafeplotTask")``, for one task,
    ``@app.task(base=SafeplotTask)``, or subclass it for an app's own base
    class.  No task body changes.

    ``safeplot_timeout`` (a task option: ``@app.task(safeplot_timeout=5)``)
    bounds the wait for the lock in seconds; unset, the app's
    ``app.conf.safeplot_timeout`` applies, and unset there too, safeplot's
    configured default.  ``None`` waits for as long as it takes.

    Bad path: a run that does not get the lock in time fails with
    :class:`safeplot.LockTimeout` (which ``autoretry_for=(LockTimeout,)``
    retries, and which ``AsyncResult.get()`` re-raises in the caller); a
    ``safeplot_timeout`` that is not None or a number of seconds >= 0 fails
    the run with ValueError (TypeError for a non-number) before it starts.
    Code the run leaves running after it returned (a thread it started and
    did not join) gets an :class:`~safeplot.UnlockedPyplotError` at its next
    touch of matplotlib, instead of the lock.
    """

    safeplot_timeout: Any = DEFAULT

    def safeplot_wait(self) -> TimeoutOption:
        """The timeout this task's runs wait for the lock with (DEFAULT: safeplot's configured one).

        Raises ValueError or TypeError for a bad ``safeplot_timeout``, naming
        where it was set.
        """
        if self.safeplot_timeout is not DEFAULT:
            return timeout_option(self.safeplot_timeout, name=f"safeplot_timeout of task {self.name}")
        setting = self.app.conf.get(TIMEOUT_SETTING, DEFAULT)
        return timeout_option(setting, name=f"app.conf.{TIMEOUT_SETTING}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the task's body as one group (Celery's worker calls this before storing the result).

        A run called from code that already holds the lock or runs for a
        request or another task run (a task called directly, or applied
        eagerly, inside one) runs in that hold: a group of its own would wait
        for its caller.
        """
        if lock.is_owned() or _web.in_a_request():
            return self._body(args, kwargs)
        run = _web.Request(f"{self.name}[{self.request.id}]", self.safeplot_wait(), task=True)
        run.start()
        try:
            return self._body(args, kwargs)
        finally:
            run.finish()

    def _body(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # Celery's tracer (a worker's, or apply()'s) has pushed this run's request already;
        # Task.__call__ would push a second one that looks "called directly", under which
        # retry(), and so autoretry_for, only re-raises (Celery 5.3 applied eagerly).  Celery's
        # workers guard against that for overridden __call__s; this does the same everywhere.
        top = self.request_stack.top
        if top is not None and not top.called_directly and not getattr(top, "_safeplot_body", False):
            top._safeplot_body = True  # a direct call of this task from its own body pushes its own
            return self.run(*args, **kwargs)
        return super().__call__(*args, **kwargs)
