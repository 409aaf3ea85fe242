"""safeplot.wsgi: image responses, plot views, and their behaviour under faults on a real server."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf
from matplotlib.figure import Figure
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

import safeplot
from safeplot.wsgi import image_response, plot_view
from tests.conftest import run_python
from tests.plots import SAVE_KW, draw
from tests.servers import DropRecordingHandler, fetch, fetch_all, werkzeug_server


def test_image_response_sets_mimetype_length_and_no_store() -> None:
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([1, 2])
    for fmt, mimetype in [
        ("png", "image/png"),
        ("svg", "image/svg+xml"),
        ("pdf", "application/pdf"),
        ("jpeg", "image/jpeg"),
    ]:
        kwargs = SAVE_KW.get(fmt, {})
        with matplotlib.rc_context({"svg.hashsalt": "fixed"}):
            response = image_response(fig, fmt, **kwargs)
            again = safeplot.render(fig, fmt, **kwargs)
        assert response.mimetype == mimetype
        assert response.headers["Content-Length"] == str(len(response.get_data()))
        assert response.headers["Cache-Control"] == "no-store"
        assert response.get_data() == again
    cached = image_response(fig, headers={"Cache-Control": "max-age=60", "X-Plot": "1"}, dpi=30)
    assert cached.headers["Cache-Control"] == "max-age=60" and cached.headers["X-Plot"] == "1"
    with pytest.raises(ValueError, match="unsupported format 'bmp'"):
        image_response(fig, "bmp")


def test_plot_view_renders_returned_or_current_figure_and_passes_responses() -> None:
    @plot_view
    def current(seed: int) -> None:
        draw("bar", seed)

    @plot_view(format="svg", metadata={"Date": None})
    def returned() -> Figure:
        plt.figure()
        fig = plt.figure()
        plt.plot([1, 2])
        return fig

    @plot_view
    def refuses() -> Response:
        plt.figure()
        return Response("no", status=403)

    assert current.__name__ == "current"
    png = current(4)
    assert png.mimetype == "image/png" and png.status_code == 200
    with safeplot.locked():
        draw("bar", 4)
        assert png.get_data() == safeplot.render()
    assert returned().mimetype == "image/svg+xml"
    assert refuses().status_code == 403
    assert Gcf.figs == {}


def test_plot_view_refuses_bad_views_and_options() -> None:
    async def async_view() -> None:
        pass

    with pytest.raises(TypeError, match="async function"):
        plot_view(async_view)
    with pytest.raises(ValueError, match="unsupported format"):
        plot_view(format="gif")
    with pytest.raises(ValueError, match="timeout"):
        plot_view(timeout=-1)

    @plot_view
    def nothing() -> None:
        pass

    with pytest.raises(ValueError, match="drew nothing"):
        nothing()


@pytest.mark.slow(seconds=3)
def test_import_without_werkzeug_explains_the_extra() -> None:
    blocker = "import sys; sys.modules['werkzeug'] = None\n"
    core = run_python(blocker + "import safeplot; print('core ok')")
    assert core.returncode == 0 and "core ok" in core.stdout, core.stderr
    web = run_python(blocker + "import safeplot.wsgi")
    assert web.returncode != 0
    assert (
        "ImportError: safeplot.wsgi needs werkzeug >= 2.2; install it with: pip install 'safeplot[wsgi]'"
        in web.stderr
    )


def test_flask_accepts_image_response_and_plot_view() -> None:
    flask = pytest.importorskip("flask")
    app = flask.Flask("plots")

    @app.route("/png")
    def png() -> Any:
        with safeplot.locked():
            draw("line", 2)
            return image_response()

    @app.route("/view/<int:seed>")
    @plot_view(format="svg")
    def view(seed: int) -> None:
        draw("scatter", seed)

    with werkzeug_server(app) as url:
        first, second = fetch(url, "/png"), fetch(url, "/view/3")
    assert first.status == 200 and first.headers["content-type"] == "image/png"
    assert first.body == safeplot.render_callback(draw, "line", 2)
    assert second.status == 200 and second.headers["content-type"].startswith("image/svg+xml")
    assert Gcf.figs == {}


class FaultyApp:
    """A werkzeug app with a healthy plot, one that raises mid-plot, and one that gets stuck.

    Only ``/impatient`` waits briefly for the lock: the other views must not
    time out while a loaded machine serves a handful of them one by one.
    """

    IMPATIENT_TIMEOUT = 0.5
    PATIENT_TIMEOUT = 60

    def __init__(self) -> None:
        self.stuck_inside = threading.Event()
        self.unstick = threading.Event()
        self.urls = Map(
            [
                Rule("/ok/<int:seed>", endpoint="ok"),
                Rule("/impatient/<int:seed>", endpoint="impatient"),
                Rule("/boom", endpoint="boom"),
                Rule("/stuck", endpoint="stuck"),
                Rule("/big", endpoint="big"),
            ]
        )

    @plot_view(timeout=PATIENT_TIMEOUT)
    def ok(self, seed: int) -> None:
        draw("heatmap", seed)

    @plot_view(timeout=IMPATIENT_TIMEOUT)
    def impatient(self, seed: int) -> None:
        draw("heatmap", seed)

    @plot_view(timeout=PATIENT_TIMEOUT)
    def boom(self) -> None:
        plt.figure()
        plt.plot([1, 2, 3])
        plt.rcParams["lines.linewidth"] = 9
        raise RuntimeError("failed mid-plot")

    @plot_view(timeout=PATIENT_TIMEOUT)
    def stuck(self) -> None:
        draw("line", 0)
        self.stuck_inside.set()
        self.unstick.wait(60)

    @plot_view(format="svg", timeout=PATIENT_TIMEOUT)
    def big(self) -> None:
        plt.figure()
        plt.scatter(range(100_000), range(100_000), s=1)  # about 10 MB of SVG

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            endpoint, values = self.urls.bind_to_environ(environ).match()
            response = getattr(self, endpoint)(**values)
        except HTTPException as error:
            response = error
        return response(environ, start_response)


def expected_ok(seed: int) -> bytes:
    return safeplot.render_callback(draw, "heatmap", seed)


@pytest.fixture
def faulty() -> Iterator[tuple[FaultyApp, str]]:
    app = FaultyApp()
    with werkzeug_server(app) as url:
        yield app, url
        app.unstick.set()


def test_view_raising_mid_plot_gives_500_and_the_server_recovers(faulty: tuple[FaultyApp, str]) -> None:
    _, url = faulty
    assert fetch(url, "/boom").status == 500
    replies = fetch_all(url, [f"/ok/{seed}" for seed in range(6)], clients=6)
    assert [r.status for r in replies] == [200] * 6
    assert [r.body for r in replies] == [expected_ok(seed) for seed in range(6)]
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None
    assert plt.rcParams["lines.linewidth"] == plt.rcParamsDefault["lines.linewidth"]


def test_stuck_request_makes_waiters_503_then_recovers(faulty: tuple[FaultyApp, str]) -> None:
    app, url = faulty
    stuck_reply: list[Any] = []
    stuck = threading.Thread(target=lambda: stuck_reply.append(fetch(url, "/stuck")))
    stuck.start()
    assert app.stuck_inside.wait(30)
    try:
        waiters = fetch_all(url, ["/impatient/1"] * 4, clients=4)
    finally:
        app.unstick.set()
        stuck.join(60)
    assert [r.status for r in waiters] == [503] * 4
    assert all(r.headers["retry-after"] == "1" for r in waiters)
    assert b"not acquired within 0.5 s" in waiters[0].body
    assert stuck_reply[0].status == 200
    recovered = fetch(url, "/impatient/1")
    assert recovered.status == 200 and recovered.body == expected_ok(1)
    assert Gcf.figs == {}


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
@pytest.mark.slow(seconds=4)
def test_client_disconnecting_mid_response_leaves_nothing_open() -> None:
    app = FaultyApp()
    with werkzeug_server(app, DropRecordingHandler) as url:
        port = int(url.rsplit(":", 1)[1])
        for _ in range(2):
            client = socket.socket()
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect(("127.0.0.1", port))
            client.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 200")  # the response has started
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()  # reset the connection with most of the body unsent
            assert DropRecordingHandler.dropped.acquire(timeout=60), "the server never saw the drop"
        after = fetch(url, "/ok/2")
    assert after.status == 200 and after.body == expected_ok(2)
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None


def test_not_found_passes_through_the_app(faulty: tuple[FaultyApp, str]) -> None:
    _, url = faulty
    assert fetch(url, "/nothing").status == NotFound.code
