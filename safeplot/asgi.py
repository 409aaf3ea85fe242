"""ASGI: awaiting a legacy pyplot callback off the event loop, and the middleware for async apps.

FastAPI and Starlette (and Django under ASGI) run ``def`` endpoints in a
thread pool, where pyplot races as under a threaded WSGI server, and
``async def`` endpoints on the event loop, where waiting for a lock would
stall every request.  This module needs nothing beyond the standard library;
under an event loop other than asyncio's (trio), :func:`render_callback` uses
anyio if it is installed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import _web
from ._lock import DEFAULT, TimeoutOption, timeout_option
from ._pool import RenderPool
from ._render import check_format
from ._render import render_callback as _render_callback

__all__ = ["SafeplotMiddleware", "render_callback"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def render_callback(
    func: Callable[..., Any],
    *args: Any,
    format: str = "png",
    savefig_kwargs: dict[str, Any] | None = None,
    pool: RenderPool | None = None,
    **kwargs: Any,
) -> bytes:
    """Await :func:`safeplot.render_callback` run in a worker thread: the event loop never waits for the lock.

    ``func(*args, **kwargs)`` runs in a ``locked()`` group in the loop's
    default thread pool (asyncio), or in anyio's worker threads under another
    loop (trio, with anyio installed); the bytes of the figure it returns,
    else of the current figure it opened, come back.  With ``pool`` (a
    :class:`safeplot.RenderPool`), it runs in one of the pool's worker
    processes instead, and the loop awaits the pool's future.

    On the bad path: if the awaiting task is cancelled, the thread still
    finishes its group (the lock is released and its figures closed) and its
    result is dropped; a pool's job still queued is dropped, one running
    finishes (within the pool's ``time_limit``) and its result is dropped.
    :class:`safeplot.LockTimeout` propagates (with a pool,
    :class:`safeplot.RenderTimeout`, :class:`safeplot.WorkerCrashed` and the
    TypeError of a callback that cannot be pickled), as do ValueError for an
    unknown format or a callback that drew nothing, and the callback's own
    exceptions.  RuntimeError outside a running event loop, or under a loop
    other than asyncio's without anyio.
    """
    check_format(format)
    if pool is not None:
        future = pool.submit(func, *args, format=format, savefig_kwargs=savefig_kwargs, **kwargs)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return await _await_under_anyio(future)
        return await asyncio.wrap_future(future)
    call = functools.partial(
        _render_callback, func, *args, format=format, savefig_kwargs=savefig_kwargs, **kwargs
    )
    # In the caller's context: if its request already holds the lock (a dependency drew), the
    # callback's group nests in that hold instead of waiting for it.
    in_context = functools.partial(contextvars.copy_context().run, call)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        return await loop.run_in_executor(None, in_context)
    try:
        import anyio.to_thread
    except ImportError:
        raise RuntimeError(
            "safeplot.asgi.render_callback needs a running asyncio loop, or anyio for another one"
        ) from None
    if "abandon_on_cancel" in inspect.signature(anyio.to_thread.run_sync).parameters:
        return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    return await anyio.to_thread.run_sync(call, cancellable=True)  # anyio < 4.1


async def _await_under_anyio(future: concurrent.futures.Future[bytes]) -> bytes:
    """Await a pool's future under a loop other than asyncio's (trio): a worker thread waits for it."""
    import anyio
    import anyio.to_thread

    try:
        if "abandon_on_cancel" in inspect.signature(anyio.to_thread.run_sync).parameters:
            return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        return await anyio.to_thread.run_sync(future.result, cancellable=True)  # anyio < 4.1
    except anyio.get_cancelled_exc_class():
        future.cancel()  # a queued job is dropped
        raise


class SafeplotMiddleware:
    """Pure ASGI middleware that makes each HTTP request's pyplot use safe, with no change to the endpoints.

    FastAPI and Starlette: ``app.add_middleware(SafeplotMiddleware, timeout=10)``;
    any ASGI app, Django's included: ``app = SafeplotMiddleware(app, timeout=10)``.

    A request's first touch of matplotlib's shared state (a pyplot call,
    ``plt.style``, ``rcParams``, making an artist) in a thread that runs its
    code, as the thread pool does for ``def`` endpoints, takes
    :data:`safeplot.lock` for the request, waiting there up to ``timeout``
    seconds (default: that of :func:`safeplot.configure`).  The group ends as
    the response's first message goes out (for a ``def`` endpoint: right
    after it returned): its figures are closed, its changes to ``rcParams``,
    style and registries undone and the lock released, on the event loop,
    without waiting.  Each later message ends the group a body iterator began
    in the thread pool meanwhile, before that chunk is sent.  Requests that
    never touch matplotlib never take the lock; the event loop never waits
    for it.  Lifespan and websocket scopes pass through untouched: pyplot in a
    websocket handler is code of no request (a :class:`safeplot.SafeplotWarning`
    once per call site, and no lock); have it await :func:`render_callback`.

    On the bad path: a :class:`safeplot.LockTimeout` becomes a text/plain
    ``503 Service Unavailable`` with ``Retry-After`` if nothing was sent yet
    (also replacing the 500 page a framework made of it); a
    :class:`safeplot.RenderTimeout` (of a RenderPool job the view waited for)
    a text/plain ``503`` with ``Retry-After`` too, and a
    :class:`safeplot.WorkerCrashed` a text/plain ``500`` logged at ERROR on
    the ``safeplot`` logger; an ``async def`` endpoint that calls pyplot
    itself, on the event loop, gets a :class:`safeplot.UnlockedPyplotError`
    saying to make it a ``def`` endpoint or to await :func:`render_callback`;
    it never waits for the lock there.  Other exceptions propagate after the
    cleanup.  TypeError or ValueError when the middleware is made with a
    ``timeout`` that is not None, DEFAULT or a number of seconds >= 0.
    """

    def __init__(self, app: ASGIApp, timeout: TimeoutOption = DEFAULT) -> None:
        self.app = app
        self.timeout = timeout_option(timeout)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # its handlers' pyplot is code of no request: seen, reported
            stop_watching = _web.watch_unowned_code()
            try:
                await self.app(scope, receive, send)
            finally:
                stop_watching()
            return
        if scope["type"] != "http" or _web.in_a_request():  # (inside another of these: the outer one's)
            await self.app(scope, receive, send)
            return
        label = f"{scope.get('method', 'GET')} {scope.get('path', '/')}"
        request = _web.Request(label, self.timeout, on_event_loop=True)
        started = replaced = False

        async def send_unless_replaced(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # the app's own page for the LockTimeout, after the 503 went out
            if message["type"] == "http.response.start":
                # Over the app's own page: for a LockTimeout of the request's group, or for a
                # RenderPool failure the framework made its 500 page of.
                failure: _web.AnsweredError | None = request.timed_out
                if failure is None and message.get("status") == 500:
                    failure = request.pool_failure
                if failure is not None:
                    replaced = True
                    await _send_answer(send, _web.error_answer(failure))
                    started = True
                    return
                started = True
            await send(message)

        request.start()
        try:
            await self.app(scope, receive, send_unless_replaced)
        except _web.ANSWERED_ERRORS as error:
            if started and not replaced:
                raise
            if not started:
                await _send_answer(send, _web.error_answer(error))
        finally:
            request.finish()


async def _send_answer(send: Send, answer: _web.Answer) -> None:
    headers = [(b"content-type", answer.content_type.encode("latin-1"))]
    headers += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in answer.headers]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})
