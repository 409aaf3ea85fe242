"""A WSGI site for gunicorn's gevent worker: legacy views that wait on I/O between pyplot calls.

With ``--preload`` gunicorn imports it (and safeplot) in the master, before the
worker patches ``threading``; without, after.  ``time.sleep`` is patched in the
worker, so each view's sleeps switch to other greenlets mid-plot.

``/plot/<kind>/<seed>.png``: a legacy plot (the ``styled`` kind switches the
style); ``/hold``: takes the lock and keeps it, sleeping (I/O) until
``/release``; ``/short/<kind>/<seed>.png``: a plot under a middleware with a
1 s timeout; ``/waiting``: how many waits for the lock have begun (safeplot
logs each at DEBUG level); ``/healthz``; ``/stats``.
"""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import matplotlib.pyplot as plt
from matplotlib._pylab_helpers import Gcf
from werkzeug.wrappers import Request, Response

import safeplot
from safeplot.wsgi import SafeplotMiddleware
from tests.plots import draw

released = [False]
holding = [False]


class _CountWaits(logging.Handler):
    started = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "waits for safeplot.lock" in record.getMessage():
            type(self).started += 1


logging.getLogger("safeplot").addHandler(_CountWaits(logging.DEBUG))
logging.getLogger("safeplot").setLevel(logging.DEBUG)


def legacy_png(kind: str, seed: int) -> bytes:
    time.sleep(0.002)  # a database query, say: another greenlet runs meanwhile
    draw(kind, seed)
    time.sleep(0.002)
    plt.xlabel(f"after I/O {seed}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return buffer.getvalue()


def _views(environ: dict[str, Any], start_response: Any) -> Any:
    request = Request(environ)
    parts = request.path.strip("/").split("/")
    if parts[0] in ("plot", "short"):
        body = legacy_png(parts[1], int(parts[2].split(".")[0]))
        response = Response(body, mimetype="image/png")
    elif parts[0] == "hold":
        plt.figure()  # the request's first touch: its group holds the lock from here
        holding[0] = True
        while not released[0]:
            time.sleep(0.01)  # I/O: the greenlet switches out, its hold stays
        released[0] = holding[0] = False
        response = Response("released\n")
    elif parts[0] == "holding":
        response = Response(f"holding={holding[0]}\n")
    elif parts[0] == "waiting":
        response = Response(f"{_CountWaits.started}\n")
    elif parts[0] == "release":
        released[0] = True
        response = Response("ok\n")
    elif parts[0] == "stats":
        stats = {**safeplot.stats(), "open_figures": len(Gcf.figs)}
        response = Response(json.dumps(stats), mimetype="application/json")
    else:
        response = Response("ok\n")
    return response(environ, start_response)


_patient = SafeplotMiddleware(_views, timeout=50)
_short = SafeplotMiddleware(_views, timeout=1.0)


def app(environ: dict[str, Any], start_response: Any) -> Any:
    chosen = _short if environ.get("PATH_INFO", "").startswith("/short/") else _patient
    return chosen(environ, start_response)
