"""A legacy Flask app that never imports safeplot, for ``safeplot-run``: ``/plot/<kind>/<seed>.png``
draws with pyplot and leaves its figure open (the ``styled`` kind switches the style); ``/stats``
reports what safeplot-run changed (read without touching pyplot's state)."""

from __future__ import annotations

import io
import sys

import matplotlib
import matplotlib.pyplot as plt
from flask import Flask, Response, jsonify
from matplotlib._pylab_helpers import Gcf

from tests.plots import draw

matplotlib.use("Agg")  # as old apps do, at import

app = Flask(__name__)


@app.route("/plot/<kind>/<int:seed>.png")
def plot(kind: str, seed: int) -> Response:
    draw(kind, seed)
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return Response(buffer.getvalue(), mimetype="image/png")


@app.route("/stats")
def stats() -> Response:
    return jsonify(
        safeplot_imported="safeplot" in sys.modules,
        middleware=type(app.wsgi_app).__module__ + "." + type(app.wsgi_app).__name__,
        open_figures=len(Gcf.figs),
    )
