"""ASGI apps served for real by uvicorn on 127.0.0.1: the FastAPI example and a test site."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests.conftest import scaled
from tests.servers import ServerProcess, fetch, fetch_all, lock_held, uvicorn_server

SYNC_PLOTS = [f"/legacy/{kind}.png" for kind in ("line", "bars", "scatter", "dark")]
ASYNC_PLOTS = [f"/report/{seed}.png" for seed in range(1, 5)]
P95_LIMIT = 0.25


# One worker runs this module, in pytest's order, so that each server starts once.
pytestmark = pytest.mark.xdist_group("uvicorn-servers")


@pytest.fixture(scope="module")
def example() -> Iterator[ServerProcess]:
    with uvicorn_server() as server:
        yield server


@pytest.fixture(scope="module")
def site() -> Iterator[ServerProcess]:
    # A short limit (the middleware's and render_callback's): only fault tests run here, never a load.
    with uvicorn_server("tests.asgi_site:app", env={"SAFEPLOT_TIMEOUT": "0.3"}) as server:
        yield server


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
def test_16_clients_on_sync_and_async_endpoints_get_the_bytes_of_a_serial_run(example: ServerProcess) -> None:
    plots = SYNC_PLOTS + ASYNC_PLOTS
    serial = {path: fetch(example.base_url, path).body for path in plots}
    assert all(body.startswith(b"\x89PNG") for body in serial.values())
    paths = plots * 2
    replies = fetch_all(example.base_url, paths, clients=16)
    assert [reply.status for reply in replies] == [200] * len(paths), "".join(example.output[-20:])
    wrong = [path for path, reply in zip(paths, replies) if reply.body != serial[path]]
    assert wrong == []
    stats = fetch(example.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["holder"] is None


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
def test_async_healthz_answers_fast_while_plots_render(
    example: ServerProcess, report: Callable[[str], None]
) -> None:
    load_done = threading.Event()
    plots = (SYNC_PLOTS + ASYNC_PLOTS) * 4

    def load() -> None:
        try:
            replies = fetch_all(example.base_url, plots, clients=16)
            assert {reply.status for reply in replies} == {200}
        finally:
            load_done.set()

    loader = threading.Thread(target=load, name="load")
    loader.start()
    latencies = []
    while not load_done.is_set():
        started = time.monotonic()
        assert fetch(example.base_url, "/healthz").status == 200
        latencies.append(time.monotonic() - started)
    loader.join(60)
    assert len(latencies) >= 10, "the load ended before enough health checks were made"
    p95 = statistics.quantiles(latencies, n=20)[-1]
    report(f"/healthz while {len(plots)} plots rendered: p95 {p95 * 1e3:.0f} ms over {len(latencies)} checks")
    assert p95 < P95_LIMIT


def test_the_page_lists_plots_that_all_load(example: ServerProcess) -> None:
    page = fetch(example.base_url, "/")
    sources = [part.split('"', 1)[0] for part in page.body.decode().split('src="')[1:]]
    assert page.status == 200 and len(sources) == 6
    assert [reply.status for reply in fetch_all(example.base_url, sources, clients=6)] == [200] * 6


def test_503_on_timeout_from_sync_and_async_endpoints(site: ServerProcess) -> None:
    with lock_held(site):
        started = time.monotonic()
        sync = fetch(site.base_url, "/legacy/1.png")  # the middleware's first touch gives up after 0.3 s
        waited = time.monotonic() - started
        awaited = fetch(site.base_url, "/callback/1.png")  # render_callback's group gives up after 0.3 s
        not_plotting = fetch(site.base_url, "/healthz")
    for reply in (sync, awaited):
        assert reply.status == 503, reply.body
        assert reply.headers["retry-after"] == "1"
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        assert reply.body.startswith(b"503 Service Unavailable: safeplot.lock not acquired within 0.3 s")
    assert 0.3 <= waited < 10
    assert not_plotting.status == 200
    assert fetch(site.base_url, "/legacy/1.png").status == 200
    stats = fetch(site.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["holder"] is None and stats["timeouts"] >= 2


def test_pyplot_on_the_event_loop_is_refused_at_once_even_with_the_lock_held(site: ServerProcess) -> None:
    with lock_held(site):
        started = time.monotonic()
        reply = fetch(site.base_url, "/on-the-loop")
        elapsed = time.monotonic() - started
        assert fetch(site.base_url, "/healthz").status == 200  # the loop was never blocked
    assert reply.status == 500 and elapsed < 10  # refused, not timed out (that would be a 503 after 0.3 s)
    assert any("UnlockedPyplotError: matplotlib used on the event loop" in line for line in site.output)


@pytest.fixture(scope="module")
def load_site() -> Iterator[ServerProcess]:
    # The same site with a long limit, for loads (SAFEPLOT_TIMEOUT 50 from server_process).
    with uvicorn_server("tests.asgi_site:app") as server:
        yield server


def test_threads_of_one_request_take_turns_under_load(load_site: ServerProcess) -> None:
    gathers = [f"/gather/{seed}.bin" for seed in range(4)]
    executors = [f"/executor/{kind}/{seed}.png" for kind in ("line", "styled") for seed in range(4)]
    paths = gathers + executors
    serial = {path: fetch(load_site.base_url, path).body for path in paths}
    replies = fetch_all(load_site.base_url, paths * scaled(2), clients=16)
    assert [reply.status for reply in replies] == [200] * len(replies), "".join(load_site.output[-20:])
    wrong = [path for path, reply in zip(paths * scaled(2), replies) if reply.body != serial[path]]
    assert wrong == [], f"{len(wrong)} of {len(replies)} wrong"
    stats = fetch(load_site.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["holder"] is None


def test_a_thread_left_waiting_by_its_request_never_takes_the_lock(load_site: ServerProcess) -> None:
    with lock_held(load_site):
        abandoned = fetch(load_site.base_url, "/abandon/1.png")  # its thread still waits for the lock
    assert abandoned.status == 504
    stats = fetch(load_site.base_url, "/stats").json()  # waits for the lock: the left thread is done
    assert stats["holder"] is None and stats["open_figures"] == 0
    replies = fetch_all(load_site.base_url, [f"/legacy/{seed}.png" for seed in range(8)], clients=8)
    assert [reply.status for reply in replies] == [200] * 8
