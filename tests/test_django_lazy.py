"""A Django site whose views module sets its style when first imported, inside the first request:
under gunicorn gthread (WSGI) and uvicorn (ASGI, async views awaiting sync_to_async)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import matplotlib.pyplot as plt
import pytest

import safeplot
from tests.plots import draw
from tests.servers import ServerProcess, fetch, fetch_all, server_process

pytest.importorskip("django")
pytestmark = pytest.mark.xdist_group("django-lazy-servers")
SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.django_lazy_site"}


def expected_legacy(seed: int) -> bytes:
    with safeplot.locked():
        plt.style.use("dark_background")
        plt.figure(figsize=(3, 2), dpi=60)
        plt.plot([seed, 3, 1, 2])
        plt.title(f"legacy {seed}")
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()


def expected_restyled(seed: int) -> bytes:
    with safeplot.locked():
        plt.style.use("dark_background")
        draw("styled", seed)
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()


@pytest.fixture(scope="module")
def gunicorn() -> Iterator[ServerProcess]:
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "8", "-w", "1"]
    command += ["--bind", "127.0.0.1:0", "django.core.wsgi:get_wsgi_application()"]
    with server_process(command, r"Listening at: http://127\.0\.0\.1:(\d+)", extra_env=SETTINGS) as server:
        yield server


@pytest.fixture(scope="module")
def uvicorn() -> Iterator[ServerProcess]:
    command = [sys.executable, "-m", "uvicorn", "--factory", "django.core.asgi:get_asgi_application"]
    command += ["--host", "127.0.0.1", "--port", "0"]
    with server_process(
        command, r"Uvicorn running on http://127\.0\.0\.1:(\d+)", extra_env=SETTINGS
    ) as server:
        yield server


@pytest.mark.soak  # the rule itself is tested in-process in every run (tests/test_import_setup.py)
@pytest.mark.slow(seconds=6)
def test_a_style_set_by_views_imported_in_the_first_request_holds_for_every_request(
    gunicorn: ServerProcess,
) -> None:
    paths = [f"/legacy/{seed}.png" for seed in range(6)] + [f"/restyle/{seed}.png" for seed in range(6)]
    replies = fetch_all(gunicorn.base_url, paths, clients=12)  # the first of them imports the views
    assert [reply.status for reply in replies] == [200] * len(paths), "".join(gunicorn.output[-20:])
    expected = [expected_legacy(seed) for seed in range(6)] + [expected_restyled(seed) for seed in range(6)]
    wrong = [path for path, reply, body in zip(paths, replies, expected) if reply.body != body]
    assert wrong == [], f"{len(wrong)} of {len(paths)} wrong"
    stats = fetch(gunicorn.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["holder"] is None


@pytest.mark.soak  # in nox -s soak (CI), to keep the default run short
@pytest.mark.slow(seconds=6)
def test_async_views_awaiting_sync_to_async_are_covered_under_asgi(uvicorn: ServerProcess) -> None:
    paths = [f"/async/{seed}/{sensitive}.png" for seed in range(8) for sensitive in (1, 0)]
    replies = fetch_all(uvicorn.base_url, paths * 2, clients=16)
    assert [reply.status for reply in replies] == [200] * len(replies), "".join(uvicorn.output[-20:])
    wrong = [
        path
        for path, reply in zip(paths * 2, replies)
        if reply.body != expected_legacy(int(path.split("/")[2]))
    ]
    assert wrong == [], f"{len(wrong)} of {len(replies)} wrong"
    stats = fetch(uvicorn.base_url, "/stats").json()
    assert stats["open_figures"] == 0 and stats["holder"] is None
