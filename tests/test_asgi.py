"""safeplot.asgi in-process: the awaitable callback (asyncio and trio) and the middleware's protocol."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot
from safeplot.asgi import SafeplotMiddleware, render_callback
from tests.conftest import held_by_another_thread
from tests.plots import draw, draw_and_save

WAIT = 30.0


def test_render_callback_gives_the_bytes_of_the_sync_one_off_the_event_loop() -> None:
    async def main() -> tuple[bytes, bytes, list[str]]:
        loop_thread = threading.current_thread().name
        threads: list[str] = []

        def legacy(seed: int) -> None:
            threads.append(threading.current_thread().name)
            draw("heatmap", seed)

        svg = await render_callback(legacy, 3, format="svg", savefig_kwargs={"metadata": {"Date": None}})
        png = await render_callback(legacy, 3)
        return png, svg, [loop_thread, *threads]

    png, svg, (loop_thread, *threads) = asyncio.run(main())
    assert png == safeplot.render_callback(draw, "heatmap", 3)
    assert svg.startswith(b"<?xml")
    assert loop_thread not in threads
    assert Gcf.figs == {}


def test_render_callback_under_trio_through_anyio() -> None:
    trio = pytest.importorskip("trio")

    async def main() -> bytes:
        return await render_callback(draw, "bar", 2)

    assert trio.run(main) == safeplot.render_callback(draw, "bar", 2)


def test_a_cancelled_await_leaves_no_lock_held_and_no_figure_open() -> None:
    drawing, go = threading.Event(), threading.Event()
    loop_ran_meanwhile: list[bool] = []

    def slow(seed: int) -> None:
        draw("line", seed)
        drawing.set()
        assert go.wait(WAIT)

    async def main() -> None:
        task = asyncio.ensure_future(render_callback(slow, 1))
        while not drawing.is_set():
            await asyncio.sleep(0.01)  # the loop runs while the thread holds the lock
        loop_ran_meanwhile.append(True)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()  # the thread goes on; asyncio.run waits for its executor's threads at the end

    asyncio.run(main())
    assert safeplot.lock.acquire(timeout=WAIT)  # the thread finished its group
    try:
        assert Gcf.figs == {}
    finally:
        safeplot.lock.release()
    assert loop_ran_meanwhile == [True]
    assert safeplot.stats()["holder"] is None


def test_render_callback_lets_lock_timeout_propagate() -> None:
    safeplot.configure(timeout=0.1)

    async def main() -> bytes:
        return await render_callback(draw, "bar", 1)

    with held_by_another_thread(), pytest.raises(safeplot.LockTimeout, match="held by thread 'holder'"):
        asyncio.run(main())


class Server:
    """What an ASGI server gives the app: records every message and whether the lock was free then."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.others_draw_at_send: list[bool] = []
        self.check_others = False

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        if self.check_others:
            # While bytes go out, no request may keep another from the lock: a thread of no
            # request draws a plot meanwhile, in a group of its own (the loop waits for it here).
            outcome: list[bytes] = []
            other = threading.Thread(target=lambda: outcome.append(safeplot.render_callback(draw, "bar", 9)))
            other.start()
            other.join(WAIT)
            self.others_draw_at_send.append(outcome == [other_plot()])
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


@functools.cache
def other_plot() -> bytes:
    return safeplot.render_callback(draw, "bar", 9)


def run_http(app: Any, *, check_others: bool = False) -> Server:
    if check_others:
        other_plot()  # drawn once, outside any request
    server = Server()
    server.check_others = check_others
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(SafeplotMiddleware(app)(scope, server.receive, server.send))
    return server


def growing_chart() -> Iterator[bytes]:
    """A legacy streaming body: one figure, a PNG of it each time a line is added."""
    plt.figure(figsize=(3, 2), dpi=50)
    plt.rcParams["lines.linewidth"] = 4
    for n in range(3):
        plt.plot([n, n + 2, n + 1])
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        yield buffer.getvalue()


def test_a_requests_group_spans_its_messages_and_keeps_no_one_from_the_lock_meanwhile() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        # A body iterator whose chunks are drawn in the thread pool, one chunk a job, as
        # Starlette's StreamingResponse draws a sync iterator.
        chunks = growing_chart()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(3):
            chunk = await asyncio.to_thread(next, chunks)
            await send({"type": "http.response.body", "body": chunk, "more_body": n < 2})

    server = run_http(app, check_others=True)
    assert server.status == 200 and server.others_draw_at_send == [True] * 4
    with safeplot.locked():
        expected = list(growing_chart())
    assert [message["body"] for message in server.messages[1:]] == expected
    assert plt.rcParams["lines.linewidth"] == 1.5 and Gcf.figs == {}


def test_middleware_answers_503_for_a_timeout_also_over_a_frameworks_500() -> None:
    async def framework(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.to_thread(draw, "line", 1)
        except Exception:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"Internal Server Error"})
            raise

    safeplot.configure(timeout=0.1)
    with held_by_another_thread():
        server = run_http(framework)
    assert server.status == 503 and server.body.startswith(b"503 Service Unavailable")
    assert (b"retry-after", b"1") in server.messages[0]["headers"]
    assert len(server.messages) == 2  # the framework's own page was dropped


def test_requests_that_do_not_plot_never_wait_for_the_lock() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.to_thread(lambda: sum(range(100)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    with held_by_another_thread():  # with no timeout set, a wait would never end
        server = run_http(app)
    assert server.status == 200


def test_pyplot_on_the_event_loop_raises_a_clear_error_instead_of_waiting() -> None:
    async def async_endpoint(scope: Any, receive: Any, send: Any) -> None:
        plt.figure()

    refused = pytest.raises(safeplot.UnlockedPyplotError, match="Make the endpoint a plain def")
    with held_by_another_thread(), refused:  # with no timeout set, a wait would never end
        run_http(async_endpoint)
    assert Gcf.figs == {}


@pytest.mark.parametrize("kind", ["lifespan", "websocket"])
def test_other_scopes_pass_through_untouched(kind: str) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.extend([scope, receive, send])

    async def receive() -> dict[str, Any]:
        return {"type": f"{kind}.startup"}

    async def send(message: dict[str, Any]) -> None:
        pass

    scope = {"type": kind}
    asyncio.run(SafeplotMiddleware(app, timeout=1)(scope, receive, send))
    assert seen[0] is scope and seen[1] is receive and seen[2] is send


def test_middleware_refuses_a_bad_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        SafeplotMiddleware(lambda *a: None, timeout=-1)  # type: ignore[arg-type]


def test_fastapi_example_in_process_through_httpx() -> None:
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("fastapi")
    from examples.asgi_app import app

    paths = [f"/legacy/{kind}.png" for kind in ("dark", "line")] + ["/report/5.png"]

    async def main() -> tuple[list[bytes], list[bytes]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            serial = [(await client.get(path)).content for path in paths]
            replies = await asyncio.gather(*(client.get(path) for path in paths * 4))
            assert {reply.status_code for reply in replies} == {200}
            return serial, [reply.content for reply in replies]

    serial, concurrent = asyncio.run(main())
    assert concurrent == serial * 4
    assert Gcf.figs == {} and plt.rcParams["axes.facecolor"] == "white"


def test_a_requests_hold_is_held_in_every_thread_that_runs_its_code() -> None:
    threads: list[str] = []

    def dependency() -> None:
        threads.append(threading.current_thread().name)
        assert plt.rcParams["lines.linewidth"]  # a touch: takes the lock for the request

    def endpoint() -> bytes:
        threads.append(threading.current_thread().name)
        return draw_and_save("bar", 3, "png")  # another thread, the same request: no wait

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.to_thread(dependency)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="other") as pool:
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(pool, contextvars.copy_context().run, endpoint)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    safeplot.configure(timeout=5)
    timeouts = safeplot.stats()["timeouts"]
    server = run_http(app, check_others=True)
    assert server.status == 200 and server.others_draw_at_send == [True, True]
    assert len(set(threads)) == 2 and safeplot.stats()["timeouts"] == timeouts


def test_code_a_request_left_running_cannot_take_the_lock_for_it() -> None:
    answered = threading.Event()
    left_running: list[asyncio.Future[Any]] = []

    def late_job() -> None:
        assert answered.wait(WAIT)
        draw("line", 1)  # after the response: must not take the lock for the finished request

    async def app(scope: Any, receive: Any, send: Any) -> None:
        left_running.append(asyncio.ensure_future(asyncio.to_thread(late_job)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def main() -> BaseException | None:
        server = Server()
        scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""}
        await SafeplotMiddleware(app)(scope, server.receive, server.send)
        answered.set()
        outcome = await asyncio.gather(left_running[0], return_exceptions=True)
        return outcome[0]  # type: ignore[no-any-return]

    safeplot.guard("warn")  # keeps the hooks on after the request, as other requests in flight would
    error = asyncio.run(main())
    assert isinstance(error, safeplot.UnlockedPyplotError) and "after its response ended" in str(error)
    assert safeplot.stats()["holder"] is None and Gcf.figs == {}


def test_a_nested_group_inside_a_request_sees_the_requests_figures() -> None:
    seen: list[str] = []

    @safeplot.locked
    def helper() -> None:
        seen.append(plt.gca().get_title())

    def endpoint() -> None:
        plt.figure()
        plt.title("the request's figure")
        helper()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.to_thread(endpoint)
        await send({"type": "http.response.start", "status": 204, "headers": []})

    assert run_http(app).status == 204
    assert seen == ["the request's figure"] and Gcf.figs == {}


def test_pyplot_on_a_trio_loop_raises_too() -> None:
    trio = pytest.importorskip("trio")

    async def async_endpoint(scope: Any, receive: Any, send: Any) -> None:
        plt.figure()

    async def main() -> None:
        server = Server()
        await SafeplotMiddleware(async_endpoint)({"type": "http"}, server.receive, server.send)

    with held_by_another_thread(), pytest.raises(safeplot.UnlockedPyplotError, match="on the event loop"):
        trio.run(main)


def test_render_callback_under_trio_runs_a_failing_callback_once() -> None:
    trio = pytest.importorskip("trio")
    calls: list[int] = []

    def failing() -> None:
        calls.append(1)
        raise TypeError("the callback's own")

    async def main() -> bytes:
        return await render_callback(failing)

    with pytest.raises(TypeError, match="the callback's own"):
        trio.run(main)
    assert calls == [1]
