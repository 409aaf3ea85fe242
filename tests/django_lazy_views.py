"""Views of the lazily imported Django site: legacy code that sets its style at import, for good."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

from tests.plots import draw

plt.style.use("dark_background")  # at import, as old views modules do: for every later request


def legacy_png(seed: int) -> bytes:
    plt.figure(figsize=(3, 2), dpi=60)
    plt.plot([seed, 3, 1, 2])
    plt.title(f"legacy {seed}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return buffer.getvalue()


def legacy(request: HttpRequest, seed: int) -> HttpResponse:
    return HttpResponse(legacy_png(seed), content_type="image/png")


def restyle(request: HttpRequest, seed: int) -> HttpResponse:
    draw("styled", seed)  # ggplot, for this request only
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return HttpResponse(buffer.getvalue(), content_type="image/png")


async def async_legacy(request: HttpRequest, seed: int, sensitive: int) -> HttpResponse:
    png = await sync_to_async(legacy_png, thread_sensitive=bool(sensitive))(seed)
    return HttpResponse(png, content_type="image/png")
