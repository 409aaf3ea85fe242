"""The framework-neutral core of the web adapters (``wsgi``, ``django``, ``asgi``).

Each adapter turns an :class:`Answer` into its framework's response object;
everything else lives here, once: the view decorator that decides between a
figure and a response, the 503 for a lock timeout, the request group that
begins at a request's first touch of matplotlib, and the rule that no byte is
sent while that group holds the lock.
"""

from __future__ import annotations

import functools
import logging
import math
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar, Union

from matplotlib.figure import Figure

from ._compat import pool_job_frame
from ._errors import LockTimeout, RenderTimeout, UnlockedPyplotError, WorkerCrashed
from ._group import (
    Frame,
    check_lockable,
    close_request_group,
    locked,
    open_job_group,
    open_request_group,
    resume_job_group,
)
from ._guard import TOUCH, hooks
from ._lock import DEFAULT, RequestEnded, TimeoutOption, lock, resolve_timeout, timeout_option
from ._owners import JobOwner, RequestOwner, TaskOwner, current_request, current_runner
from ._render import check_format, figure_drawn_by, mimetype, render

T = TypeVar("T")
HeaderItems = Union[Mapping[str, str], Iterable[tuple[str, str]]]


class Answer(NamedTuple):
    """A response before it becomes a framework's object."""

    status: int
    content_type: str
    headers: list[tuple[str, str]]  # without Content-Type; Content-Length included
    body: bytes


def header_list(headers: HeaderItems | None) -> list[tuple[str, str]]:
    """``headers`` (a mapping, werkzeug ``Headers`` or pairs) as a list of pairs."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(name), str(value)) for name, value in items]


def image_answer(
    fig: Figure | None, format: str, headers: HeaderItems | None, savefig_kwargs: Mapping[str, Any]
) -> Answer:
    """A figure as a 200 answer: its content type, ``Content-Length`` and ``Cache-Control: no-store``.

    ``Cache-Control`` is left to ``headers`` when they carry one.  Raises what
    :func:`safeplot.render` raises.
    """
    body = render(fig, format, **savefig_kwargs)
    extra = header_list(headers)
    names = {name.lower() for name, _ in extra}
    if "cache-control" not in names:
        extra.append(("Cache-Control", "no-store"))
    extra = [(name, value) for name, value in extra if name.lower() not in ("content-length", "content-type")]
    extra.append(("Content-Length", str(len(body))))
    return Answer(200, mimetype(format), extra, body)


def lock_timeout_answer(error: LockTimeout) -> Answer:
    """``503 Service Unavailable``, text/plain, with ``Retry-After``: a request that did not get the lock."""
    retry_after = max(1, math.ceil(error.timeout)) if math.isfinite(error.timeout) else 1
    return _plain_answer(503, f"503 Service Unavailable: {error}\n", [("Retry-After", str(retry_after))])


ANSWERED_ERRORS = (LockTimeout, RenderTimeout, WorkerCrashed)  # what the adapters turn into answers
AnsweredError = Union[LockTimeout, RenderTimeout, WorkerCrashed]
_logger = logging.getLogger("safeplot")


def error_answer(error: AnsweredError) -> Answer:
    """The text/plain answer for an error the adapters answer themselves.

    :class:`LockTimeout` and :class:`RenderTimeout` (a RenderPool job past its
    time limit) are a ``503`` with ``Retry-After``; :class:`WorkerCrashed` is a
    ``500``, and is logged (at ERROR, on the ``safeplot`` logger) with its
    traceback.
    """
    if isinstance(error, LockTimeout):
        return lock_timeout_answer(error)
    if isinstance(error, RenderTimeout):
        return _plain_answer(503, f"503 Service Unavailable: {error}\n", [("Retry-After", "1")])
    _logger.error("a plot's RenderPool worker died: %s", error, exc_info=error)
    return _plain_answer(500, "500 Internal Server Error: the process drawing the plot died\n", [])


def _plain_answer(status: int, text: str, headers: list[tuple[str, str]]) -> Answer:
    body = text.encode()
    headers = [*headers, ("Cache-Control", "no-store"), ("Content-Length", str(len(body)))]
    return Answer(status, "text/plain; charset=utf-8", headers, body)


class ResponseKind(NamedTuple):
    """How one framework's responses are recognised and built from an :class:`Answer`."""

    response_type: type[Any] | tuple[type[Any], ...]
    build: Callable[[Answer], Any]


def plot_view(
    view: Callable[..., Any] | None,
    kind: ResponseKind,
    *,
    format: str,
    timeout: TimeoutOption,
    savefig_kwargs: dict[str, Any],
) -> Any:
    """The one ``plot_view`` decorator, for the framework ``kind`` describes (see the adapters)."""
    fmt = check_format(format)
    timeout = timeout_option(timeout)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        check_lockable(view)
        group = locked(timeout=timeout)

        @group
        def answer_in_group(*args: Any, **kwargs: Any) -> Any:
            result = view(*args, **kwargs)
            if isinstance(result, kind.response_type):
                return result
            return kind.build(image_answer(figure_drawn_by(view, result), fmt, None, savefig_kwargs))

        @functools.wraps(view)
        def respond(*args: Any, **kwargs: Any) -> Any:
            try:
                return answer_in_group(*args, **kwargs)
            except ANSWERED_ERRORS as error:
                return kind.build(error_answer(error))

        return respond

    if view is None:
        return decorate
    if not callable(view):
        raise TypeError(f"plot_view takes a view function or keyword options; got {view!r}")
    return decorate(view)


_in_flight = [0]  # requests started and not finished
_in_flight_mutex = threading.Lock()


def requests_in_flight() -> int:
    """How many middleware requests have started and not finished (for tests and statistics)."""
    return _in_flight[0]


def _count_in_flight(change: int) -> None:
    with _in_flight_mutex:
        _in_flight[0] += change


def watch_unowned_code() -> Callable[[], None]:
    """Turn the hooks on, as for a request, until the returned function is called (a websocket's)."""
    hooks.use(request=True)
    return functools.partial(hooks.unuse, request=True)


def in_a_request() -> bool:
    """Whether the calling code runs for a request (or task run) that has not ended."""
    owner = current_request()
    return owner is not None and not owner.ended


class Request:
    """One request's pyplot use under a middleware: a group begun by its first touch of shared state.

    :meth:`start` (in the context the request's code runs in) makes the
    request the owner of its code's holds, in every thread its context is
    carried into (:mod:`safeplot._owners`).  From then on the first touch of
    matplotlib's shared state in any of those threads takes the lock for the
    request, waiting up to ``timeout``, and opens the request's group; its
    threads take turns in it.  :meth:`end_group` ends the group (never
    waiting); a later touch begins another.  :meth:`finish` ends it for good,
    in the context :meth:`start` ran in: code the request left running gets
    an :class:`~safeplot.UnlockedPyplotError` instead of the lock.

    ``label`` names the request in messages (``"GET /plot/1.png"``); ``task``:
    it is a task run (a LockTimeout names it as a ``"task"``).
    ``on_event_loop``: :meth:`start` runs on the event loop that serves the
    request: a touch there raises UnlockedPyplotError instead of waiting.
    """

    def __init__(
        self, label: str, timeout: TimeoutOption, *, on_event_loop: bool = False, task: bool = False
    ) -> None:
        owner_type = TaskOwner if task else RequestOwner
        self.owner = owner_type(label, loop_thread=threading.get_ident() if on_event_loop else None)
        self.owner.begin_group = weakref.WeakMethod(self._begin)
        if timeout is not DEFAULT:
            self.owner.timeout = (timeout,)
        self._timeout = timeout
        self.timed_out: LockTimeout | None = None
        self.started = False
        self.finished = False
        self._frame: Frame | None = None  # of the request's group, while one is open

    @property
    def pool_failure(self) -> AnsweredError | None:
        """The RenderPool failure its code met, if any (a job it submitted timed out or crashed)."""
        failure = self.owner.failure
        return failure if isinstance(failure, (RenderTimeout, WorkerCrashed)) else None

    @property
    def holds_lock(self) -> bool:
        """Whether the request's group (or a group of one of its threads) holds the lock now."""
        return lock.holder_owner() is self.owner

    def start(self) -> None:
        """Make the request the owner of its code's holds, in the calling context.

        The hooks are on from now until nothing can run the request's code any
        more (its owner is gone with the last context that carries it: code it
        left running is seen when it touches matplotlib after the response).
        """
        hooks.use(request=True)
        weakref.finalize(self.owner, hooks.unuse, request=True)
        self.started = True
        _count_in_flight(+1)
        self.owner.enter()

    def _begin(self) -> None:
        owner = self.owner
        if owner.on_its_event_loop():
            raise UnlockedPyplotError(
                "matplotlib used on the event loop (in an async def endpoint) under a "
                "safeplot middleware: waiting there for the plotting lock would stall "
                "every request. Make the endpoint a plain def (it then runs in the thread pool), "
                "or await safeplot.asgi.render_callback(func, ...) from the async one"
            )
        try:
            frame = open_request_group(owner, current_runner(), resolve_timeout(self._timeout))
        except LockTimeout as error:
            self.timed_out = error
            raise
        except RequestEnded:
            raise UnlockedPyplotError(owner.ended_message()) from None
        if frame is not None:
            self._frame = frame

    def end_group(self) -> None:
        """End the request's group if one is open: figures closed, changes undone, lock released.

        Never waits.  If a thread of the request is inside a group of its own
        still, the request's group ends when that thread leaves it.
        """
        frame, self._frame = self._frame, None
        if frame is not None:
            close_request_group(self.owner, frame)

    def finish(self) -> None:
        """End the request: its group, its hold on the threads it ran in; once, where :meth:`start` ran."""
        if self.finished:
            return
        self.finished = True
        if not self.started:
            return
        owner = self.owner
        _count_in_flight(-1)
        owner.leave()
        lock.request_ended(owner)  # a thread still waiting for the lock for it stops waiting
        self.end_group()
        lock.sweep()  # a pool job of no request that returned meanwhile


def _touch_of_no_request(kind: str, serving: bool) -> bool:
    """A touch by code of no request: whether it runs locked, in the group of its thread-pool job.

    Under a middleware, the first pyplot call (or change of shared state) of
    a job that a thread pool runs for no request (``loop.run_in_executor(None,
    plot)``, an executor's ``submit``) takes the lock for the job, as a group
    of its own; it ends when the job returns.  Elsewhere (a thread of its
    own, whose end cannot be told from a pause) nothing is locked: the guard
    reports it.
    """
    runner = current_runner()
    job = runner.job
    if job is not None:
        if not job.finished():
            if lock.holder_owner() is not job:
                resume_job_group(job, resolve_timeout(DEFAULT))  # set aside while the job waited
            return True
        lock.sweep()
        runner.job = None
    if kind == TOUCH or not serving:
        return False
    frame = pool_job_frame(sys._getframe(1))
    if frame is None:
        return False
    job = JobOwner(runner, frame)
    open_job_group(job, resolve_timeout(DEFAULT))
    runner.job = job
    return True


hooks.on_unowned_touch(_touch_of_no_request)


def send_unlocked(
    chunks: Iterable[T], request: Request, end: Callable[[], None], held: list[T] | None = None
) -> Iterator[T]:
    """Yield a response body's chunks so that none is yielded while ``request`` holds the lock.

    Chunks pass through until the request first touches matplotlib's shared
    state; from then on the rest is produced in memory, ``end()`` ends the
    request (its group closed, the lock released), and only then are they
    yielded, after ``held`` (output produced earlier under the lock).
    ``end()`` is also called when producing raises (LockTimeout included,
    which then propagates) and when the consumer closes this generator early.
    """
    produced = held if held is not None else []
    iterator = iter(chunks)
    try:
        for chunk in iterator:
            if request.holds_lock:
                produced.append(chunk)
                produced.extend(iterator)
                break
            yield chunk
    except BaseException:
        end()
        raise
    end()
    yield from produced
