"""A legacy werkzeug app that draws with raw pyplot, made safe by one line: the middleware.

Run it:  python examples/legacy_app.py [--host 127.0.0.1] [--port 8000] [--unsafe]

The views below are old code as it is found: global ``plt`` calls,
``plt.savefig`` into a buffer, some forgetting ``plt.close()``, one changing
``rcParams`` for good.  Under threads that code returns wrong images and leaks
figures; wrapped in ``SafeplotMiddleware`` (the last lines) it does not.
``--unsafe`` serves the unwrapped app, to see the difference.

Routes: /sales/<n>.png, /trend/<n>.png, /share/<n>.svg, /bold/<n>.png, /healthz, /stats
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import run_simple
from werkzeug.wrappers import Request, Response

import safeplot
from safeplot.wsgi import SafeplotMiddleware

# --- the legacy views, unchanged ----------------------------------------------


def sales(n: int) -> Response:
    plt.figure(figsize=(4, 3), dpi=60)
    plt.bar(["Q1", "Q2", "Q3", "Q4"], np.random.default_rng(n).integers(10, 100, size=4))
    plt.title(f"Sales, store {n}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    plt.close()
    return Response(buffer.getvalue(), mimetype="image/png")


def trend(n: int) -> Response:
    values = np.random.default_rng(n).normal(size=100).cumsum()
    plt.figure(figsize=(4, 3), dpi=60)
    plt.plot(values)
    plt.ylabel("index")
    plt.title(f"Trend {n}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")  # never closed: one figure leaked per request
    return Response(buffer.getvalue(), mimetype="image/png")


def share(n: int) -> Response:
    plt.rcParams["svg.hashsalt"] = "legacy"  # stable ids; left set, like the rest of this code
    plt.figure(figsize=(3, 3), dpi=60)
    plt.pie(np.random.default_rng(n).integers(1, 10, size=3), labels=["a", "b", "c"])
    buffer = io.BytesIO()
    plt.savefig(buffer, format="svg", metadata={"Date": None})
    plt.close()
    return Response(buffer.getvalue(), mimetype="image/svg+xml")


def bold(n: int) -> Response:
    plt.rcParams["lines.linewidth"] = 4  # changed for every later request too
    plt.figure(figsize=(4, 3), dpi=60)
    plt.plot(np.random.default_rng(n).random(20))
    plt.title(f"Bold {n}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    plt.close()
    return Response(buffer.getvalue(), mimetype="image/png")


def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


def stats() -> Response:
    with safeplot.lock:  # the whole registry, not one request's view of it
        open_figures = len(plt.get_fignums())
    return Response(
        json.dumps({**safeplot.stats(), "open_figures": open_figures}), mimetype="application/json"
    )


VIEWS: dict[str, Any] = {
    "sales": sales,
    "trend": trend,
    "share": share,
    "bold": bold,
    "healthz": healthz,
    "stats": stats,
}
URLS = Map(
    [
        Rule("/sales/<int:n>.png", endpoint="sales"),
        Rule("/trend/<int:n>.png", endpoint="trend"),
        Rule("/share/<int:n>.svg", endpoint="share"),
        Rule("/bold/<int:n>.png", endpoint="bold"),
        Rule("/healthz", endpoint="healthz"),
        Rule("/stats", endpoint="stats"),
    ]
)


@Request.application  # type: ignore[arg-type]
def unsafe_app(request: Request) -> Response:
    """The legacy application, as it was."""
    try:
        endpoint, values = URLS.bind_to_environ(request.environ).match()
        return VIEWS[endpoint](**values)  # type: ignore[no-any-return]
    except HTTPException as error:
        return error.get_response(request.environ)  # type: ignore[return-value]


app = SafeplotMiddleware(unsafe_app, timeout=30)  # the one added line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="legacy pyplot app behind SafeplotMiddleware")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--unsafe", action="store_true", help="serve the app without the middleware")
    args = parser.parse_args(argv)
    run_simple(args.host, args.port, unsafe_app if args.unsafe else app, threaded=True)  # no debugger
    return 0


if __name__ == "__main__":
    sys.exit(main())
