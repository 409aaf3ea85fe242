"""Views of the Django test site: legacy pyplot views, and views that hold the lock on request.

A test holds the lock with ``/hold`` (in a thread of its own), learns that it is
held with ``/wait/held`` and ends the hold with ``/set/release``.  Events live
in the server process, so the sequence needs no sleeps.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

import safeplot
from safeplot.django import plot_view
from tests.gate import Gate

EVENTS = {name: threading.Event() for name in ("held", "streaming", "stream-go")}
RELEASE = Gate()  # waited for at work, so that the hold is not set aside meanwhile
WAIT = 30.0


def draw_legacy(seed: int) -> None:
    """Old pyplot code: the current figure, a style change, no close."""
    rng = np.random.default_rng(seed)
    if seed % 2:
        plt.style.use("dark_background")
    plt.figure(figsize=(3, 2), dpi=60)
    plt.plot(rng.normal(size=100).cumsum())
    plt.title(f"legacy {seed}")


def legacy(request: HttpRequest, seed: int) -> HttpResponse:
    draw_legacy(seed)
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return HttpResponse(buffer.getvalue(), content_type="image/png")


@plot_view(timeout=0.2)
def impatient(request: HttpRequest) -> None:
    draw_legacy(0)


@method_decorator(plot_view(format="png", dpi=50), name="get")
class ClassChart(View):
    def get(self, request: HttpRequest, seed: int) -> Any:
        draw_legacy(seed)


def hold(request: HttpRequest) -> HttpResponse:
    RELEASE.close()
    with safeplot.locked():
        EVENTS["held"].set()
        released = RELEASE.wait(WAIT)
        EVENTS["held"].clear()
    return HttpResponse(f"released={released}\n", content_type="text/plain")


def wait(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(f"{name}={EVENTS[name].wait(WAIT)}\n", content_type="text/plain")


def set_event(request: HttpRequest, name: str) -> HttpResponse:
    if name == "release":
        RELEASE.open()
    else:
        EVENTS[name].set()
    return HttpResponse(f"{name} set\n", content_type="text/plain")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Plots, then streams a body that waits for the test mid-way."""
    draw_legacy(2)
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    EVENTS["stream-go"].clear()

    def chunks() -> Iterator[bytes]:
        yield b"first\n"
        EVENTS["streaming"].set()
        EVENTS["stream-go"].wait(WAIT)
        EVENTS["streaming"].clear()
        yield buffer.getvalue()

    return StreamingHttpResponse(chunks(), content_type="application/octet-stream")


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


def stats(request: HttpRequest) -> HttpResponse:
    body: dict[str, Any] = dict(safeplot.stats())
    if safeplot.lock.acquire(timeout=5):
        try:
            body["open_figures"] = len(plt.get_fignums())
        finally:
            safeplot.lock.release()
    return HttpResponse(json.dumps(body), content_type="application/json")


urlpatterns = [
    path("legacy/<int:seed>.png", legacy),
    path("impatient", impatient),
    path("class/<int:seed>.png", ClassChart.as_view()),
    path("hold", hold),
    path("wait/<str:name>", wait),
    path("set/<str:name>", set_event),
    path("stream", stream),
    path("healthz", healthz),
    path("stats", stats),
]
