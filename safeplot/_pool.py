"""``RenderPool``: legacy pyplot callbacks rendered in worker processes, across every core.

One process draws no faster than one core (matplotlib runs every
``Figure.draw`` of a process under one lock), cannot stop a runaway render
(a thread can't be killed) and dies with a crash in FreeType.  A RenderPool
runs callbacks in worker processes instead, each job through
:func:`safeplot.render_callback` (a group, so nothing leaks from job to job),
with a hard time limit per job and crash isolation.

It is built on pebble's ``ProcessPool``: futures, a timeout per task that
stops and replaces the worker, a lost worker reported as ``ProcessExpired``
with its exit code while the other workers' and the queued jobs go on,
``max_tasks`` to recycle workers, and the multiprocessing start method given
as a context.  (billiard, Celery's pool, has per-task limits and lost-worker
detection too, but through ``apply_async`` callbacks that would need a bridge
to futures of our own, and it starts workers by forking.)  Workers are started
with forkserver where the platform has it, else spawn: never by forking the
(threaded) server process.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import threading
from collections.abc import Callable
from typing import Any

import pebble

from ._errors import RenderTimeout, WorkerCrashed
from ._render import check_format

__all__ = ["RenderPool"]


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the platform tells it)."""
    affinity = getattr(os, "sched_getaffinity", None)
    if affinity is not None:
        return max(1, len(affinity(0)))
    return os.cpu_count() or 1


def _start_method() -> Any:
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def _start_worker() -> None:
    """Run once in each worker: import safeplot (Agg forced) and warm matplotlib's font cache."""
    import safeplot

    with safeplot.locked() as plt:
        plt.figure(figsize=(1, 1), dpi=10)
        plt.title("warm-up $x^2$")
        safeplot.render(format="png")


def _run_job(job: bytes) -> bytes:
    """Run one pickled job in a worker: ``safeplot.render_callback`` of it."""
    import safeplot

    func, args, kwargs, fmt, savefig_kwargs = pickle.loads(job)
    return safeplot.render_callback(func, *args, format=fmt, savefig_kwargs=savefig_kwargs, **kwargs)


def _is_pebbles_timeout(error: BaseException) -> bool:
    """Whether pebble stopped the job for its timeout (not a TimeoutError the callback raised)."""
    return type(error) is concurrent.futures.TimeoutError and error.args[:1] == ("Task timeout",)


def _callback_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "?"
    return f"{module}.{getattr(func, '__qualname__', repr(func))}"


def _check_positive(value: object, name: str, *, integer: bool) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "a whole number" if integer else "a number of seconds"
        raise TypeError(f"{name} must be {what} or None, not {value!r}")
    if not value > 0:  # NaN too
        raise ValueError(f"{name} must be > 0 or None, not {value!r}")


class RenderPool(concurrent.futures.Executor):
    """A ``concurrent.futures.Executor`` that renders legacy pyplot callbacks in worker processes.

    ``processes``: how many workers (default: the CPUs this process may use).
    ``time_limit``: seconds a job may run before its worker is stopped and
    replaced and the job fails with :class:`safeplot.RenderTimeout` (None: no
    limit).  ``max_tasks_per_child``: jobs a worker runs before it is replaced
    by a fresh one (None: no limit).  Bad values raise TypeError or ValueError
    naming the argument.

    Workers start with forkserver (spawn where there is none), import
    safeplot and warm matplotlib's font cache once; they start with
    matplotlib's defaults and the ``matplotlibrc``, not the ``rcParams`` this
    process changed at run time.  A callback is pickled by reference, so it
    must be importable by name: a module-level function (in a script run
    directly, one defined at its top level, with the script's work under
    ``if __name__ == "__main__":``, as multiprocessing needs).

    Use it as a context manager, or call :meth:`shutdown`; :meth:`map` comes
    from ``Executor``.
    """

    def __init__(
        self,
        processes: int | None = None,
        *,
        time_limit: float | None = None,
        max_tasks_per_child: int | None = None,
    ) -> None:
        if processes is not None:
            _check_positive(processes, "processes", integer=True)
        if time_limit is not None:
            _check_positive(time_limit, "time_limit", integer=False)
        if max_tasks_per_child is not None:
            _check_positive(max_tasks_per_child, "max_tasks_per_child", integer=True)
        self.processes = processes if processes is not None else _usable_cpus()
        self.time_limit = None if time_limit is None else float(time_limit)
        self.max_tasks_per_child = max_tasks_per_child
        self._shutdown = False
        self._shutdown_lock = threading.Lock()
        self._pool = pebble.ProcessPool(
            max_workers=self.processes,
            max_tasks=max_tasks_per_child or 0,
            initializer=_start_worker,
            context=_start_method(),
        )

    def __repr__(self) -> str:
        state = "shut down" if self._shutdown else "running"
        return f"<safeplot.RenderPool processes={self.processes} time_limit={self.time_limit} {state}>"

    def submit(  # type: ignore[override]  # the format options are keywords of ours
        self,
        func: Callable[..., Any],
        /,
        *args: Any,
        format: str = "png",
        savefig_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> concurrent.futures.Future[bytes]:
        """Render ``func(*args, **kwargs)`` in a worker; a Future of the bytes ``render_callback`` gives.

        The result is what :func:`safeplot.render_callback` with the same
        arguments returns in this process, byte for byte.  Bad path, at once:
        RuntimeError after :meth:`shutdown`; ValueError for an unknown format;
        TypeError, naming the callback, when the callback or its arguments
        cannot be pickled (a lambda, a nested function).  Bad path, from the
        future: the callback's own exception, with its type;
        :class:`safeplot.RenderTimeout` past ``time_limit``;
        :class:`safeplot.WorkerCrashed` when the worker died.
        """
        name = _callback_name(func)
        fmt = check_format(format)
        try:
            job = pickle.dumps((func, args, kwargs, fmt, savefig_kwargs))
        except Exception as error:  # PicklingError, AttributeError, TypeError: all mean the same here
            raise TypeError(
                f"RenderPool cannot send {name} to a worker: a callback and its arguments must be "
                f"picklable (a module-level function, not a lambda or a nested function): {error}"
            ) from error
        with self._shutdown_lock:
            if self._shutdown:
                raise RuntimeError("cannot submit a job to a RenderPool after shutdown()")
            scheduled = self._pool.schedule(_run_job, args=(job,), timeout=self.time_limit)
        return self._translated(scheduled, name)

    def _translated(
        self, scheduled: concurrent.futures.Future[bytes], name: str
    ) -> concurrent.futures.Future[bytes]:
        """A future that gives what ``scheduled`` gives, with pebble's errors as safeplot's."""
        future: concurrent.futures.Future[bytes] = concurrent.futures.Future()

        def settle(done: concurrent.futures.Future[bytes]) -> None:
            if done.cancelled():
                future.cancel()
                future.set_running_or_notify_cancel()
                return
            error = done.exception()
            if error is None:
                if future.set_running_or_notify_cancel():
                    future.set_result(done.result())
                return
            if isinstance(error, pebble.ProcessExpired):
                error = WorkerCrashed(name, getattr(error, "exitcode", None))
            elif self.time_limit is not None and _is_pebbles_timeout(error):
                error = RenderTimeout(name, self.time_limit)
            if future.set_running_or_notify_cancel():
                future.set_exception(error)

        original_cancel = future.cancel

        def cancel() -> bool:
            scheduled.cancel()  # a queued job is dropped; a running one's worker is stopped
            return original_cancel()

        future.cancel = cancel  # type: ignore[method-assign]
        scheduled.add_done_callback(settle)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking jobs; with ``wait``, return once the queued and running ones are done.

        ``cancel_futures``: drop the jobs still queued (their futures are
        cancelled), and stop the running ones at once.  Calling it again does
        nothing more.
        """
        with self._shutdown_lock:
            self._shutdown = True
        if cancel_futures:
            self._pool.stop()  # type: ignore[no-untyped-call]
        else:
            self._pool.close()  # type: ignore[no-untyped-call]
        if wait:
            self._pool.join()
