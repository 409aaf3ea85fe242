"""Django sites served for real: runserver (threaded) and gunicorn gthread, on 127.0.0.1."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.servers import DJANGO_TEST_SITE, ServerProcess, django_server, fetch, fetch_all, lock_held

pytest.importorskip("django")

# gunicorn gthread in nox -s soak (CI), to keep the default run short.
SERVERS = ("runserver", pytest.param("gunicorn", marks=pytest.mark.soak))
EXAMPLE_PLOTS = [f"/legacy/{kind}.png" for kind in ("line", "bars", "scatter", "dark")] + [
    "/report/1.png",
    "/report/2.png",
    "/sales/1.png",
    "/sales/2.png",
]


# One worker runs this module, in pytest's order, so that each server starts once.
pytestmark = pytest.mark.xdist_group("django-servers")


@pytest.fixture(scope="module", params=SERVERS)
def example(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with django_server(request.param) as server:
        yield server


@pytest.fixture(scope="module", params=SERVERS)
def site(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    # A short limit (the middleware's and safeplot's default): only fault tests run here, never a load.
    with django_server(request.param, DJANGO_TEST_SITE, env={"SAFEPLOT_TIMEOUT": "0.3"}) as server:
        yield server


def test_16_concurrent_clients_get_the_bytes_of_a_serial_run(example: ServerProcess) -> None:
    serial = {path: fetch(example.base_url, path) for path in EXAMPLE_PLOTS}
    assert {reply.status for reply in serial.values()} == {200}
    assert all(reply.headers["content-type"] == "image/png" for reply in serial.values())
    paths = EXAMPLE_PLOTS * 2
    replies = fetch_all(example.base_url, paths, clients=16)
    assert [reply.status for reply in replies] == [200] * len(paths), "".join(example.output[-20:])
    wrong = [path for path, reply in zip(paths, replies) if reply.body != serial[path].body]
    assert wrong == []
    stats = fetch(example.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["holder"] is None


def test_the_page_lists_plots_that_all_load(example: ServerProcess) -> None:
    page = fetch(example.base_url, "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    sources = [part.split('"', 1)[0] for part in page.body.decode().split('src="')[1:]]
    assert len(sources) == 9
    replies = fetch_all(example.base_url, sources, clients=9)
    assert [reply.status for reply in replies] == [200] * len(sources)
    assert {reply.headers["content-type"] for reply in replies} == {"image/png", "image/svg+xml"}


def test_503_with_retry_after_when_the_lock_is_held_past_a_views_timeout(site: ServerProcess) -> None:
    with lock_held(site):
        started = time.monotonic()
        by_view = fetch(site.base_url, "/impatient")  # @plot_view(timeout=0.2)
        waited = time.monotonic() - started
        by_middleware = fetch(site.base_url, "/legacy/3.png")  # SAFEPLOT_TIMEOUT=0.3
        not_plotting = fetch(site.base_url, "/healthz")
    for reply in (by_view, by_middleware):
        assert reply.status == 503, reply.body
        assert reply.headers["retry-after"] == "1"
        assert reply.headers["content-type"] == "text/plain; charset=utf-8"
        assert reply.body.startswith(b"503 Service Unavailable: safeplot.lock not acquired within 0.")
    assert 0.2 <= waited < 10
    assert not_plotting.status == 200
    after = fetch(site.base_url, "/impatient")
    assert after.status == 200 and after.headers["content-type"] == "image/png"
    stats = fetch(site.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["timeouts"] >= 2


def test_requests_that_do_not_plot_never_take_the_lock(site: ServerProcess) -> None:
    with lock_held(site):
        replies = fetch_all(
            site.base_url, ["/healthz"] * 8, clients=8
        )  # would 503 after 0.3 s if they waited
    assert [reply.status for reply in replies] == [200] * 8
    before = fetch(site.base_url, "/stats").json()
    fetch_all(site.base_url, ["/healthz"] * 8, clients=8)
    after = fetch(site.base_url, "/stats").json()
    assert after["acquisitions"] - before["acquisitions"] == 1  # the first /stats's own count of figures


def test_a_streaming_response_of_a_plotting_view_does_not_pin_the_lock(site: ServerProcess) -> None:
    streamed: list[bytes] = []
    client = threading.Thread(target=lambda: streamed.append(fetch(site.base_url, "/stream").body))
    client.start()
    try:
        assert fetch(site.base_url, "/wait/streaming").body == b"streaming=True\n"
        mid_stream = fetch(site.base_url, "/impatient")  # gives up after 0.2 s if the lock were pinned
    finally:
        fetch(site.base_url, "/set/stream-go")
        client.join(30)
    assert mid_stream.status == 200
    assert streamed[0].startswith(b"first\n\x89PNG")
    assert fetch(site.base_url, "/stats").json()["open_figures"] == 0
