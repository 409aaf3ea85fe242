"""The example server's plots written object-oriented, without pyplot and without a lock.

The baseline of bench_http.py: what a full rewrite of the legacy code would
serve.  Same routes and parameters as examples/wsgi_app.py for the kinds
below, and the same bytes.

    python benchmarks/oo_app.py [--port 8001]
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.wsgi_app import Params, parse_params, serve


def new_figure(p: Params) -> tuple[Figure, Any, np.random.Generator]:
    fig = Figure(figsize=(p.width, p.height), dpi=p.dpi)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(), np.random.default_rng(p.seed)


def line_plot(p: Params) -> Figure:
    fig, ax, rng = new_figure(p)
    x = np.linspace(0, 10, p.n)
    ax.plot(x, np.sin(x) + rng.normal(scale=0.2, size=p.n), label="signal")
    ax.plot(x, np.sin(x), "--", label="model")
    ax.legend(loc="upper right")
    ax.set_title(p.title or "Line")
    return fig


def scatter_plot(p: Params) -> Figure:
    fig, ax, rng = new_figure(p)
    ax.scatter(rng.normal(size=p.n), rng.normal(size=p.n), c=rng.random(p.n), s=6, cmap="plasma")
    ax.set_title(p.title or "Scatter")
    return fig


def bar_plot(p: Params) -> Figure:
    fig, ax, rng = new_figure(p)
    ax.bar(["north", "south", "east", "west", "centre"], rng.integers(5, 50, size=5))
    ax.set_ylabel("orders")
    ax.set_title(p.title or "Bar")
    return fig


def heatmap_plot(p: Params) -> Figure:
    fig, ax, rng = new_figure(p)
    side = max(2, min(200, int(p.n**0.5)))
    image = ax.imshow(rng.random((side, side)), cmap="viridis", aspect="auto")
    fig.colorbar(image, label="intensity")
    ax.set_title(p.title or "Heatmap")
    return fig


def pie_plot(p: Params) -> Figure:
    fig, ax, rng = new_figure(p)
    ax.pie(rng.integers(1, 10, size=5), labels=list("ABCDE"), autopct="%1.0f%%")
    ax.set_title(p.title or "Pie")
    return fig


PLOTS: dict[str, Callable[[Params], Figure]] = {
    "line": line_plot,
    "scatter": scatter_plot,
    "bar": bar_plot,
    "heatmap": heatmap_plot,
    "pie": pie_plot,
}
URLS = Map([Rule("/plot/<kind>.png", endpoint="plot")])


@Request.application  # type: ignore[arg-type]
def app(request: Request) -> Response:
    try:
        _, values = URLS.bind_to_environ(request.environ).match()
        draw = PLOTS.get(values["kind"])
        if draw is None:
            raise NotFound()
        buffer = io.BytesIO()
        draw(parse_params(request.args.to_dict(flat=False))).savefig(buffer, format="png")
        return Response(buffer.getvalue(), mimetype="image/png", headers={"Cache-Control": "no-store"})
    except HTTPException as error:
        return error.get_response(request.environ)  # type: ignore[return-value]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="object-oriented baseline plot server")
    parser.add_argument("--port", type=int, default=8001)
    serve(app, "127.0.0.1", parser.parse_args().port)
