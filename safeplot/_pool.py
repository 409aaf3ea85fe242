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
import functools
import os
import pickle
import threading
import traceback
from collections import deque
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import pebble

from ._errors import RenderTimeout, WorkerCrashed
from ._owners import RequestOwner, current_request
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
    try:
        return safeplot.render_callback(func, *args, format=fmt, savefig_kwargs=savefig_kwargs, **kwargs)
    except Exception as error:
        try:
            pickle.loads(pickle.dumps(error))
        except Exception:  # it would break the pool on its way back: send what can travel
            text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            raise RuntimeError(
                f"{type(error).__module__}.{type(error).__qualname__} (which cannot be pickled) "
                f"from {_callback_name(func)}: {error}\n{text}"
            ) from None
        raise


def _is_pebbles_timeout(error: BaseException) -> bool:
    """Whether pebble stopped the job for its timeout (not a TimeoutError the callback raised, which
    comes with the worker's traceback as its cause)."""
    return (
        type(error) is concurrent.futures.TimeoutError
        and error.args[:1] == ("Task timeout",)
        and len(error.args) == 2
        and error.__cause__ is None
    )


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


class _Job:
    """One submitted job: its future, what a worker gets, the request it was made for."""

    __slots__ = ("future", "name", "owner", "payload", "pool", "scheduled")

    def __init__(self, payload: bytes, name: str, owner: RequestOwner | None) -> None:
        self.future: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        self.payload = payload
        self.name = name
        self.owner = owner
        self.scheduled: concurrent.futures.Future[bytes] | None = None
        self.pool: pebble.ProcessPool | None = None  # the pebble pool it was handed to


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
    ``if __name__ == "__main__":``, as multiprocessing needs; a function
    defined in a notebook's ``__main__`` cannot be found by a worker, and its
    job fails with the worker's AttributeError).

    Jobs wait in the pool's own queue until a worker is free, so a queued job
    whose future is cancelled never runs; as with every Executor, a running
    job's future cannot be cancelled (``time_limit`` bounds it).  Use the pool
    as a context manager, or call :meth:`shutdown`; :meth:`map` comes from
    ``Executor``.
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
        self._stopping = False  # shutdown(cancel_futures=True) is stopping the running jobs
        self._finisher: threading.Thread | None = None  # the thread that ends the pool after shutdown()
        self._mutex = threading.Lock()  # guards the queue, the running jobs and the pebble pool
        self._queue: deque[_Job] = deque()
        self._running: set[_Job] = set()
        self._pool = self._new_workers()

    def _new_workers(self) -> pebble.ProcessPool:
        return pebble.ProcessPool(
            max_workers=self.processes,
            max_tasks=self.max_tasks_per_child or 0,
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
        future: the callback's own exception, with its type (one that cannot
        be pickled comes back as a RuntimeError naming it, with its
        traceback); :class:`safeplot.RenderTimeout` past ``time_limit``;
        :class:`safeplot.WorkerCrashed` when the worker died; CancelledError
        for a job :meth:`shutdown` with ``cancel_futures`` stopped.
        """
        name = _callback_name(func)
        fmt = check_format(format)
        try:
            payload = pickle.dumps((func, args, kwargs, fmt, savefig_kwargs))
        except Exception as error:  # PicklingError, AttributeError, TypeError: all mean the same here
            raise TypeError(
                f"RenderPool cannot send {name} to a worker: a callback and its arguments must be "
                f"picklable (a module-level function, not a lambda or a nested function): {error}"
            ) from error
        owner = current_request()
        job = _Job(payload, name, owner if owner is not None and not owner.ended else None)
        with self._mutex:
            if self._shutdown:
                raise RuntimeError("cannot submit a job to a RenderPool after shutdown()")
            self._queue.append(job)
            handed = self._dispatch()
        self._watch(handed)
        return job.future

    def _dispatch(self) -> list[_Job]:
        """Hand queued jobs to free workers (the mutex held); a cancelled one is dropped.

        Returns the jobs handed over: the caller watches them (:meth:`_watch`)
        once it has let go of the mutex, since a job done already would settle
        at once.  Queued jobs go on to workers after :meth:`shutdown` too,
        unless it cancelled them.  A job that cannot be handed over fails with
        :class:`safeplot.WorkerCrashed` (no worker could start); the rest go on.
        """
        handed: list[_Job] = []
        while self._queue and len(self._running) < self.processes:
            job = self._queue.popleft()
            if not job.future.set_running_or_notify_cancel():
                continue  # cancelled while it waited
            try:
                try:
                    job.scheduled = self._pool.schedule(
                        _run_job, args=(job.payload,), timeout=self.time_limit
                    )
                except RuntimeError:  # pebble's pool broke (a worker died while idle): start anew
                    self._replace_workers()
                    job.scheduled = self._pool.schedule(
                        _run_job, args=(job.payload,), timeout=self.time_limit
                    )
            except BaseException as error:  # no worker can start (too many processes, no pipes)
                crashed = WorkerCrashed(job.name, None)
                crashed.__cause__ = error
                job.future.set_exception(crashed)
                continue
            job.pool = self._pool
            self._running.add(job)
            handed.append(job)
        return handed

    def _watch(self, jobs: list[_Job]) -> None:
        """Have each job's future settled when pebble's is (called without the mutex)."""
        for job in jobs:
            assert job.scheduled is not None
            job.scheduled.add_done_callback(functools.partial(self._settle, job))

    def _replace_workers(self) -> None:
        """A fresh pebble pool in place of a broken one (the mutex held); the old one is reaped aside.

        Jobs the broken pool still had fail with :class:`safeplot.WorkerCrashed`.
        """
        broken, self._pool = self._pool, self._new_workers()
        for job in [job for job in self._running if job.pool is broken]:
            self._running.discard(job)
            if not job.future.done():
                job.future.set_exception(WorkerCrashed(job.name, None))
        broken.stop()  # type: ignore[no-untyped-call]
        threading.Thread(target=broken.join, name="safeplot-pool-reaper", daemon=True).start()

    def _settle(self, job: _Job, done: concurrent.futures.Future[bytes]) -> None:
        """Give ``job``'s future what its pebble future gave, with pebble's errors as safeplot's."""
        error = None if done.cancelled() else done.exception()
        broken = isinstance(error, BrokenProcessPool)
        if done.cancelled() or (error is not None and self._stopping):
            error = concurrent.futures.CancelledError()
        elif isinstance(error, (pebble.ProcessExpired, BrokenProcessPool)):
            error = WorkerCrashed(job.name, getattr(error, "exitcode", None))
        elif self.time_limit is not None and error is not None and _is_pebbles_timeout(error):
            error = RenderTimeout(job.name, self.time_limit)
        if isinstance(error, (RenderTimeout, WorkerCrashed)) and job.owner is not None:
            job.owner.note_failure(error)  # a web middleware answers for it, over a framework's 500 page
        if not job.future.done():  # (a shutdown that stopped it, or a replaced pool, answered already)
            if error is None:
                job.future.set_result(done.result())
            else:
                job.future.set_exception(error)
        with self._mutex:
            self._running.discard(job)
            if broken and job.pool is self._pool:
                self._replace_workers()
            handed = self._dispatch()
        self._watch(handed)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking jobs; with ``wait``, return once the queued and running ones are done.

        ``cancel_futures``: cancel the futures of the jobs still queued, and
        stop the running ones at once (their futures raise CancelledError).
        Without ``wait``, the rest happens in the background.  Calling it
        again only waits (with ``wait``) for the first call's work to end.
        """
        with self._mutex:
            finisher = self._finisher
            if finisher is not None:  # shut down before: wait for that to end, do nothing more
                if wait and finisher is not threading.current_thread():
                    finisher.join()
                return
            self._shutdown = True
            dropped: list[_Job] = []
            stopped: list[_Job] = []
            if cancel_futures:
                dropped, stopped = list(self._queue), list(self._running)
                self._queue.clear()
                self._stopping = True
            pending = [job.future for job in (*self._queue, *self._running)]
        for job in dropped:
            job.future.cancel()

        def finish() -> None:
            if cancel_futures:
                with self._mutex:
                    pool = self._pool
                pool.stop()  # type: ignore[no-untyped-call]
            else:
                concurrent.futures.wait(pending)  # queued jobs still go to workers meanwhile
                with self._mutex:
                    pool = self._pool
                pool.close()  # type: ignore[no-untyped-call]
            pool.join()
            for job in stopped:
                if not job.future.done():
                    job.future.set_exception(concurrent.futures.CancelledError())

        with self._mutex:
            self._finisher = threading.Thread(target=finish, name="safeplot-pool-shutdown", daemon=True)
            self._finisher.start()
        if wait:
            self._finisher.join()
