"""safeplot.django in-process: responses, plot_view, and the middleware in sync and async (ASGI) mode."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf
from matplotlib.figure import Figure

import safeplot
from tests.conftest import held_by_another_thread, run_python
from tests.plots import SAVE_KW

pytest.importorskip("django")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.django_site")
import django

django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import (  # noqa: E402
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils.decorators import method_decorator  # noqa: E402
from django.views import View  # noqa: E402

from safeplot.django import SafeplotMiddleware, image_response, plot_view  # noqa: E402
from tests import django_urls  # noqa: E402

setup_test_environment()


def test_image_response_sets_content_type_length_and_no_store() -> None:
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([1, 2])
    for fmt, content_type in [("png", "image/png"), ("svg", "image/svg+xml"), ("jpeg", "image/jpeg")]:
        kwargs = SAVE_KW.get(fmt, {})
        with matplotlib.rc_context({"svg.hashsalt": "fixed"}):
            response = image_response(fig, fmt, **kwargs)
            again = safeplot.render(fig, fmt, **kwargs)
        assert isinstance(response, HttpResponse) and response.status_code == 200
        assert response["Content-Type"] == content_type
        assert response["Content-Length"] == str(len(response.content))
        assert response["Cache-Control"] == "no-store"
        assert response.content == again
    cached = image_response(fig, headers={"Cache-Control": "max-age=60", "X-Plot": "1"}, dpi=30)
    assert cached["Cache-Control"] == "max-age=60" and cached["X-Plot"] == "1"
    as_pairs = image_response(fig, headers=[("cache-control", "private")])
    assert as_pairs["Cache-Control"] == "private"
    with pytest.raises(ValueError, match="unsupported format 'bmp'"):
        image_response(fig, "bmp")
    with safeplot.locked(), pytest.raises(ValueError, match="no current pyplot figure"):
        image_response()


def test_plot_view_answers_with_the_figure_or_passes_a_response_through() -> None:
    request = HttpRequest()

    @plot_view
    def current(request: HttpRequest, seed: int) -> None:
        django_urls.draw_legacy(seed)

    @plot_view(format="svg", metadata={"Date": None})
    def returned(request: HttpRequest) -> Figure:
        plt.figure()
        fig = plt.figure()
        plt.plot([1, 2])
        return fig

    @plot_view
    def redirects(request: HttpRequest) -> HttpResponseRedirect:
        plt.figure()
        return HttpResponseRedirect("/elsewhere")

    @plot_view
    def draws_nothing(request: HttpRequest) -> None:
        pass

    assert current.__name__ == "current"
    png = current(request, 3)
    assert png["Content-Type"] == "image/png" and png.status_code == 200
    with safeplot.locked():
        django_urls.draw_legacy(3)
        assert png.content == safeplot.render()
    assert returned(request)["Content-Type"] == "image/svg+xml"
    assert redirects(request).status_code == 302
    with pytest.raises(ValueError, match="drew nothing"):
        draws_nothing(request)
    assert Gcf.figs == {} and plt.rcParams["axes.facecolor"] == "white"


def test_plot_view_on_a_class_based_view_through_method_decorator() -> None:
    @method_decorator(plot_view(format="png", dpi=40), name="get")
    class Chart(View):
        def get(self, request: HttpRequest, seed: int) -> None:
            django_urls.draw_legacy(seed)

    @method_decorator(plot_view, name="dispatch")
    class Bare(View):
        def get(self, request: HttpRequest) -> Figure:
            fig, ax = plt.subplots()
            ax.plot([3, 1, 2])
            return fig

    factory_request = HttpRequest()
    factory_request.method = "GET"
    chart = Chart.as_view()(factory_request, seed=2)
    with safeplot.locked():
        django_urls.draw_legacy(2)
        assert chart.content == safeplot.render(dpi=40)
    assert Bare.as_view()(factory_request)["Content-Type"] == "image/png"
    assert Gcf.figs == {}


def test_plot_view_answers_503_when_the_lock_is_held_past_its_timeout() -> None:
    @plot_view(timeout=0.1)
    def view(request: HttpRequest) -> None:
        django_urls.draw_legacy(0)

    with held_by_another_thread():
        response = view(HttpRequest())
    assert response.status_code == 503
    assert response["Retry-After"] == "1" and response["Content-Type"] == "text/plain; charset=utf-8"
    assert b"safeplot.lock not acquired within 0.1 s; held by thread 'holder'" in response.content


def test_plot_view_refuses_async_views_and_bad_options() -> None:
    async def async_view(request: HttpRequest) -> None:
        pass

    with pytest.raises(TypeError, match="cannot lock async function"):
        plot_view(async_view)
    with pytest.raises(ValueError, match="unsupported format 'gif'"):
        plot_view(format="gif")
    with pytest.raises(ValueError, match="timeout"):
        plot_view(timeout=-1)
    with pytest.raises(TypeError, match="plot_view takes a view function"):
        plot_view("view")  # type: ignore[call-overload]


@pytest.fixture
def client() -> Client:
    return Client()


def test_middleware_makes_legacy_views_safe_and_leaves_no_trace(client: Client) -> None:
    alone = client.get("/legacy/2.png").content  # an even seed: the default style
    dark = client.get("/legacy/1.png")  # plt.style.use("dark_background"), never undone by the view
    after = client.get("/legacy/2.png")
    assert dark.status_code == after.status_code == 200
    assert after.content == alone
    assert Gcf.figs == {} and plt.rcParams["axes.facecolor"] == "white"
    assert safeplot.stats()["holder"] is None


def test_middleware_leaves_requests_that_do_not_plot_unlocked(client: Client) -> None:
    with held_by_another_thread():
        reply = client.get("/healthz")  # SAFEPLOT_TIMEOUT is 30 s: a wait would show
    assert reply.status_code == 200
    before = safeplot.stats()["acquisitions"]
    client.get("/healthz")
    assert safeplot.stats()["acquisitions"] == before


def test_middleware_answers_503_where_django_would_answer_500() -> None:
    with override_settings(SAFEPLOT_TIMEOUT=0.1), held_by_another_thread():
        replies = [Client(raise_request_exception=False).get("/legacy/4.png") for _ in range(2)]
    for reply in replies:
        assert reply.status_code == 503 and reply["Retry-After"] == "1"
        assert reply["Content-Type"] == "text/plain; charset=utf-8"
    assert Gcf.figs == {}


def times_out_after_the_view(get_response: Any) -> Any:
    """A middleware inside safeplot's whose own code raises LockTimeout (Django makes a 500 of it)."""

    def middleware(request: HttpRequest) -> HttpResponse:
        get_response(request)
        raise safeplot.LockTimeout(2.5, "other")

    return middleware


def test_lock_timeout_raised_past_the_view_becomes_503_too() -> None:
    inner = f"{__name__}.times_out_after_the_view"
    with override_settings(MIDDLEWARE=["safeplot.django.SafeplotMiddleware", inner]):
        reply = Client(raise_request_exception=False).get("/healthz")
    assert reply.status_code == 503 and reply["Retry-After"] == "3"


def test_bad_timeout_setting_is_improperly_configured() -> None:
    for value in (-1, "soon", float("nan")):
        with override_settings(SAFEPLOT_TIMEOUT=value), pytest.raises(ImproperlyConfigured, match="SAFEPLOT"):
            SafeplotMiddleware(lambda request: HttpResponse())


def test_streaming_content_that_plots_is_produced_whole_then_sent_without_the_lock() -> None:
    lock_free_at_first_chunk: list[bool] = []

    def view(request: HttpRequest) -> StreamingHttpResponse:
        def chunks() -> Iterator[bytes]:
            yield b"header\n"
            django_urls.draw_legacy(1)  # touches pyplot mid-stream, after the view's group ended
            buffer = io.BytesIO()
            plt.savefig(buffer, format="png")
            yield buffer.getvalue()

        return StreamingHttpResponse(chunks())

    response = SafeplotMiddleware(view)(HttpRequest())
    content = iter(response.streaming_content)
    first = next(content)
    lock_free_at_first_chunk.append(safeplot.stats()["holder"] is None)
    rest = b"".join(content)
    response.close()
    assert first == b"header\n" and rest.startswith(b"\x89PNG")
    assert lock_free_at_first_chunk == [True]
    assert Gcf.figs == {} and plt.rcParams["axes.facecolor"] == "white"

    def plotting_chunks() -> Iterator[bytes]:
        plt.figure()
        yield b"drawn\n"
        held_while_yielding.append(safeplot.stats()["holder"] is not None)

    held_while_yielding: list[bool] = []
    streamed = SafeplotMiddleware(lambda request: StreamingHttpResponse(plotting_chunks()))(HttpRequest())
    assert b"".join(streamed.streaming_content) == b"drawn\n"
    assert held_while_yielding == [True]  # produced in memory under the lock; the byte went out after
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None


def test_file_response_of_a_plotting_view_streams_untouched_without_the_lock(tmp_path: Any) -> None:
    report = tmp_path / "report.png"

    def view(request: HttpRequest) -> FileResponse:
        django_urls.draw_legacy(2)
        plt.savefig(report)
        return FileResponse(report.open("rb"))

    response = SafeplotMiddleware(view)(HttpRequest())
    assert safeplot.stats()["holder"] is None  # the group ended with the view: the file is sent unlocked
    assert response.file_to_stream is not None  # still served by the server's file wrapper
    assert b"".join(response.streaming_content) == report.read_bytes()
    response.close()
    assert Gcf.figs == {}


async def _asgi_get(app: Any, url: str) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    received = False
    status = 0
    body = bytearray()

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            await asyncio.Event().wait()  # the client stays connected
        received = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body.extend(message.get("body", b""))

    await app(scope, receive, send)
    return status, bytes(body)


def assert_concurrent_matches_serial(app: Any, urls: list[str], *, times: int) -> None:
    """Each url fetched once serially, then ``times`` times concurrently: the same bytes, nothing left."""

    async def serial_then_concurrent() -> tuple[list[tuple[int, bytes]], list[tuple[int, bytes]]]:
        serial = [await _asgi_get(app, url) for url in urls]
        concurrent = await asyncio.gather(*(_asgi_get(app, url) for url in urls * times))
        return serial, list(concurrent)

    serial, concurrent = asyncio.run(serial_then_concurrent())
    assert {status for status, _ in serial + concurrent} == {200}
    assert [body for _, body in concurrent] == [body for _, body in serial] * times
    assert Gcf.figs == {} and plt.rcParams["axes.facecolor"] == "white"
    assert safeplot.stats()["holder"] is None


def test_middleware_under_asgi_groups_sync_views_in_their_threads() -> None:
    app = get_asgi_application()
    urls = [f"/legacy/{seed}.png" for seed in range(4)] + [f"/class/{seed}.png" for seed in range(4)]

    assert_concurrent_matches_serial(app, urls, times=2)

    async def timed_out() -> tuple[int, bytes]:
        return await _asgi_get(get_asgi_application(), "/legacy/5.png")

    with override_settings(SAFEPLOT_TIMEOUT=0.1), held_by_another_thread():
        status, body = asyncio.run(timed_out())
    assert status == 503 and body.startswith(b"503 Service Unavailable")
    assert safeplot.stats()["holder"] is None


def test_the_asgi_middleware_alone_makes_django_views_safe_under_asgi() -> None:
    from safeplot.asgi import SafeplotMiddleware as AsgiMiddleware

    urls = [f"/legacy/{seed}.png" for seed in range(4)]
    with override_settings(MIDDLEWARE=[]):
        assert_concurrent_matches_serial(AsgiMiddleware(get_asgi_application()), urls, times=4)


def test_import_without_django_explains_the_extra() -> None:
    blocker = "import sys; sys.modules['django'] = None\n"
    web = run_python(blocker + "import safeplot.django")
    assert web.returncode != 0
    assert (
        "ImportError: safeplot.django needs Django >= 4.2; install it with: pip install 'safeplot[django]'"
        in web.stderr
    )
