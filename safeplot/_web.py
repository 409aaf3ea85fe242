"""The framework-neutral core of the web adapters (``wsgi``, ``django``, ``asgi``).

Each adapter turns an :class:`Answer` into its framework's response object;
everything else lives here, once: the view decorator that decides between a
figure and a response, the 503 for a lock timeout, the request group that
begins at a request's first touch of matplotlib, and the rule that no byte is
sent while that group holds the lock.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple, TypeVar, Union

from matplotlib.figure import Figure

from ._errors import LockTimeout, UnlockedPyplotError
from ._group import ContextGroup, _Group, check_lockable, locked
from ._guard import context_handler, hooks, thread_state
from ._lock import _UNSET, check_timeout, context_owner
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
    body = f"503 Service Unavailable: {error}\n".encode()
    headers = [
        ("Retry-After", str(retry_after)),
        ("Cache-Control", "no-store"),
        ("Content-Length", str(len(body))),
    ]
    return Answer(503, "text/plain; charset=utf-8", headers, body)


class ResponseKind(NamedTuple):
    """How one framework's responses are recognised and built from an :class:`Answer`."""

    response_type: type[Any] | tuple[type[Any], ...]
    build: Callable[[Answer], Any]


def plot_view(
    view: Callable[..., Any] | None,
    kind: ResponseKind,
    *,
    format: str,
    timeout: float | None,
    savefig_kwargs: dict[str, Any],
) -> Any:
    """The one ``plot_view`` decorator, for the framework ``kind`` describes (see the adapters)."""
    fmt = check_format(format)
    if timeout is not _UNSET:
        timeout = check_timeout(timeout)

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        check_lockable(view)
        group = locked(timeout=timeout) if timeout is not _UNSET else locked()

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
            except LockTimeout as error:
                return kind.build(lock_timeout_answer(error))

        return respond

    if view is None:
        return decorate
    if not callable(view):
        raise TypeError(f"plot_view takes a view function or keyword options; got {view!r}")
    return decorate(view)


class PyplotRequest:
    """One request's lazily begun group: begun by its first touch of shared state, ended once.

    :meth:`start` arms the calling thread: from then on, the first touch of
    matplotlib's shared state in that thread takes the lock (waiting up to
    ``timeout``) and opens a ``locked()`` group.  :meth:`finish`, called in
    the same thread, ends it: figures closed, changes undone, lock released.
    """

    def __init__(self, timeout: float | None) -> None:
        self._group: _Group = locked(timeout=timeout) if timeout is not _UNSET else locked()
        self.started = False
        self.begun = False
        self.timed_out: LockTimeout | None = None
        self.finished = False

    @property
    def holds_lock(self) -> bool:
        return self.begun and not self.finished

    def start(self) -> None:
        hooks.use()
        self.started = True
        thread_state.on_unlocked_call = self.begin

    def begin(self) -> None:
        """Take the lock and open the group; LockTimeout if the lock is not had in time."""
        try:
            self._group.__enter__()
        except LockTimeout as error:
            self.timed_out = error
            raise
        self.begun = True
        thread_state.on_unlocked_call = None  # the lock is held from now on

    def finish(self) -> None:
        """Close the request's figures, undo its changes to shared state, release the lock."""
        if self.finished:
            return
        self.finished = True
        if not self.started:
            return
        thread_state.on_unlocked_call = None
        try:
            hooks.unuse()  # first: whoever sees the lock free sees the hooks gone too
        finally:
            if self.begun:
                self._group.__exit__(None, None, None)


class ContextRequest:
    """One ASGI request's pyplot use: a group begun by its first touch of shared state in any
    thread that runs its code (a thread pool's), and ended by :meth:`end_group` on the event loop.

    :meth:`start` (on the event loop, in the request's task) arms every thread
    that runs the request's context later: the first touch there takes the
    lock, waiting up to ``timeout``, for the request (not for the thread).  A
    touch on the event loop itself raises :class:`safeplot.UnlockedPyplotError`
    instead of waiting there.  :meth:`end_group` never waits; after it, a
    later touch begins another group.
    """

    def __init__(self, timeout: float | None) -> None:
        self._group = ContextGroup(timeout)
        self.begun = False
        self.finished = False
        self.timed_out: LockTimeout | None = None
        self._tokens: tuple[Any, Any] | None = None

    def start(self) -> None:
        hooks.use()
        self._tokens = (context_owner.set(self), context_handler.set(self.begin))

    def begin(self) -> None:
        if self.finished:
            raise UnlockedPyplotError(
                "matplotlib used by a request's code after its response ended (a thread or task "
                "it left running): safeplot.asgi.SafeplotMiddleware no longer holds the lock for it; "
                "run such work in safeplot.locked() or await it before answering"
            )
        if _on_event_loop():
            raise UnlockedPyplotError(
                "matplotlib used on the event loop (in an async def endpoint) under "
                "safeplot.asgi.SafeplotMiddleware: waiting there for the plotting lock would stall "
                "every request. Make the endpoint a plain def (it then runs in the thread pool), "
                "or await safeplot.asgi.render_callback(func, ...) from the async one"
            )
        try:
            self._group.enter()
        except LockTimeout as error:
            self.timed_out = error
            raise
        self.begun = True

    def end_group(self) -> None:
        """End the group if one is open: figures closed, changes undone, lock released."""
        if self.begun:
            self.begun = False
            self._group.exit()

    def finish(self) -> None:
        """End the group and disarm; in the request's task, once.  Threads the request left
        running keep a copy of its context: their later touches raise instead of locking."""
        self.finished = True
        try:
            self.end_group()
        finally:
            if self._tokens is not None:
                owner_token, handler_token = self._tokens
                self._tokens = None
                context_handler.reset(handler_token)
                context_owner.reset(owner_token)
                hooks.unuse()


def _on_event_loop() -> bool:
    """Whether the calling thread runs an event loop now (asyncio's, or trio's as sniffio sees it)."""
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    try:
        import sniffio  # comes with anyio; knows trio's loop
    except ImportError:
        return False
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return True


def send_unlocked(
    chunks: Iterable[T], request: PyplotRequest, end: Callable[[], None], held: list[T] | None = None
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
