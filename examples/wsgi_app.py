"""An example plot server: legacy pyplot functions served safely by a threaded WSGI app.

Run it:      python examples/wsgi_app.py [--host 127.0.0.1] [--port 8000]
Or:          gunicorn -k gthread --threads 8 -w 2 --preload examples.wsgi_app:app
Or:          waitress-serve --listen 127.0.0.1:8000 examples.wsgi_app:app

Routes:
    /                       a page with a grid of plots, fetched concurrently by the browser
    /plot/<kind>.<fmt>      one plot; query: n, seed, width, height, dpi, title
    /healthz                "ok", never touches pyplot
    /stats                  JSON of safeplot.stats() and the number of open figures

A request waits at most 10 s for the plotting lock, then answers 503
(SAFEPLOT_TIMEOUT in the environment sets another limit).  Requests are
limited by their cost (points, pixels, format), so that none holds the lock
for much longer than a default one; errors are one line of text/plain.

The plotting functions below are written the old way (module-level ``plt``
calls, no figure handles, no ``plt.close``); only ``safeplot.wsgi.plot_view``
makes them safe.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.mathtext import MathTextParser
from werkzeug.exceptions import BadRequest, HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import safeplot
from safeplot.wsgi import plot_view

# A request waits for the plotting lock at most this many seconds, then answers
# 503; where SAFEPLOT_TIMEOUT is set in the environment, that applies instead.
LOCK_TIMEOUT = 10.0
VIEW_OPTIONS: dict[str, Any] = (
    {} if os.environ.get("SAFEPLOT_TIMEOUT", "").strip() else {"timeout": LOCK_TIMEOUT}
)
FORMATS = [
    fmt for fmt in ("png", "svg", "pdf", "jpeg", "webp") if fmt in FigureCanvasBase.get_supported_filetypes()
]
# Fixed metadata, so that the same query always gives the same bytes.
SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "svg": {"metadata": {"Date": None}},
    "pdf": {"metadata": {"CreationDate": None}},
}
MAX_POINTS = 100_000
MAX_INCHES = 20.0
MAX_DPI = 300
MAX_PIXELS = 16_000_000
MAX_TITLE = 200
# Where a title's mathtext may put a glyph, in pixels from its origin: far
# beyond any image, well within what FreeType can rasterise.
MAX_MATHTEXT_EXTENT = 20_000

# Limits by cost, in units of a default request (a line plot, png, n=200,
# 5 x 3.5 inches at 80 dpi): a request may cost at most COST_BUDGET of them.
# Coefficients measured on a 2-core machine; benchmarks/bench_limits.py renders
# the costliest requests the limits allow and checks they stay under 20x.
COST_BUDGET = 12.0
RASTER_FORMATS = ("png", "jpeg", "webp")
MEGAPIXEL_COST = {"png": 1.1, "jpeg": 0.6, "webp": 1.7, "svg": 0.6, "pdf": 0.7}
MEGAPIXEL_FACTOR = {"heatmap": 2.0, "subplots": 1.5}  # resampled images; four axes of text
# per 100 000 points: (raster, vector); markers cost most in vector formats
POINT_COST = {
    "line": (4.0, 4.0),
    "scatter": (30.0, 220.0),
    "histogram": (5.0, 5.0),
    "bar": (1.0, 1.0),
    "heatmap": (3.0, 3.0),
    "pie": (1.0, 1.0),
    "subplots": (4.0, 5.0),
    "styled": (3.0, 30.0),
}
# per 100 000 points and megapixel, raster only: long lines crossing a big image
DENSE_COST = {"line": 12.0, "styled": 12.0, "subplots": 2.0, "scatter": 2.0}


@dataclass(frozen=True)
class Params:
    n: int = 200
    seed: int = 0
    width: float = 5.0
    height: float = 3.5
    dpi: int = 80
    title: str = ""


# --- the legacy plotting code -------------------------------------------------

PLOTS: dict[str, Callable[[Params], None]] = {}


def plot(kind: str) -> Callable[[Callable[[Params], None]], Callable[[Params], None]]:
    def register(func: Callable[[Params], None]) -> Callable[[Params], None]:
        PLOTS[kind] = func
        return func

    return register


def new_figure(p: Params) -> np.random.Generator:
    plt.rcParams["svg.hashsalt"] = "safeplot-example"
    plt.figure(figsize=(p.width, p.height), dpi=p.dpi)
    return np.random.default_rng(p.seed)


@plot("line")
def line_plot(p: Params) -> None:
    rng = new_figure(p)
    x = np.linspace(0, 10, p.n)
    plt.plot(x, np.sin(x) + rng.normal(scale=0.2, size=p.n), label="signal")
    plt.plot(x, np.sin(x), "--", label="model")
    plt.legend(loc="upper right")
    plt.title(p.title or "Line")


@plot("scatter")
def scatter_plot(p: Params) -> None:
    rng = new_figure(p)
    plt.scatter(rng.normal(size=p.n), rng.normal(size=p.n), c=rng.random(p.n), s=6, cmap="plasma")
    plt.title(p.title or "Scatter")


@plot("histogram")
def histogram_plot(p: Params) -> None:
    rng = new_figure(p)
    plt.hist(rng.normal(size=p.n), bins=30, color="tab:green", alpha=0.8)
    plt.xlabel("value")
    plt.title(p.title or "Histogram")
    plt.tight_layout()


@plot("bar")
def bar_plot(p: Params) -> None:
    rng = new_figure(p)
    plt.bar(["north", "south", "east", "west", "centre"], rng.integers(5, 50, size=5))
    plt.ylabel("orders")
    plt.title(p.title or "Bar")


@plot("heatmap")
def heatmap_plot(p: Params) -> None:
    rng = new_figure(p)
    side = max(2, min(200, int(math.sqrt(p.n))))
    plt.imshow(rng.random((side, side)), cmap="viridis", aspect="auto")
    plt.colorbar(label="intensity")
    plt.title(p.title or "Heatmap")


@plot("pie")
def pie_plot(p: Params) -> None:
    rng = new_figure(p)
    plt.pie(rng.integers(1, 10, size=5), labels=list("ABCDE"), autopct="%1.0f%%")
    plt.title(p.title or "Pie")


@plot("subplots")
def subplots_plot(p: Params) -> None:
    rng = new_figure(p)
    for i in range(4):
        plt.subplot(2, 2, i + 1)
        plt.plot(rng.normal(size=max(2, p.n // 4)).cumsum())
        plt.title(f"panel {i + 1}", fontsize=8)
    plt.suptitle(p.title or "Subplots")
    plt.tight_layout()


@plot("styled")
def styled_plot(p: Params) -> None:
    plt.style.use("ggplot")  # undone when the request's group ends
    rng = new_figure(p)
    plt.plot(rng.normal(size=p.n).cumsum(), "o-", markersize=2)
    plt.title(p.title or r"Styled: $\sigma = 1$")


# --- input checking -----------------------------------------------------------

_INT = re.compile(r"[0-9]{1,9}")
_FLOAT = re.compile(r"[0-9]{1,4}(\.[0-9]{1,6})?")


def _number(name: str, raw: str, pattern: re.Pattern[str], low: float, high: float) -> float:
    if not pattern.fullmatch(raw):
        raise BadRequest(f"{name} must be a plain decimal number, got {raw[:40]!r}")
    value = float(raw)
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low:g} and {high:g}, got {raw}")
    return value


def parse_params(args: Mapping[str, list[str]]) -> Params:
    """The query as Params; BadRequest with a one-line reason for anything off."""
    values: dict[str, Any] = {}
    for name, raws in args.items():
        if name not in Params.__dataclass_fields__:
            raise BadRequest(f"unknown parameter {name[:40]!r}")
        if len(raws) != 1:
            raise BadRequest(f"parameter {name!r} given {len(raws)} times")
        raw = raws[0]
        if name == "title":
            if len(raw) > MAX_TITLE:
                raise BadRequest(f"title is longer than {MAX_TITLE} characters")
            if any(ord(ch) < 32 or 127 <= ord(ch) < 160 for ch in raw):
                raise BadRequest("title contains control characters")
            values[name] = raw
        elif name == "n":
            values[name] = int(_number(name, raw, _INT, 1, MAX_POINTS))
        elif name == "seed":
            values[name] = int(_number(name, raw, _INT, 0, 2**32 - 1))
        elif name == "dpi":
            values[name] = int(_number(name, raw, _INT, 10, MAX_DPI))
        else:
            values[name] = _number(name, raw, _FLOAT, 0.5, MAX_INCHES)
    params = Params(**values)
    pixels = params.width * params.height * params.dpi**2
    if pixels > MAX_PIXELS:
        raise BadRequest(f"image would be {pixels / 1e6:.1f} megapixels; the limit is {MAX_PIXELS / 1e6:g}")
    return params


def request_cost(kind: str, fmt: str, p: Params) -> float:
    """About how long the plot takes to render, in units of a default request."""
    megapixels = p.width * p.height * p.dpi**2 / 1e6
    points = p.n / 100_000
    raster = fmt in RASTER_FORMATS
    cost = 1.0 + MEGAPIXEL_COST[fmt] * MEGAPIXEL_FACTOR.get(kind, 1.0) * megapixels
    cost += POINT_COST[kind][0 if raster else 1] * points
    if raster:
        cost += DENSE_COST.get(kind, 0.0) * points * megapixels
    return cost


def check_cost(kind: str, fmt: str, p: Params) -> None:
    """BadRequest if the plot would hold the lock too long for everyone else."""
    cost = request_cost(kind, fmt, p)
    if cost > COST_BUDGET:
        raise BadRequest(
            f"this {kind} plot as {fmt} would cost about {cost:.0f}x a default one "
            f"(limit {COST_BUDGET:g}x): lower n, width, height or dpi"
        )


_MATHTEXT = MathTextParser("path")


def _mathtext_reason(error: Exception) -> str:
    """One line saying what is wrong with some mathtext, from the parser's multi-line message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    reason = lines[-1]  # pyparsing's "ParseFatalException: Unknown symbol: \\foo, found ..." line
    if reason.startswith("Parse") and ": " in reason:
        reason = reason.partition(": ")[2]
    return " ".join(reason.split())[:160]


def check_title(title: str, dpi: float) -> None:
    """BadRequest if the title holds mathtext that matplotlib cannot parse or draw.

    matplotlib treats a string as mathtext when it has an even, non-zero number
    of unescaped ``$``.  Glyphs placed absurdly far away (``\\hspace{3000000}``)
    make FreeType fail while rasterising, so their positions are checked too.
    Call with the plotting lock held: the parser's caches are shared.
    """
    dollars = title.count("$") - title.count(r"\$")
    if dollars == 0 or dollars % 2:
        return
    try:
        parsed = _MATHTEXT.parse(title, dpi=dpi)
    except Exception as exc:  # pyparsing, ValueError, RecursionError...: all mean "bad input"
        raise BadRequest(f"title is not valid mathtext: {_mathtext_reason(exc)}") from None
    extents = [parsed.width, parsed.height, parsed.depth]
    extents += [coordinate for glyph in parsed.glyphs for coordinate in glyph[-2:]]
    extents += [coordinate for rect in parsed.rects for coordinate in rect]
    if not all(math.isfinite(x) and abs(x) <= MAX_MATHTEXT_EXTENT for x in extents):
        raise BadRequest(
            f"title's mathtext reaches beyond {MAX_MATHTEXT_EXTENT} pixels (a huge \\hspace or similar)"
        )


# --- the web application ------------------------------------------------------


def draw(kind: str, p: Params) -> None:
    """Check the title, then run the legacy plotting function; call inside a group."""
    check_title(p.title, p.dpi)
    PLOTS[kind](p)


# The legacy functions made safe by plot_view, one view per output format.
PLOT_VIEWS = {
    fmt: plot_view(format=fmt, **VIEW_OPTIONS, **SAVE_OPTIONS.get(fmt, {}))(draw) for fmt in FORMATS
}


def plot_response(kind: str, fmt: str, p: Params) -> Response:
    """The image response for one plot."""
    response: Response = PLOT_VIEWS[fmt](kind, p)
    return response


def plot_bytes(kind: str, fmt: str, p: Params) -> bytes:
    """What /plot/<kind>.<fmt> serves for these parameters, rendered in this process."""
    return plot_response(kind, fmt, p).get_data()


def index_page() -> str:
    figures = "\n".join(
        f'<figure><img src="/plot/{kind}.png?seed={seed}&amp;width=4&amp;height=3" alt="{kind}" '
        f'onload="done(this, true)" onerror="done(this, false)">'
        f'<figcaption data-kind="{kind}">{kind}: loading</figcaption></figure>'
        for seed, kind in enumerate(PLOTS)
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>safeplot example</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
main {{ display: grid; grid-template-columns: repeat(4, 1fr); gap: 1em; }}
figure {{ margin: 0; }} img {{ width: 100%; border: 1px solid #ddd; }}
figcaption {{ font-size: 0.85em; color: #555; }}
</style></head>
<body><h1>safeplot example</h1>
<p id="status">loading {len(PLOTS)} plots&hellip;</p>
<main>
{figures}
</main>
<script>
let settled = 0, loaded = 0;
function done(img, ok) {{
  const caption = img.nextElementSibling;
  caption.textContent = ok
    ? caption.dataset.kind + ": loaded " + img.naturalWidth + "x" + img.naturalHeight
    : caption.dataset.kind + ": failed";
  settled += 1; loaded += ok ? 1 : 0;
  if (settled === {len(PLOTS)}) document.getElementById("status").textContent =
    loaded + "/" + settled + " plots loaded";
}}
</script>
</body></html>
"""


METHODS = ("GET", "HEAD")  # anything else is 405
URLS = Map(
    [
        Rule("/", endpoint="index", methods=METHODS),
        Rule("/plot/<kind>.<fmt>", endpoint="plot", methods=METHODS),
        Rule("/healthz", endpoint="healthz", methods=METHODS),
        Rule("/stats", endpoint="stats", methods=METHODS),
    ]
)


def open_figure_count() -> int | None:
    """Open pyplot figures in the process, or None if the lock is busy for a second."""
    if not safeplot.lock.acquire(timeout=1):
        return None
    try:
        return len(plt.get_fignums())
    finally:
        safeplot.lock.release()


def view_index(request: Request) -> Response:
    return Response(index_page(), mimetype="text/html")


def view_plot(request: Request, kind: str, fmt: str) -> Response:
    if kind not in PLOTS:
        raise NotFound(f"unknown plot kind {kind[:40]!r}; known: {', '.join(PLOTS)}")
    if fmt not in FORMATS:
        raise NotFound(f"unknown format {fmt[:20]!r}; known: {', '.join(FORMATS)}")
    params = parse_params(request.args.to_dict(flat=False))
    check_cost(kind, fmt, params)
    return plot_response(kind, fmt, params)


def view_healthz(request: Request) -> Response:
    return Response("ok\n", mimetype="text/plain")


def view_stats(request: Request) -> Response:
    body = {**safeplot.stats(), "open_figures": open_figure_count()}
    return Response(json.dumps(body), mimetype="application/json", headers={"Cache-Control": "no-store"})


VIEWS: dict[str, Callable[..., Response]] = {
    "index": view_index,
    "plot": view_plot,
    "healthz": view_healthz,
    "stats": view_stats,
}


@Request.application  # type: ignore[arg-type]
def app(request: Request) -> Response:
    """The WSGI application."""
    try:
        endpoint, values = URLS.bind_to_environ(request.environ).match()
        return VIEWS[endpoint](request, **values)
    except HTTPException as error:
        return error_response(error, request.environ)


def error_response(error: HTTPException, environ: dict[str, Any]) -> Response:
    """An HTTP error as one line of text/plain, keeping its headers (``Allow`` on a 405)."""
    status = error.code or 500
    headers = [(k, v) for k, v in error.get_headers(environ) if k.lower() not in ("content-type", "allow")]
    if status == 405:
        headers.append(("Allow", ", ".join(METHODS)))
    reason = " ".join(str(error.description or "").split())
    return Response(
        f"{status} {error.name}: {reason}\n", status=status, headers=headers, mimetype="text/plain"
    )


def serve(application: Any, host: str, port: int) -> None:
    """Serve a WSGI app with werkzeug's threaded server (never its debugger) until Ctrl+C."""
    server = make_server(host, port, application, threaded=True)
    print(f"safeplot example serving on http://{host}:{server.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="safeplot example plot server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    serve(app, args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
