"""A one-file Django site whose old pyplot views are made safe by safeplot.

Run it:      python examples/django_app.py runserver [127.0.0.1:8000]
Or:          gunicorn -k gthread --threads 8 examples.django_app:application

Routes:
    /                         a page of plots, fetched concurrently by the browser
    /legacy/<kind>.png        unchanged legacy views (plt calls, savefig into an HttpResponse,
                              no plt.close); SafeplotMiddleware alone makes them safe
    /report/<seed>.<fmt>      a function view under @plot_view (fmt: png or svg)
    /sales/<seed>.png         a class-based view, @method_decorator(plot_view)
    /healthz                  "ok", never touches pyplot
    /stats                    JSON of safeplot.stats() and the number of open figures

A plotting request waits at most 10 s for the plotting lock, then answers 503
(SAFEPLOT_TIMEOUT in the environment sets another limit).
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils.decorators import method_decorator
from django.views import View

import safeplot
from safeplot.django import image_response, plot_view

RAW_TIMEOUT = os.environ.get("SAFEPLOT_TIMEOUT", "10").strip()
settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
    SECRET_KEY="an example site that keeps no secrets",
    ROOT_URLCONF=__name__,
    MIDDLEWARE=["safeplot.django.SafeplotMiddleware"],
    SAFEPLOT_TIMEOUT=None if RAW_TIMEOUT.lower() in ("", "none") else float(RAW_TIMEOUT),  # none: no limit
    INSTALLED_APPS=[],
    DATABASES={},
)

LEGACY_KINDS = ("line", "bars", "scatter", "dark")


# --- legacy views: written before safeplot, left as they were ---------------------------------


def legacy_plot(request: HttpRequest, kind: str) -> HttpResponse:
    """Draws on pyplot's current figure, changes the style, never closes anything."""
    if kind not in LEGACY_KINDS:
        raise Http404(f"unknown plot {kind!r}")
    rng = np.random.default_rng(LEGACY_KINDS.index(kind))
    if kind == "dark":
        plt.style.use("dark_background")  # leaks into every later request without safeplot
    plt.figure(figsize=(4, 3), dpi=80)
    if kind == "bars":
        plt.bar(["north", "south", "east", "west"], rng.integers(5, 50, size=4))
    elif kind == "scatter":
        plt.scatter(rng.normal(size=300), rng.normal(size=300), s=6, alpha=0.6)
    else:
        plt.plot(rng.normal(size=400).cumsum())
    plt.title(f"legacy {kind}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return HttpResponse(buffer.getvalue(), content_type="image/png")


# --- views adopting safeplot's helpers ---------------------------------------------------------


@plot_view
def report(request: HttpRequest, seed: int, fmt: str) -> Any:
    """A function view: draws, and @plot_view answers with the figure it opened."""
    if fmt not in ("png", "svg"):
        raise Http404(f"unknown format {fmt!r}")
    rng = np.random.default_rng(seed)
    plt.figure(figsize=(4, 3), dpi=80)
    plt.hist(rng.normal(size=1000), bins=30, color="tab:green")
    plt.title(f"report #{seed}")
    if fmt == "svg":
        return image_response(format="svg")
    return None


@method_decorator(plot_view, name="get")
class SalesChart(View):
    """A class-based view: its ``get`` draws, and the decorator answers with the image."""

    def get(self, request: HttpRequest, seed: int) -> Any:
        rng = np.random.default_rng(seed)
        fig, ax = plt.subplots(figsize=(4, 3), dpi=80)
        ax.plot(rng.integers(80, 120, size=12), marker="o")
        ax.set_title(f"sales #{seed}")
        return fig


def index(request: HttpRequest) -> HttpResponse:
    images = [f"/legacy/{kind}.png" for kind in LEGACY_KINDS]
    images += [f"/report/{seed}.png" for seed in (1, 2)] + ["/report/3.svg"]
    images += [f"/sales/{seed}.png" for seed in (1, 2)]
    figures = "\n".join(
        f'<figure><img src="{src}" alt="{src}" onload="done(true)" onerror="done(false)">'
        f"<figcaption>{src}</figcaption></figure>"
        for src in images
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>safeplot Django example</title>
<style>main {{ display: grid; grid-template-columns: repeat(3, 1fr); gap: 1em; }}
img {{ width: 100%; }} body {{ font-family: sans-serif; }}</style></head>
<body><h1>safeplot Django example</h1><p id="status">loading {len(images)} plots&hellip;</p>
<main>
{figures}
</main>
<script>
let settled = 0, loaded = 0;
function done(ok) {{
  settled += 1; loaded += ok ? 1 : 0;
  if (settled === {len(images)}) document.getElementById("status").textContent =
    loaded + "/" + settled + " plots loaded";
}}
</script></body></html>
"""
    return HttpResponse(page)


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok\n", content_type="text/plain")


def stats(request: HttpRequest) -> JsonResponse:
    open_figures = None
    if safeplot.lock.acquire(timeout=1):
        try:
            open_figures = len(plt.get_fignums())
        finally:
            safeplot.lock.release()
    response = JsonResponse({**safeplot.stats(), "open_figures": open_figures})
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("", index),
    path("legacy/<str:kind>.png", legacy_plot),
    path("report/<int:seed>.<str:fmt>", report),
    path("sales/<int:seed>.png", SalesChart.as_view()),
    path("healthz", healthz),
    path("stats", stats),
]

application = get_wsgi_application()

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
