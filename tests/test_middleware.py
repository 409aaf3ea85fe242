"""SafeplotMiddleware: unchanged pyplot views made safe per request, on real servers."""

from __future__ import annotations

import io
import logging
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

import safeplot
from examples import legacy_app
from safeplot.wsgi import SafeplotMiddleware
from tests.servers import ROOT, DropRecordingHandler, fetch, fetch_all, server_process, werkzeug_server

LEGACY_PATHS = [
    f"/{route}/{n}.{ext}"
    for route, ext in [("sales", "png"), ("trend", "png"), ("share", "svg"), ("bold", "png")]
    for n in range(6)
]


def legacy_server(*extra: str) -> Any:
    return server_process(
        [sys.executable, str(ROOT / "examples" / "legacy_app.py"), "--port", "0", *extra],
        r"Running on http://127\.0\.0\.1:(\d+)",
    )


def serial_legacy_render() -> dict[str, bytes]:
    client = Client(legacy_app.app)
    rendered = {}
    for path in LEGACY_PATHS:
        response = client.get(path)
        rendered[path] = response.get_data()
        response.close()  # as a server does: this ends the request's group
    return rendered


@pytest.mark.slow(seconds=80)
def test_legacy_app_behind_the_middleware_under_load(report: Callable[[str], None]) -> None:
    expected = serial_legacy_render()
    assert Gcf.figs == {} and plt.rcParams["lines.linewidth"] == matplotlib.rcParamsDefault["lines.linewidth"]
    paths = [LEGACY_PATHS[(i * 7) % len(LEGACY_PATHS)] for i in range(432)]
    with legacy_server() as server:
        replies = fetch_all(server.base_url, paths, clients=16)
        stats = fetch(server.base_url, "/stats").json()
    assert {reply.status for reply in replies} == {200}
    wrong = [path for path, reply in zip(paths, replies) if reply.body != expected[path]]
    assert wrong == [], f"{len(wrong)} of {len(paths)} images differ from the serial render"
    assert stats["open_figures"] == 0 and stats["holder"] is None

    with legacy_server("--unsafe") as server:  # the same app without the one line: reported only
        unsafe = fetch_all(server.base_url, paths, clients=16)
        unsafe_stats = fetch(server.base_url, "/stats").json()
    unsafe_wrong = sum(
        1 for path, reply in zip(paths, unsafe) if reply.status != 200 or reply.body != expected[path]
    )
    report(
        f"legacy app with SafeplotMiddleware: 0/{len(paths)} wrong, 0 figures open; "
        f"without: {unsafe_wrong}/{len(paths)} wrong or failed, "
        f"{unsafe_stats['open_figures']} figures open"
    )


class SlowApp:
    """A legacy app: /slow draws with pyplot and waits; /healthz, /oo never touch pyplot."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/slow":
            plt.figure()
            plt.plot([1, 2, 3])
            self.inside.set()
            self.release.wait(60)
            buffer = io.BytesIO()
            plt.savefig(buffer, format="png")
            response = Response(buffer.getvalue(), mimetype="image/png")
        elif request.path == "/boom":
            plt.figure()
            plt.rcParams["lines.linewidth"] = 8
            raise RuntimeError("failed mid-plot")
        elif request.path == "/big":
            plt.figure()
            plt.scatter(range(100_000), range(100_000), s=1)
            buffer = io.BytesIO()
            plt.savefig(buffer, format="svg")
            response = Response(buffer.getvalue(), mimetype="image/svg+xml")
        elif request.path == "/plot":
            plt.plot([3, 1, 2])
            buffer = io.BytesIO()
            plt.savefig(buffer, format="png")
            response = Response(buffer.getvalue(), mimetype="image/png")
        else:
            response = Response("ok\n")
        return response(environ, start_response)


@pytest.fixture
def slow() -> Iterator[tuple[SlowApp, str]]:
    app = SlowApp()
    with werkzeug_server(SafeplotMiddleware(app, timeout=0.3)) as url:
        yield app, url
        app.release.set()


def lock_free() -> bool:
    """Wait until no request holds the lock (so its group has ended); True then."""
    with safeplot.lock:
        return True


def start_slow_request(app: SlowApp, url: str) -> tuple[threading.Thread, list[Any]]:
    replies: list[Any] = []
    thread = threading.Thread(target=lambda: replies.append(fetch(url, "/slow")), name="slow-client")
    thread.start()
    assert app.inside.wait(30)
    return thread, replies


def test_requests_without_pyplot_never_wait_for_a_plotting_request(slow: tuple[SlowApp, str]) -> None:
    app, url = slow
    thread, replies = start_slow_request(app, url)
    try:
        assert safeplot.stats()["holder"] is not None  # the slow request holds the lock now
        acquisitions = safeplot.stats()["acquisitions"]
        healthz = fetch(url, "/healthz", timeout=10)  # would time out if it waited for the lock
        assert healthz.status == 200
        assert safeplot.stats()["acquisitions"] == acquisitions
    finally:
        app.release.set()
        thread.join(60)
    assert replies[0].status == 200
    assert lock_free() and Gcf.figs == {}


def test_lock_timeout_answers_503_then_recovers(slow: tuple[SlowApp, str]) -> None:
    app, url = slow
    thread, replies = start_slow_request(app, url)
    try:
        started = time.monotonic()
        busy = fetch(url, "/plot")
        waited = time.monotonic() - started
    finally:
        app.release.set()
        thread.join(60)
    assert busy.status == 503 and busy.headers["retry-after"] == "1"
    assert 0.3 <= waited < 10
    assert replies[0].status == 200
    assert fetch(url, "/plot").status == 200
    assert lock_free() and Gcf.figs == {}


def test_view_raising_mid_plot_is_cleaned_up(slow: tuple[SlowApp, str]) -> None:
    _, url = slow
    assert fetch(url, "/boom").status == 500
    assert lock_free() and Gcf.figs == {}
    assert plt.rcParams["lines.linewidth"] == matplotlib.rcParamsDefault["lines.linewidth"]
    assert fetch(url, "/plot").status == 200


def test_client_disconnect_leaves_nothing_open() -> None:
    with werkzeug_server(SafeplotMiddleware(SlowApp()), DropRecordingHandler) as url:
        port = int(url.rsplit(":", 1)[1])
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert client.recv(1024).startswith(b"HTTP/1.1 200")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        assert DropRecordingHandler.dropped.acquire(timeout=60)
        assert fetch(url, "/plot").status == 200
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None


def test_streaming_response_holds_the_lock_until_closed() -> None:
    def streaming_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for n in range(3):
            plt.figure()
            plt.plot([n, n + 1])
            yield f"{len(plt.get_fignums())} ".encode()

    app = SafeplotMiddleware(streaming_app)
    iterable = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda status, headers, exc_info=None: None)
    chunks = iter(iterable)
    assert next(chunks) == b"1 "
    assert safeplot.lock.is_owned()
    assert next(chunks) == b"2 "
    iterable.close()  # type: ignore[attr-defined]
    assert not safeplot.lock.is_owned()
    assert Gcf.figs == {}


def test_long_hold_is_logged_once_with_where_the_lock_was_taken(
    slow: tuple[SlowApp, str], caplog: pytest.LogCaptureFixture
) -> None:
    app, url = slow
    safeplot.configure(long_hold=0.5)
    with caplog.at_level(logging.WARNING, logger="safeplot"):
        thread, _ = start_slow_request(app, url)
        app.release.wait(1.0)  # the request holds the lock past the threshold
        app.release.set()
        thread.join(60)
        fetch(url, "/plot")  # a short hold: not logged
    records = [r for r in caplog.records if r.name == "safeplot"]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "safeplot.lock was held for" in message and "over 0.5 s" in message
    assert f"taken at {__file__}:" in message  # SlowApp's first pyplot call


def test_flask_error_page_for_a_lock_timeout_becomes_503(slow: tuple[SlowApp, str]) -> None:
    flask = pytest.importorskip("flask")
    app, url = slow
    flask_app = flask.Flask("legacy")

    @flask_app.route("/chart")
    def chart() -> Any:
        plt.plot([1, 2])
        buffer = io.BytesIO()
        plt.savefig(buffer)
        return Response(buffer.getvalue(), mimetype="image/png")

    thread, _ = start_slow_request(app, url)  # holds the lock
    try:
        with werkzeug_server(SafeplotMiddleware(flask_app, timeout=0.2)) as flask_url:
            reply = fetch(flask_url, "/chart")
    finally:
        app.release.set()
        thread.join(60)
    assert reply.status == 503 and reply.headers["retry-after"] == "1"
    assert lock_free() and Gcf.figs == {}
