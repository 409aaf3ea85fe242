"""Who holds the lock under a middleware: a request's threads take turns, and a request that
has ended takes no hold, whatever its threads are doing when it ends."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf
from werkzeug.test import Client
from werkzeug.wrappers import Response

import safeplot
from safeplot.asgi import SafeplotMiddleware as AsgiMiddleware
from safeplot.wsgi import SafeplotMiddleware as WsgiMiddleware
from tests.conftest import held_by_another_thread
from tests.gate import Gate
from tests.plots import draw, draw_and_save

WAIT = 30.0
left_running: list[asyncio.Future[Any]] = []  # tasks an endpoint does not await, as real ones leave


@pytest.fixture(autouse=True)
def forget_left_running() -> Iterator[None]:
    yield
    left_running.clear()  # their contexts carry the requests: the hooks stay on while they live


class WaitSignal(logging.Handler):
    """Set when a wait for the lock begins (safeplot logs that at DEBUG level)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.waiting = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waits for safeplot.lock" in record.getMessage():
            self.waiting.set()


@contextmanager
def signal_waits() -> Iterator[WaitSignal]:
    logger = logging.getLogger("safeplot")
    signal, level = WaitSignal(), logger.level
    logger.addHandler(signal)
    logger.setLevel(logging.DEBUG)
    try:
        yield signal
    finally:
        logger.removeHandler(signal)
        logger.setLevel(level)


class Server:
    """What an ASGI server gives the app: records the messages sent."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])


async def serve(app: Any, path: str = "/") -> Server:
    server = Server()
    scope = {"type": "http", "method": "GET", "path": path, "headers": [], "query_string": b""}
    await AsgiMiddleware(app)(scope, server.receive, server.send)
    return server


async def answer(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


def serial(kind: str, seed: int) -> bytes:
    with safeplot.locked():
        return draw_and_save(kind, seed, "png")


# --- a request that ends while its code still runs ------------------------------------


def test_a_thread_still_waiting_when_its_request_ends_never_takes_the_lock() -> None:
    outcome: list[BaseException | bytes] = []

    def legacy_plot() -> None:
        try:
            outcome.append(draw_and_save("line", 1, "png"))  # its first touch waits for the lock
        except BaseException as error:
            outcome.append(error)

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        # As asyncio.wait_for(asyncio.to_thread(legacy_plot), 0.5) does when it times out:
        # the request answers while its thread still waits.
        left_running.append(asyncio.ensure_future(asyncio.to_thread(legacy_plot)))
        await asyncio.to_thread(waits.waiting.wait, WAIT)
        await answer(send, 504, b"too slow")

    async def main() -> Server:
        with held_by_another_thread():
            server = await serve(endpoint)
        return server  # asyncio.run then waits for legacy_plot's thread

    with signal_waits() as waits:
        server = asyncio.run(main())
    assert server.status == 504
    assert len(outcome) == 1 and isinstance(outcome[0], safeplot.UnlockedPyplotError), outcome
    assert "after its response ended" in str(outcome[0])
    assert safeplot.stats()["holder"] is None and Gcf.figs == {}


def test_a_group_left_waiting_by_its_request_runs_as_the_threads_own_and_ends() -> None:
    outcome: list[bytes] = []

    def job() -> None:
        outcome.append(safeplot.render_callback(draw, "bar", 2))

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        left_running.append(asyncio.ensure_future(asyncio.to_thread(job)))  # a callback given up on
        await asyncio.to_thread(waits.waiting.wait, WAIT)
        await answer(send, 504, b"too slow")

    async def main() -> None:
        with held_by_another_thread():
            await serve(endpoint)

    with signal_waits() as waits:
        asyncio.run(main())
    assert outcome == [safeplot.render_callback(draw, "bar", 2)]
    assert safeplot.stats()["holder"] is None and Gcf.figs == {}


def test_a_request_that_ends_while_its_thread_draws_in_a_group_ends_when_the_thread_leaves_it() -> None:
    inside, go = threading.Event(), threading.Event()
    outcome: list[bytes] = []

    @safeplot.locked
    def slow_report() -> bytes:
        draw("bar", 4)
        inside.set()
        assert go.wait(WAIT)
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        left_running.append(asyncio.ensure_future(asyncio.to_thread(lambda: outcome.append(slow_report()))))
        await asyncio.to_thread(inside.wait, WAIT)
        await answer(send, 504, b"too slow")

    async def main() -> None:
        await serve(endpoint)
        assert safeplot.stats()["holder"] is not None  # the thread is still inside its group
        go.set()

    asyncio.run(main())
    assert outcome == [serial("bar", 4)]
    assert safeplot.stats()["holder"] is None and Gcf.figs == {}
    assert plt.rcParams["lines.linewidth"] == 1.5


# --- threads of one request take turns -----------------------------------------------


def test_two_threads_of_one_request_take_turns() -> None:
    a_drew, b_waits_or_drew = threading.Event(), threading.Event()

    def first() -> bytes:
        draw("line", 7)
        a_drew.set()
        # The other thread of this request starts to touch pyplot now: it must wait for this
        # one (and says so), or, unsafely, draws at once.
        assert b_waits_or_drew.wait(WAIT)
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()

    def second() -> bytes:
        assert a_drew.wait(WAIT)
        draw("bar", 8)
        b_waits_or_drew.set()
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        a, b = await asyncio.gather(asyncio.to_thread(first), asyncio.to_thread(second))
        await answer(send, 200, a + b)

    with signal_waits() as waits:
        waits.waiting = b_waits_or_drew  # either event lets the first thread go on
        server = asyncio.run(serve(endpoint))
    assert server.body == serial("line", 7) + serial("bar", 8)
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None


def test_gathered_legacy_helpers_and_callbacks_of_one_request_match_a_serial_run() -> None:
    def helper(seed: int) -> bytes:
        return draw_and_save("scatter", seed, "png")

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        seed = int(scope["path"].strip("/"))
        parts = await asyncio.gather(
            asyncio.to_thread(helper, seed),
            asyncio.to_thread(helper, seed + 1),
            safeplot.asgi.render_callback(draw, "hist", seed),
            safeplot.asgi.render_callback(draw, "heatmap", seed),
        )
        await answer(send, 200, b"|".join(parts))

    async def main() -> list[Server]:
        return list(await asyncio.gather(*(serve(endpoint, f"/{seed}") for seed in range(4))))

    servers = asyncio.run(main())
    for seed, server in enumerate(servers):
        expected = [
            serial("scatter", seed),
            serial("scatter", seed + 1),
            safeplot.render_callback(draw, "hist", seed),
            safeplot.render_callback(draw, "heatmap", seed),
        ]
        assert server.body == b"|".join(expected), seed
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None


def test_a_thread_waiting_for_another_of_its_request_hands_it_the_turn() -> None:
    # A sync view that touches, then waits for a thread that runs the request's code (its
    # context copied), which draws: the waiting thread gives that one the turn.
    def view(environ: dict[str, Any], start_response: Any) -> Any:
        assert plt.rcParams["lines.linewidth"]  # the request's first touch, in this thread
        import contextvars

        result: list[bytes] = []
        job = lambda: result.append(draw_and_save("bar", 3, "png"))  # noqa: E731
        helper = threading.Thread(target=contextvars.copy_context().run, args=(job,))
        helper.start()
        helper.join(WAIT)
        return Response(result[0], mimetype="image/png")(environ, start_response)

    safeplot.configure(timeout=WAIT)
    timeouts = safeplot.stats()["timeouts"]
    response = Client(WsgiMiddleware(view)).get("/")
    assert response.get_data() == serial("bar", 3)
    response.close()
    assert safeplot.stats()["timeouts"] == timeouts and Gcf.figs == {}


# --- code of no request under a middleware ---------------------------------------------


def test_pyplot_from_a_thread_of_no_request_is_reported_once_per_site_with_the_remedy() -> None:
    caught: list[warnings.WarningMessage] = []

    def helper() -> None:
        for _ in range(2):
            plt.figure()  # the site
            plt.close()

    def view(environ: dict[str, Any], start_response: Any) -> Any:
        thread = threading.Thread(target=helper)  # not handed the request's context
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            thread.start()
            thread.join(WAIT)
        caught.extend(seen)
        return Response(b"ok")(environ, start_response)

    Client(WsgiMiddleware(view)).get("/").close()
    reports = [w for w in caught if issubclass(w.category, safeplot.SafeplotWarning)]
    sites = [(w.filename, str(w.message).partition(" called")[0]) for w in reports]
    assert sites == [(__file__, "pyplot.figure()"), (__file__, "pyplot.close()")]  # each once, not twice
    message = str(reports[0].message)
    assert "pyplot.figure() called without safeplot.lock" in message
    assert "belongs to no request" in message and "safeplot.locked()" in message
    assert "contextvars.copy_context().run" in message


def test_the_request_is_named_as_the_holder() -> None:
    errors: list[BaseException] = []
    started = threading.Event()
    tried = Gate()  # waited for at work: the request's hold stays held

    def another() -> None:
        assert started.wait(WAIT)  # the view is past Thread.start (a wait for this thread: paused)
        try:
            with safeplot.locked(timeout=0.1):
                pass
        except safeplot.LockTimeout as error:
            errors.append(error)
        finally:
            tried.open()

    def view(environ: dict[str, Any], start_response: Any) -> Any:
        draw("line", 1)
        held = repr(safeplot.lock)
        threading.Thread(target=another).start()
        started.set()
        assert tried.wait(WAIT)  # the request's code is at work meanwhile: its hold stays
        return Response(held)(environ, start_response)

    response = Client(WsgiMiddleware(view)).get("/plot/1.png")
    assert b"held by request 'GET /plot/1.png' in thread 'MainThread'" in response.get_data()
    response.close()
    assert len(errors) == 1
    assert (errors[0].holder, errors[0].holder_kind) == ("GET /plot/1.png", "request")  # type: ignore[attr-defined]
    assert "held by request 'GET /plot/1.png'" in str(errors[0])


def test_pool_jobs_of_no_request_run_as_groups_of_their_own() -> None:
    # loop.run_in_executor(None, plot) does not hand the job the request's context.
    def legacy(kind: str, seed: int) -> bytes:
        return draw_and_save(kind, seed, "png")  # leaves its figure open, as legacy code does

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        kind, seed = scope["path"].strip("/").split("/")
        loop = asyncio.get_running_loop()
        await answer(send, 200, await loop.run_in_executor(None, legacy, kind, int(seed)))

    paths = [f"/{kind}/{seed}" for kind in ("line", "styled", "heatmap") for seed in range(4)]

    async def main() -> list[Server]:
        return list(await asyncio.gather(*(serve(endpoint, path) for path in paths)))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        servers = asyncio.run(main())
    for path, server in zip(paths, servers):
        kind, seed = path.strip("/").split("/")
        assert server.body == serial(kind, int(seed)), path
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None
    assert plt.rcParams["axes.facecolor"] == "white"  # the styled jobs' ggplot stayed in their groups
    reports = {str(w.message) for w in caught if issubclass(w.category, safeplot.SafeplotWarning)}
    assert reports and all("runs as a group of its own until its job returns" in r for r in reports)


def test_a_pool_job_of_no_request_nests_explicit_holds_in_its_own_group() -> None:
    # Old code's `with RendererAgg.lock:` (matplotlib < 3.8 takes it in every draw) or a locked()
    # block inside a job that its first pyplot call already made a group of its own.
    def legacy(seed: int) -> bytes:
        plt.figure()
        with safeplot.lock, safeplot.locked():
            return draw_and_save("line", seed, "png")

    async def endpoint(scope: Any, receive: Any, send: Any) -> None:
        loop = asyncio.get_running_loop()
        job = loop.run_in_executor(None, legacy, int(scope["path"].strip("/")))
        await answer(send, 200, await asyncio.wait_for(job, WAIT))

    async def main() -> list[Server]:
        return [
            await serve(endpoint, "/0"),
            *await asyncio.gather(serve(endpoint, "/1"), serve(endpoint, "/2")),
        ]

    safeplot.configure(timeout=WAIT)  # a job waiting for its own group's lock: a LockTimeout, not a hang
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", safeplot.SafeplotWarning)
        servers = asyncio.run(main())
    assert [server.body for server in servers] == [serial("line", seed) for seed in range(3)]
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None
