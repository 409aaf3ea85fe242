"""werkzeug helpers: figures as responses, pyplot views, and the middleware (extra ``safeplot[wsgi]``).

This is the only module of safeplot that imports werkzeug.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar, Union, overload

try:
    from werkzeug.datastructures import Headers
    from werkzeug.wrappers import Response
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "safeplot.wsgi needs werkzeug >= 2.2; install it with: pip install 'safeplot[wsgi]'"
    ) from exc
from matplotlib.figure import Figure

from . import _web
from ._errors import LockTimeout
from ._lock import DEFAULT, TimeoutOption, timeout_option

__all__ = ["SafeplotMiddleware", "image_response", "plot_view"]

HeadersLike = Union[Headers, Mapping[str, str], Iterable[tuple[str, str]]]
V = TypeVar("V", bound=Callable[..., Any])


def image_response(
    fig: Figure | None = None,
    format: str = "png",
    *,
    headers: HeadersLike | None = None,
    **savefig_kwargs: Any,
) -> Response:
    """A werkzeug ``Response`` holding a figure (default: pyplot's current one) as an image.

    The mimetype matches the format, ``Content-Length`` is set, and
    ``Cache-Control: no-store`` is added unless ``headers`` carries its own
    ``Cache-Control``.  ``savefig_kwargs`` go to ``Figure.savefig``.  Being a
    werkzeug Response, it is also a valid Flask return value.  Raises what
    :func:`safeplot.render` raises: ValueError for an unknown format or no
    current figure, TypeError when ``fig`` is not a figure,
    :class:`safeplot.LockTimeout` if the lock is not had.
    """
    return _to_response(_web.image_answer(fig, format, headers, savefig_kwargs))


def _lock_timeout_response(error: LockTimeout) -> Response:
    """``503 Service Unavailable`` with ``Retry-After``, for a request that did not get the lock."""
    return _to_response(_web.lock_timeout_answer(error))


def _to_response(answer: _web.Answer) -> Response:
    status, content_type, headers, body = answer
    return Response(body, status=status, content_type=content_type, headers=headers)


_WERKZEUG = _web.ResponseKind(Response, _to_response)


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
    """Decorate a view that draws with pyplot so that it answers with the image.

    Use bare (``@plot_view``) or with options (``@plot_view(format="svg",
    timeout=5, dpi=100)``).  The view runs in a :func:`safeplot.locked` group;
    if it returns a figure, that is rendered, if it returns a werkzeug Response
    (an error page, a redirect) that is passed through, else the current figure
    it opened is rendered.  Its figures are closed afterwards either way.

    On the bad path: a :class:`safeplot.LockTimeout` becomes ``503 Service
    Unavailable`` with ``Retry-After``; a :class:`safeplot.RenderTimeout` (of
    a RenderPool job the view waited for) a text/plain ``503`` with
    ``Retry-After`` too, and a :class:`safeplot.WorkerCrashed` a text/plain
    ``500`` logged at ERROR on the ``safeplot`` logger; any other exception
    (including ValueError when the view drew nothing) propagates to the
    framework, which answers 500, after the group released the lock and closed
    the figures. ValueError/TypeError at decoration time for an unknown format
    or a bad timeout; TypeError for an ``async def`` or generator view.
    """
    return _web.plot_view(view, _WERKZEUG, format=format, timeout=timeout, savefig_kwargs=savefig_kwargs)


WSGIEnviron = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[WSGIEnviron, StartResponse], Iterable[bytes]]


class _Body:
    """The app's response body, produced so that no byte goes out while the lock is held.

    Until the request first touches matplotlib's shared state, chunks pass
    through as the app yields them.  From then on the rest of the body is
    produced in memory under the lock, the group ends (figures closed, lock
    released), and only then do those bytes go to the server.
    """

    def __init__(
        self,
        iterable: Iterable[bytes],
        request: _web.Request,
        written: list[bytes],
        start_response: StartResponse,
    ) -> None:
        self._iterable = iterable
        self._request = request
        self._written = written  # what the app gave write() while the lock was held
        self._start_response = start_response
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        sent_any = False
        try:
            for chunk in _web.send_unlocked(self._iterable, self._request, self.close, self._written):
                sent_any = True
                yield chunk
        except LockTimeout as error:
            if sent_any:
                raise
            # No byte has gone out: replace the app's status and headers (PEP 3333, exc_info).
            timeout_response = _lock_timeout_response(error)
            self._start_response(
                timeout_response.status, timeout_response.headers.to_wsgi_list(), sys.exc_info()
            )
            yield timeout_response.get_data()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            self._request.finish()


class SafeplotMiddleware:
    """WSGI middleware that makes each request's pyplot use safe, with no change to the views.

    A request's first touch of matplotlib's shared state (a pyplot call,
    ``plt.style``, ``rc_context``, reading or setting ``rcParams``, making an
    artist) takes :data:`safeplot.lock`, waiting up to ``timeout`` seconds
    (default: that of :func:`safeplot.configure`).  From there the request
    runs as one ``safeplot.locked()`` group until the app has produced its
    response: the body is then collected in memory, the request's figures
    closed, its changes to ``rcParams``, style and registries undone and the
    lock released, all before the first byte of the body goes to the client.
    This holds also when the view raises or the client disconnects.  Requests
    that never touch matplotlib never take the lock, and their bodies stream.

    A streaming body (a generator) passes through untouched until it first
    touches matplotlib; from that point its remaining chunks are produced
    whole, in memory, and sent after the lock is released.  It never pins
    the lock while a client reads, but such a response is no longer streamed.

    On the bad path: when the lock is not had in time the request answers
    ``503 Service Unavailable`` with ``Retry-After`` (also when a framework
    turned the LockTimeout into its own 500 page, and when a body generator
    timed out before sending anything); a :class:`safeplot.RenderTimeout` (of a RenderPool job
    the view waited for) a text/plain ``503`` with ``Retry-After`` too, and a
    :class:`safeplot.WorkerCrashed` a text/plain ``500`` logged at ERROR on the
    ``safeplot`` logger; other exceptions
    propagate to the server after the cleanup.  TypeError or ValueError when
    the middleware is made with a ``timeout`` that is not None, DEFAULT or a
    number of seconds >= 0.  The server must iterate and close the response
    in the thread that called the app, as WSGI servers do.
    """

    def __init__(self, app: WSGIApp, timeout: TimeoutOption = DEFAULT) -> None:
        self.app = app
        self.timeout = timeout_option(timeout)

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        if _web.in_a_request():  # inside another of these (safeplot-run's and the app's own)
            return self.app(environ, start_response)  # the outer one's request, and its timeout
        label = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '/')}"
        request = _web.Request(label, self.timeout)
        written: list[bytes] = []

        replaced: list[_web.AnsweredError] = []
        returned = False

        def start_app_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            failure: _web.AnsweredError | None = request.timed_out
            # A framework's 500 page for a RenderPool failure is replaced while the app call runs
            # (a generator app starting its response later keeps it: its body is on its way).
            if failure is None and status.startswith("500") and not returned:
                failure = request.pool_failure
            if failure is not None:
                replaced[:] = [failure]
                return lambda data: None  # the app's own error page is replaced below
            write = start_response(status, headers, exc_info)

            def write_unless_locked(data: bytes) -> None:
                if request.holds_lock:
                    written.append(bytes(data))  # sent after the lock is released
                else:
                    write(data)

            return write_unless_locked

        request.start()
        try:
            iterable = self.app(environ, start_app_response)
            returned = True
        except _web.ANSWERED_ERRORS as error:
            request.finish()
            return _to_response(_web.error_answer(error))(environ, start_response)
        except BaseException:
            request.finish()
            raise
        body = _Body(iterable, request, written, start_response)
        failure = replaced[0] if replaced else request.timed_out
        if failure is not None:
            body.close()
            return _to_response(_web.error_answer(failure))(environ, start_response)
        return body
