"""safeplot.RenderPool: legacy callbacks in worker processes, bytes equal to render_callback's, hard time
limits and crash isolation."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot
from safeplot.asgi import SafeplotMiddleware
from safeplot.asgi import render_callback as async_render_callback
from tests import pool_callbacks as callbacks

WAIT = 120  # a cold worker imports matplotlib first: generous on a loaded machine


@pytest.fixture(scope="module")
def pool() -> Iterator[safeplot.RenderPool]:
    with safeplot.RenderPool(2) as pool:
        yield pool


def in_process(*args: Any, **kwargs: Any) -> bytes:
    return safeplot.render_callback(callbacks.legacy, *args, **kwargs)


@pytest.mark.slow(seconds=4)
def test_jobs_give_the_bytes_render_callback_gives_in_this_process(pool: safeplot.RenderPool) -> None:
    jobs = [(kind, seed) for kind in ("line", "styled", "heatmap", "mathtext") for seed in range(2)]
    futures = [pool.submit(callbacks.legacy, kind, seed) for kind, seed in jobs]
    assert [future.result(WAIT) for future in futures] == [in_process(kind, seed) for kind, seed in jobs]
    svg = {"metadata": {"Date": None}}
    assert pool.submit(callbacks.legacy, "bar", 3, format="svg", savefig_kwargs=svg).result(
        WAIT
    ) == in_process("bar", 3, format="svg", savefig_kwargs=svg)
    assert list(pool.map(callbacks.legacy, ["hist", "bar"], [1, 2], timeout=WAIT)) == [
        in_process("hist", 1),
        in_process("bar", 2),
    ]
    assert Gcf.figs == {}


def test_a_callbacks_own_exception_comes_back_with_its_type(pool: safeplot.RenderPool) -> None:
    with pytest.raises(callbacks.ChartError, match="no data for March"):
        pool.submit(callbacks.fails, "no data for March").result(WAIT)
    assert pool.submit(callbacks.legacy, "line", 1).result(WAIT) == in_process("line", 1)  # the worker lives


def test_callbacks_that_cannot_be_pickled_fail_at_submit(pool: safeplot.RenderPool) -> None:
    def nested() -> None:
        pass

    for callback in (lambda: None, nested):
        with pytest.raises(
            TypeError, match=r"RenderPool cannot send .* a callback and its arguments must be picklable"
        ):
            pool.submit(callback)
    with pytest.raises(ValueError, match="format"):
        pool.submit(callbacks.legacy, "line", 1, format="bmpx")


@pytest.mark.soak  # a pool of its own: in nox -s soak, to keep the default run short
@pytest.mark.slow(seconds=6)
def test_a_job_past_the_time_limit_fails_and_its_worker_is_replaced() -> None:
    with safeplot.RenderPool(1, time_limit=1.0) as pool:
        pool.submit(callbacks.legacy, "line", 0).result(WAIT)  # the worker is warm
        started = time.monotonic()
        with pytest.raises(safeplot.RenderTimeout) as raised:
            pool.submit(callbacks.endless, 1).result(WAIT)
        waited = time.monotonic() - started
        assert pool.submit(callbacks.legacy, "line", 2).result(WAIT) == in_process("line", 2)
    assert 1.0 <= waited < 30
    assert raised.value.callback == "tests.pool_callbacks.endless" and raised.value.time_limit == 1.0
    assert "tests.pool_callbacks.endless ran past the RenderPool's time limit of 1 s" in str(raised.value)


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
@pytest.mark.slow(seconds=8)
def test_a_worker_that_dies_fails_only_its_job() -> None:
    with safeplot.RenderPool(2) as pool:
        before = [pool.submit(callbacks.legacy, "line", seed) for seed in range(2)]
        crashes = [pool.submit(callbacks.exits, 3), pool.submit(callbacks.segfaults)]
        after = [pool.submit(callbacks.legacy, "bar", seed) for seed in range(4)]  # queued behind them
        outcomes = [future.exception(WAIT) for future in crashes]
        results = [future.result(WAIT) for future in before + after]
    assert results == [in_process("line", s) for s in range(2)] + [in_process("bar", s) for s in range(4)]
    exited, segfaulted = outcomes
    assert isinstance(exited, safeplot.WorkerCrashed) and exited.exitcode == 3
    assert str(exited) == "the RenderPool worker running tests.pool_callbacks.exits died with exit code 3"
    assert isinstance(segfaulted, safeplot.WorkerCrashed) and segfaulted.exitcode == -11
    assert str(segfaulted).endswith("segfaults died killed by signal SIGSEGV")


@pytest.mark.soak  # a pool of its own: in nox -s soak, to keep the default run short
@pytest.mark.slow(seconds=5)
def test_max_tasks_per_child_recycles_workers(tmp_path: Path) -> None:
    with safeplot.RenderPool(1, max_tasks_per_child=2) as pool:
        for seed in range(4):
            pool.submit(callbacks.legacy_noting_pid, seed, str(tmp_path)).result(WAIT)
    pids = [(tmp_path / f"{seed}.pid").read_text() for seed in range(4)]
    assert pids[0] == pids[1] != pids[2] == pids[3]


def test_submit_after_shutdown_is_refused() -> None:
    pool = safeplot.RenderPool(1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(callbacks.legacy, "line", 1)


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"processes": 0}, ValueError, "processes"),
        ({"processes": 1.5}, TypeError, "processes"),
        ({"time_limit": -1}, ValueError, "time_limit"),
        ({"time_limit": "1"}, TypeError, "time_limit"),
        ({"max_tasks_per_child": 0}, ValueError, "max_tasks_per_child"),
    ],
)
def test_bad_options_are_refused_naming_them(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    with pytest.raises(error, match=named):
        safeplot.RenderPool(**options)


def test_the_errors_pickle_with_their_facts() -> None:
    timeout = pickle.loads(pickle.dumps(safeplot.RenderTimeout("app.chart", 2.5)))
    crashed = pickle.loads(pickle.dumps(safeplot.WorkerCrashed("app.chart", -9)))
    assert (timeout.callback, timeout.time_limit) == ("app.chart", 2.5) and isinstance(timeout, TimeoutError)
    assert (crashed.callback, crashed.exitcode) == ("app.chart", -9) and isinstance(crashed, RuntimeError)
    assert str(crashed) == "the RenderPool worker running app.chart died killed by signal SIGKILL"


def test_asgi_render_callback_awaits_the_pool_without_blocking_the_loop(pool: safeplot.RenderPool) -> None:
    async def main() -> tuple[list[bytes], int]:
        ticks = 0
        stop = asyncio.Event()

        async def tick() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.ensure_future(tick())
        try:
            parts = await asyncio.gather(
                *(async_render_callback(callbacks.legacy, "scatter", seed, pool=pool) for seed in range(3))
            )
        finally:
            stop.set()
            await ticker
        return list(parts), ticks

    parts, ticks = asyncio.run(main())
    assert parts == [in_process("scatter", seed) for seed in range(3)]
    assert ticks > 3  # the loop ran on while the workers drew


async def _call(app: Any) -> tuple[int, bytes, dict[bytes, bytes]]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {"type": "http", "method": "GET", "path": "/chart", "headers": [], "query_string": b""}
    await SafeplotMiddleware(app)(scope, receive, send)
    headers = dict(messages[0]["headers"])
    return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:]), headers


@pytest.mark.soak  # a pool of its own: in nox -s soak, to keep the default run short
@pytest.mark.slow(seconds=6)
def test_the_asgi_middleware_answers_503_for_a_render_timeout_and_a_logged_500_for_a_crash(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with safeplot.RenderPool(1, time_limit=1.0) as pool:

        def endpoint(callback: Any, *args: Any) -> Any:
            async def app(scope: Any, receive: Any, send: Any) -> None:
                try:
                    body = await async_render_callback(callback, *args, pool=pool)
                except Exception:  # as a framework does: its own 500 page, then the error goes on
                    await send({"type": "http.response.start", "status": 500, "headers": []})
                    await send({"type": "http.response.body", "body": b"Internal Server Error"})
                    raise
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})

            return app

        with caplog.at_level(logging.ERROR, logger="safeplot"):
            timed_out = asyncio.run(_call(endpoint(callbacks.endless, 1)))
            crashed = asyncio.run(_call(endpoint(callbacks.exits, 4)))
            fine = asyncio.run(_call(endpoint(callbacks.legacy, "line", 1)))
    assert timed_out[0] == 503 and timed_out[2][b"retry-after"] == b"1"
    assert timed_out[1].startswith(b"503 Service Unavailable: tests.pool_callbacks.endless ran past")
    assert (
        crashed[0] == 500 and crashed[1] == b"500 Internal Server Error: the process drawing the plot died\n"
    )
    assert crashed[2][b"content-type"].startswith(b"text/plain")
    logged = [r.getMessage() for r in caplog.records if r.name == "safeplot"]
    assert logged == [
        "a plot's RenderPool worker died: "
        "the RenderPool worker running tests.pool_callbacks.exits died with exit code 4"
    ]
    assert fine[0] == 200 and fine[1] == in_process("line", 1)


def test_a_cancelled_future_of_a_queued_job_never_runs(pool: safeplot.RenderPool) -> None:
    blockers = [pool.submit(callbacks.legacy, "heatmap", seed) for seed in range(2)]
    queued = pool.submit(callbacks.legacy, "line", 9)
    queued.cancel()
    concurrent.futures.wait(blockers, WAIT)
    assert queued.cancelled()


def test_workers_are_not_forked_from_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = safeplot.render_callback(callbacks.marked)  # drawn with the module's own MARK
    monkeypatch.setattr(callbacks, "MARK", "inherited from a forked server")
    with safeplot.RenderPool(1) as pool:
        assert pool.submit(callbacks.marked).result(WAIT) == expected


def test_an_exception_that_cannot_be_pickled_comes_back_named_and_the_pool_lives_on(
    pool: safeplot.RenderPool,
) -> None:
    with pytest.raises(
        RuntimeError, match=r"tests\.pool_callbacks\.StubbornError \(which cannot be pickled\)"
    ):
        pool.submit(callbacks.fails_stubbornly).result(WAIT)
    with pytest.raises(
        TimeoutError, match="Task timeout"
    ) as raised:  # the callback's own: not a RenderTimeout
        pool.submit(callbacks.times_out_by_itself).result(WAIT)
    assert not isinstance(raised.value, safeplot.RenderTimeout)
    assert pool.submit(callbacks.legacy, "line", 1).result(WAIT) == in_process("line", 1)


@pytest.mark.slow(seconds=4)
def test_a_queued_job_whose_future_is_cancelled_never_runs(tmp_path: Path) -> None:
    gate = tmp_path / "go"
    with safeplot.RenderPool(1) as pool:
        running = pool.submit(callbacks.waits_for, str(gate), 1, str(tmp_path))
        queued = pool.submit(callbacks.waits_for, str(gate), 2, str(tmp_path))
        assert queued.cancel()
        gate.touch()
        running.result(WAIT)
    assert queued.cancelled() and not (tmp_path / "2.pid").exists()


@pytest.mark.soak
@pytest.mark.slow(seconds=6)
def test_shutdown_with_cancel_futures_stops_running_and_queued_jobs(tmp_path: Path) -> None:
    pool = safeplot.RenderPool(1)
    running = pool.submit(callbacks.waits_for, str(tmp_path / "never"), 1, str(tmp_path))
    queued = pool.submit(callbacks.legacy, "line", 2)
    while not (tmp_path / "1.pid").exists():  # the worker has the first job
        assert not running.done()
        time.sleep(0.01)  # another process's progress: a file to look for, nothing to wait on
    started = time.monotonic()
    pool.shutdown(cancel_futures=True)
    assert time.monotonic() - started < 30
    assert queued.cancelled()
    with pytest.raises(concurrent.futures.CancelledError):
        running.result(0)


@pytest.mark.soak
@pytest.mark.slow(seconds=6)
def test_a_worker_killed_while_idle_does_not_break_the_pool(tmp_path: Path) -> None:
    import os
    import signal

    with safeplot.RenderPool(1) as pool:
        pool.submit(callbacks.legacy_noting_pid, 1, str(tmp_path)).result(WAIT)
        os.kill(int((tmp_path / "1.pid").read_text()), signal.SIGKILL)  # the OOM killer, say
        outcomes = []
        for seed in range(2, 5):
            try:
                outcomes.append(
                    pool.submit(callbacks.legacy, "bar", seed).result(WAIT) == in_process("bar", seed)
                )
            except safeplot.WorkerCrashed:  # the job handed over as the death was noticed
                outcomes.append("crashed")
    assert outcomes[-2:] == [True, True], outcomes


@pytest.mark.soak
@pytest.mark.slow(seconds=6)
def test_a_flask_view_waiting_on_a_pool_job_answers_503_or_500_under_the_wsgi_middleware(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import flask
    from werkzeug.test import Client

    from safeplot.wsgi import SafeplotMiddleware as WsgiMiddleware

    with safeplot.RenderPool(1, time_limit=1.0) as pool:
        web = flask.Flask(__name__)

        @web.route("/slow")
        def slow() -> bytes:
            return pool.submit(callbacks.endless, 1).result(WAIT)

        @web.route("/crash")
        def crash() -> bytes:
            return pool.submit(callbacks.exits, 5).result(WAIT)

        web.wsgi_app = WsgiMiddleware(web.wsgi_app)  # type: ignore[method-assign]
        client = Client(web)
        with caplog.at_level(logging.ERROR, logger="safeplot"):
            slow_reply, crash_reply = client.get("/slow"), client.get("/crash")
    assert slow_reply.status_code == 503 and slow_reply.headers["Retry-After"] == "1"
    assert slow_reply.get_data().startswith(b"503 Service Unavailable: tests.pool_callbacks.endless ran past")
    assert crash_reply.status_code == 500 and crash_reply.mimetype == "text/plain"
    assert any("pool_callbacks.exits died with exit code 5" in r.getMessage() for r in caplog.records)


def test_a_job_done_before_it_is_watched_and_one_that_cannot_be_handed_over_settle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with safeplot.RenderPool(1) as pool:
        workers = pool._pool  # pebble's, in place of its schedule: a job done at once, then none at all
        finished: concurrent.futures.Future[bytes] = concurrent.futures.Future()
        finished.set_result(b"drawn")
        monkeypatch.setattr(workers, "schedule", lambda *args, **kwargs: finished)
        assert pool.submit(callbacks.legacy, "line", 1).result(WAIT) == b"drawn"  # no deadlock on the mutex

        def no_worker(*args: Any, **kwargs: Any) -> Any:
            raise OSError(11, "Resource temporarily unavailable")

        monkeypatch.setattr(workers, "schedule", no_worker)
        monkeypatch.setattr(pool, "_new_workers", lambda: workers)
        futures = [pool.submit(callbacks.legacy, "line", seed) for seed in range(3)]
        for future in futures:
            with pytest.raises(safeplot.WorkerCrashed):
                future.result(WAIT)
        monkeypatch.undo()
    assert all(future.done() for future in futures)
