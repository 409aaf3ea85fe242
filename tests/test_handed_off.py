"""Work a framework hands to another thread with the request's context: Flask async views and Dash
callbacks (asgiref's async_to_sync, an event loop in another thread) under the WSGI middleware."""

from __future__ import annotations

import asyncio
import base64
import http.client
import io
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import flask
import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot
from safeplot.wsgi import SafeplotMiddleware
from tests.plots import draw
from tests.servers import ServerProcess, fetch, fetch_all, server_process, werkzeug_server

pytest.importorskip("asgiref")  # what Flask runs async views with (it comes with Django)
KINDS = ("line", "styled", "heatmap", "bar")


def serial(kind: str, seed: int, label: str | None = None) -> bytes:
    with safeplot.locked():
        draw(kind, seed)
        if label is not None:
            plt.xlabel(label)
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()


def flask_app_with_async_views() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.route("/plot/<kind>/<int:seed>.png")
    async def plot(kind: str, seed: int) -> flask.Response:  # runs on asgiref's loop, in another thread
        await asyncio.sleep(0)
        draw(kind, seed)
        await asyncio.sleep(0.001)  # the loop runs nothing else: the request's code pauses here
        plt.xlabel("async")
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return flask.Response(buffer.getvalue(), mimetype="image/png")

    app.wsgi_app = SafeplotMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


@pytest.mark.slow(seconds=4)
def test_flask_async_views_under_the_middleware_match_a_serial_run() -> None:
    jobs = [(kind, seed) for kind in KINDS for seed in range(4)]
    with werkzeug_server(flask_app_with_async_views()) as url:
        replies = fetch_all(url, [f"/plot/{kind}/{seed}.png" for kind, seed in jobs], clients=16)
    assert [reply.status for reply in replies] == [200] * len(jobs)
    wrong = [job for job, reply in zip(jobs, replies) if reply.body != serial(*job, label="async")]
    assert wrong == [], f"{len(wrong)} of {len(jobs)} wrong"
    assert Gcf.figs == {} and safeplot.stats()["holder"] is None


@pytest.fixture(scope="module")
def dash_site() -> Iterator[ServerProcess]:
    pytest.importorskip("dash")
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "16", "-w", "1"]
    command += ["--bind", "127.0.0.1:0", "tests.dash_site:server"]
    with server_process(command, r"Listening at: http://127\.0\.0\.1:(\d+)") as server:
        yield server


def dash_callback(base_url: str, kind: str, seed: int) -> tuple[int, bytes]:
    """What a browser sends when an input changes: the callback's output, as (status, PNG bytes)."""
    body = {
        "output": "plot.src",
        "outputs": {"id": "plot", "property": "src"},
        "inputs": [
            {"id": "kind", "property": "value", "value": kind},
            {"id": "seed", "property": "value", "value": seed},
        ],
        "changedPropIds": ["seed.value"],
        "state": [],
    }
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=60)
    try:
        connection.request(
            "POST", "/_dash-update-component", json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.status != 200:
        return response.status, data
    source = json.loads(data)["response"]["plot"]["src"]
    return 200, base64.b64decode(source.split(",", 1)[1])


@pytest.mark.hosts
@pytest.mark.slow(seconds=8)
def test_dash_callbacks_with_use_async_under_the_middleware_match_a_serial_run(
    dash_site: ServerProcess,
) -> None:
    jobs = [(kind, seed) for kind in KINDS for seed in range(16)]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda job: dash_callback(dash_site.base_url, *job), jobs))
    assert [status for status, _ in replies] == [200] * len(jobs), "".join(dash_site.output[-20:])
    wrong = [job for job, (_, png) in zip(jobs, replies) if png != serial(*job)]
    assert wrong == [], f"{len(wrong)} of {len(jobs)} wrong"
    stats = fetch(dash_site.base_url, "/stats").json()
    assert stats["use_async"] and stats["open_figures"] == 0 and stats["holder"] is None
