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
from contextlib import contextmanager
from typing import Any

import matplotlib
import matplotlib.colors
import matplotlib.pyplot as plt
import matplotlib.style
import pytest
from matplotlib._pylab_helpers import Gcf
from werkzeug.test import Client
from werkzeug.wrappers import Request, Response

import safeplot
from examples import legacy_app
from safeplot._guard import hooks
from safeplot.wsgi import SafeplotMiddleware
from tests.conftest import scaled
from tests.gate import Gate
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


def legacy_load() -> list[str]:
    return [LEGACY_PATHS[(i * 7) % len(LEGACY_PATHS)] for i in range(scaled(48))]


@pytest.mark.slow(seconds=8)
def test_legacy_app_behind_the_middleware_under_load(report: Callable[[str], None]) -> None:
    expected = serial_legacy_render()
    assert Gcf.figs == {} and plt.rcParams["lines.linewidth"] == matplotlib.rcParamsDefault["lines.linewidth"]
    paths = legacy_load()
    with legacy_server() as server:
        replies = fetch_all(server.base_url, paths, clients=16)
        stats = fetch(server.base_url, "/stats").json()
    assert {reply.status for reply in replies} == {200}
    wrong = [path for path, reply in zip(paths, replies) if reply.body != expected[path]]
    assert wrong == [], f"{len(wrong)} of {len(paths)} images differ from the serial render"
    assert stats["open_figures"] == 0 and stats["holder"] is None
    report(f"legacy app with SafeplotMiddleware: 0/{len(paths)} wrong, 0 figures open")


@pytest.mark.soak  # proves the load above finds what goes wrong without the middleware
@pytest.mark.slow(seconds=8)
def test_the_same_load_without_the_middleware_goes_wrong(report: Callable[[str], None]) -> None:
    expected = serial_legacy_render()
    paths = legacy_load()
    with legacy_server("--unsafe") as server:  # the same app without the one line
        unsafe = fetch_all(server.base_url, paths, clients=16)
        unsafe_stats = fetch(server.base_url, "/stats").json()
    unsafe_wrong = sum(
        1 for path, reply in zip(paths, unsafe) if reply.status != 200 or reply.body != expected[path]
    )
    report(
        f"legacy app without SafeplotMiddleware: {unsafe_wrong}/{len(paths)} wrong or failed, "
        f"{unsafe_stats['open_figures']} figures open"
    )
    assert unsafe_wrong > 0 and unsafe_stats["open_figures"] > 0


class SlowApp:
    """A legacy app: /slow draws with pyplot and waits; /healthz, /oo never touch pyplot."""

    def __init__(self) -> None:
        self.inside = threading.Event()
        self.release = Gate()  # waited for at work: the slow request's hold stays held

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path == "/slow":
            plt.figure()
            plt.plot([1, 2, 3])
            self.inside.set()
            self.release.wait(60)  # a slow draw
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
        app.release.open()


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
        app.release.open()
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
        app.release.open()
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


def test_streaming_body_that_plots_is_produced_under_the_lock_then_sent_without_it() -> None:
    produced_while_locked: list[bool] = []

    def streaming_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"before "  # not a touch of matplotlib yet: streams
        for n in range(3):
            plt.figure()
            plt.plot([n, n + 1])
            produced_while_locked.append(safeplot.lock.is_owned())
            yield f"{len(plt.get_fignums())} ".encode()

    app = SafeplotMiddleware(streaming_app)
    iterable = app({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda status, headers, exc_info=None: None)
    chunks = iter(iterable)
    assert next(chunks) == b"before " and not safeplot.lock.is_owned()
    assert next(chunks) == b"1 "
    assert produced_while_locked == [True, True, True]  # the rest was produced at once, locked...
    assert not safeplot.lock.is_owned() and Gcf.figs == {}  # ...and the group ended before sending
    assert list(chunks) == [b"2 ", b"3 "]
    iterable.close()  # type: ignore[attr-defined]
    del iterable, chunks  # nothing can run the request's code now: the hooks go off
    assert not hooks.installed


def test_write_callable_output_is_held_back_until_the_lock_is_released() -> None:
    sent: list[tuple[bytes, bool]] = []

    def legacy_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"a")  # before any plotting: goes out at once
        plt.figure()
        write(b"b")  # under the lock: held back
        return [b"c"]

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Callable[[bytes], None]:
        return lambda data: sent.append((data, safeplot.lock.is_owned()))

    iterable = SafeplotMiddleware(legacy_app)({"REQUEST_METHOD": "GET"}, start_response)
    body = list(iterable)
    iterable.close()  # type: ignore[attr-defined]
    assert sent == [(b"a", False)] and body == [b"b", b"c"]
    assert Gcf.figs == {} and not safeplot.lock.is_owned()


def test_body_generator_timing_out_before_its_first_byte_answers_503(slow: tuple[SlowApp, str]) -> None:
    app, url = slow
    statuses: list[str] = []

    def lazy_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "image/png")])
        plt.figure()  # first touch inside the body: waits, times out
        yield b"never"

    thread, _ = start_slow_request(app, url)  # holds the lock
    try:
        iterable = SafeplotMiddleware(lazy_app, timeout=0.2)(
            {"REQUEST_METHOD": "GET"}, lambda status, headers, exc_info=None: statuses.append(status)
        )
        body = b"".join(iterable)
        iterable.close()  # type: ignore[attr-defined]
    finally:
        app.release.open()
        thread.join(60)
    assert statuses == ["200 OK", "503 SERVICE UNAVAILABLE"]
    assert body.startswith(b"503 Service Unavailable: safeplot.lock not acquired within 0.2 s")
    assert lock_free() and Gcf.figs == {}


class BigImageApp:
    """/big draws with pyplot and answers with an 8 MB body; /plot draws a small one."""

    def __init__(self) -> None:
        self.produced = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        plt.figure(figsize=(2, 2), dpi=50)
        plt.plot([1, 3, 2])
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        body = buffer.getvalue()
        if environ["PATH_INFO"] == "/big":
            body += b"\0" * 8_000_000  # more than the kernel's socket buffers hold
            self.produced.set()
        return Response(body, mimetype="image/png")(environ, start_response)


def test_a_client_that_reads_nothing_does_not_keep_the_lock() -> None:
    app = BigImageApp()
    with werkzeug_server(SafeplotMiddleware(app, timeout=0.5), DropRecordingHandler) as url:
        port = int(url.rsplit(":", 1)[1])
        stuck = socket.socket()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.connect(("127.0.0.1", port))
        stuck.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")  # and never reads
        try:
            assert app.produced.wait(30)
            assert safeplot.lock.acquire(timeout=30), "the lock stayed held while the server sent the body"
            safeplot.lock.release()
            assert DropRecordingHandler.dropped.acquire(timeout=0) is False  # still sending to it
            replies = fetch_all(url, ["/plot"] * 3, clients=3)
            assert [reply.status for reply in replies] == [200, 200, 200]
        finally:
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            stuck.close()
        assert DropRecordingHandler.dropped.acquire(timeout=60)
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None


def read_facecolor_first() -> str:
    return str(plt.rcParams["axes.facecolor"])


def build_artist_first() -> str:
    return matplotlib.colors.to_hex(plt.Rectangle((0, 0), 1, 1).get_facecolor())


def enter_style_context_first() -> str:
    with plt.style.context({"lines.linewidth": 2}):  # copies rcParams on entry, puts them back on exit
        pass
    return str(dict.__getitem__(matplotlib.rcParams, "axes.facecolor"))


def enter_rc_context_first() -> str:
    with matplotlib.rc_context({"lines.linewidth": 2}):
        pass
    return str(dict.__getitem__(matplotlib.rcParams, "axes.facecolor"))


def use_style_first() -> str:
    matplotlib.style.use("fast")
    return str(dict.__getitem__(matplotlib.rcParams, "axes.facecolor"))


FIRST_TOUCHES = [
    read_facecolor_first,
    build_artist_first,
    enter_style_context_first,
    enter_rc_context_first,
    use_style_first,
]


class WaitSignal(logging.Handler):
    """Set when a wait for the lock begins (safeplot logs it at DEBUG level)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.progress = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waits for safeplot.lock" in record.getMessage():
            self.progress.set()


@contextmanager
def signal_waits() -> Iterator[WaitSignal]:
    """A WaitSignal on the safeplot logger for the duration of the block."""
    logger = logging.getLogger("safeplot")
    signal, level = WaitSignal(), logger.level
    logger.addHandler(signal)
    logger.setLevel(logging.DEBUG)
    try:
        yield signal
    finally:
        logger.removeHandler(signal)
        logger.setLevel(level)


@pytest.mark.parametrize("first_touch", FIRST_TOUCHES, ids=lambda f: f.__name__)
def test_first_touch_of_shared_state_waits_for_the_lock(first_touch: Callable[[], str]) -> None:
    """A request whose first touch is not a pyplot call must not see a plotting request's style."""
    with safeplot.locked():
        expected = first_touch()

    def view(environ: dict[str, Any], start_response: Any) -> Any:
        return Response(first_touch())(environ, start_response)

    dark, release = threading.Event(), threading.Event()

    def another_request_mid_plot() -> None:
        with safeplot.locked() as p:
            p.style.use("dark_background")
            dark.set()
            release.wait(60)

    holder = threading.Thread(target=another_request_mid_plot)
    holder.start()
    replies: list[Any] = []
    try:
        assert dark.wait(30)
        with signal_waits() as waits, werkzeug_server(SafeplotMiddleware(view, timeout=30)) as url:
            client = threading.Thread(target=lambda: (replies.append(fetch(url, "/")), waits.progress.set()))
            client.start()
            assert waits.progress.wait(30)  # the request waits for the lock, or (unsafely) answered
            release.set()
            client.join(60)
    finally:
        release.set()
        holder.join(60)
    assert replies[0].status == 200
    assert replies[0].body.decode() == expected  # not what the other request's style gave
    assert lock_free() and Gcf.figs == {}


def test_long_hold_is_logged_once_with_where_the_lock_was_taken(
    slow: tuple[SlowApp, str], caplog: pytest.LogCaptureFixture
) -> None:
    app, url = slow
    safeplot.configure(long_hold=0.5)
    with caplog.at_level(logging.WARNING, logger="safeplot"):
        thread, _ = start_slow_request(app, url)
        app.release.wait(1.0)  # the request holds the lock past the threshold
        app.release.open()
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
        app.release.open()
        thread.join(60)
    assert reply.status == 503 and reply.headers["retry-after"] == "1"
    assert lock_free() and Gcf.figs == {}
