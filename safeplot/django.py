"""Django helpers: figures as responses, pyplot views, the settings middleware (``safeplot[django]``).

This is the only module of safeplot that imports Django.  Everything that is
not about Django's request and response objects lives in the neutral core
shared with :mod:`safeplot.wsgi`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar, Union, overload

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.signals import got_request_exception
    from django.http import HttpRequest, HttpResponse, HttpResponseBase
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "safeplot.django needs Django >= 4.2; install it with: pip install 'safeplot[django]'"
    ) from exc
from matplotlib.figure import Figure

from . import _web
from ._errors import LockTimeout
from ._lock import DEFAULT, TimeoutOption, check_timeout

__all__ = ["SafeplotMiddleware", "image_response", "plot_view"]

V = TypeVar("V", bound=Callable[..., Any])
GetResponse = Callable[[HttpRequest], Union[HttpResponseBase, Awaitable[HttpResponseBase]]]

_TIMEOUT_SETTING = "SAFEPLOT_TIMEOUT"
_TIMED_OUT = "_safeplot_lock_timeout"  # a LockTimeout Django made a 500 of, on the HttpRequest


def image_response(
    fig: Figure | None = None,
    format: str = "png",
    *,
    headers: _web.HeaderItems | None = None,
    **savefig_kwargs: Any,
) -> HttpResponse:
    """A Django ``HttpResponse`` holding a figure (default: pyplot's current one) as an image.

    The content type matches the format, ``Content-Length`` is set, and
    ``Cache-Control: no-store`` is added unless ``headers`` (a mapping or
    pairs) carries its own ``Cache-Control``.  ``savefig_kwargs`` go to
    ``Figure.savefig``.  Raises what :func:`safeplot.render` raises:
    ValueError for an unknown format or no current figure, TypeError when
    ``fig`` is not a figure, :class:`safeplot.LockTimeout` if the lock is not
    had.
    """
    return _to_response(_web.image_answer(fig, format, headers, savefig_kwargs))


def _to_response(answer: _web.Answer) -> HttpResponse:
    response = HttpResponse(answer.body, content_type=answer.content_type, status=answer.status)
    for name, value in answer.headers:
        response[name] = value
    return response


_DJANGO = _web.ResponseKind(HttpResponseBase, _to_response)


@overload
def plot_view(view: V, /) -> V: ...


@overload
def plot_view(
    *, format: str = ..., timeout: TimeoutOption = ..., **savefig_kwargs: Any
) -> Callable[[V], V]: ...


def plot_view(
    view: Callable[..., Any] | None = None,
    /,
    *,
    format: str = "png",
    timeout: TimeoutOption = DEFAULT,
    **savefig_kwargs: Any,
) -> Any:
    """Decorate a Django view that draws with pyplot so that it answers with the image.

    Use bare (``@plot_view``) or with options (``@plot_view(format="svg",
    timeout=5, dpi=100)``); on a class-based view's method use
    ``@method_decorator(plot_view)``.  The view runs in a
    :func:`safeplot.locked` group; if it returns a figure, that is rendered,
    if it returns a response (``HttpResponse``, a redirect, a streaming
    response) that is passed through, else the current figure it opened is
    rendered.  Its figures are closed afterwards either way.

    On the bad path: a :class:`safeplot.LockTimeout` becomes a text/plain
    ``503 Service Unavailable`` with ``Retry-After``; a
    :class:`safeplot.RenderTimeout` (of a RenderPool job the view waited for)
    a text/plain ``503`` with ``Retry-After`` too, and a
    :class:`safeplot.WorkerCrashed` a text/plain ``500`` logged at ERROR on
    the ``safeplot`` logger; any other exception (including ValueError when
    the view drew nothing) propagates to Django, after the group released the
    lock and closed the figures. ValueError/TypeError at decoration time for
    an unknown format or a bad timeout; TypeError for an ``async def`` or
    generator view.
    """
    return _web.plot_view(view, _DJANGO, format=format, timeout=timeout, savefig_kwargs=savefig_kwargs)


class SafeplotMiddleware:
    """Django middleware that makes each request's pyplot use safe, with no change to the views.

    Add ``"safeplot.django.SafeplotMiddleware"`` to ``settings.MIDDLEWARE``,
    first, so that it covers every middleware after it.  A request's first
    touch of matplotlib's shared state (a pyplot call, ``plt.style``,
    ``rc_context``, reading or setting ``rcParams``, making an artist) takes
    :data:`safeplot.lock`, waiting up to ``settings.SAFEPLOT_TIMEOUT``
    seconds (default: that of :func:`safeplot.configure`).  From there the
    request runs as one ``safeplot.locked()`` group until the view's response
    has come back through the middleware; the request's figures are then
    closed, its changes to ``rcParams``, style and registries undone and the
    lock released, before Django sends a byte.  Requests that never touch
    matplotlib never take the lock.

    A ``StreamingHttpResponse``'s iterator runs after the group has ended: it
    streams until it first touches matplotlib, and from there its remaining
    chunks are produced in memory as a group of their own and sent after the
    lock is released.  A ``FileResponse`` of a file, and an async iterator,
    stream untouched.

    Sync and async capable.  The request's hold follows its context into
    every thread that runs its code: under ASGI, the threads Django runs sync
    middlewares and views in, and ``sync_to_async`` calls of async views (see
    "Who holds the lock under a middleware" in the documentation's "How it
    works").  An ``async def`` view must not call
    pyplot on the event loop: it gets an UnlockedPyplotError there; have it
    await ``sync_to_async(plot)()`` or ``safeplot.asgi.render_callback``.

    On the bad path: when the lock is not had in time the request answers a
    text/plain ``503 Service Unavailable`` with ``Retry-After``, also where
    Django would have made its own 500 page of the LockTimeout; a
    :class:`safeplot.RenderTimeout` (of a RenderPool job the view waited for)
    a text/plain ``503`` with ``Retry-After`` too, and a
    :class:`safeplot.WorkerCrashed` a text/plain ``500`` logged at ERROR on
    the ``safeplot`` logger; other exceptions are left to Django, after the
    cleanup.  ImproperlyConfigured for a ``SAFEPLOT_TIMEOUT`` setting that is
    not a non-negative number or None.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.timeout = _timeout_from_settings()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        pyplot_request = _web.Request(_label(request), self.timeout)
        pyplot_request.start()
        try:
            response = self.get_response(request)
        finally:
            pyplot_request.finish()
        return self._after_group(request, pyplot_request, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        # On the event loop, in the request's task: Django's sync middlewares and
        # views, and sync_to_async in async views, carry the request's context.
        pyplot_request = _web.Request(_label(request), self.timeout, on_event_loop=True)
        pyplot_request.start()
        try:
            response = await self.get_response(request)
        finally:
            pyplot_request.finish()  # never waits
        return self._after_group(request, pyplot_request, response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A LockTimeout (or a RenderPool job past its time limit) from the view becomes the 503, a
        RenderPool worker that died the logged 500 (neither is Django's own 500 page)."""
        if isinstance(exception, _web.ANSWERED_ERRORS):
            return _to_response(_web.error_answer(exception))
        return None

    def _after_group(
        self, request: HttpRequest, pyplot_request: _web.Request, response: HttpResponseBase
    ) -> HttpResponseBase:
        timed_out = pyplot_request.timed_out or request.__dict__.pop(_TIMED_OUT, None)
        if timed_out is not None:
            response.close()  # the page it replaces (a FileResponse's file, a generator)
            return _to_response(_web.lock_timeout_answer(timed_out))
        streams_file = getattr(response, "file_to_stream", None) is not None
        if response.streaming and not streams_file and not getattr(response, "is_async", False):
            content = response.streaming_content
            response.streaming_content = _stream_unlocked(content, _label(request), self.timeout)
        return response


def _label(request: HttpRequest) -> str:
    return f"{request.method} {request.path}"


def _stream_unlocked(content: Iterable[bytes], label: str, timeout: TimeoutOption) -> Iterator[bytes]:
    pyplot_request = _web.Request(label, timeout)
    pyplot_request.start()  # in the thread that iterates, at the first chunk asked for
    yield from _web.send_unlocked(content, pyplot_request, pyplot_request.finish)


def _note_lock_timeout(sender: object, request: HttpRequest | None = None, **kwargs: object) -> None:
    """Django is making a 500 page of an exception: remember it if it is a LockTimeout."""
    error = sys.exc_info()[1]
    if isinstance(error, LockTimeout) and request is not None:
        setattr(request, _TIMED_OUT, error)


got_request_exception.connect(_note_lock_timeout, dispatch_uid="safeplot.django")


def _timeout_from_settings() -> TimeoutOption:
    if not hasattr(settings, _TIMEOUT_SETTING):
        return DEFAULT
    try:
        return check_timeout(getattr(settings, _TIMEOUT_SETTING), name=f"settings.{_TIMEOUT_SETTING}")
    except (TypeError, ValueError) as error:
        raise ImproperlyConfigured(str(error)) from error
