"""A Dash app whose callback draws with pyplot, under the WSGI middleware (gunicorn gthread).

Dash turns ``use_async`` on when asgiref can be imported (it comes with
Django): its callbacks then run through asgiref's ``async_to_sync``, on an
event loop in another thread, with the request's context.  The callback is
unchanged legacy code: it returns the figure as a data URI for an ``html.Img``.
"""

from __future__ import annotations

import base64
import io
import json

import matplotlib.pyplot as plt
from dash import Dash, Input, Output, dcc, html
from matplotlib._pylab_helpers import Gcf

import safeplot
from safeplot.wsgi import SafeplotMiddleware
from tests.plots import draw

app = Dash(__name__)
app.layout = html.Div(
    [dcc.Input(id="kind", value="line"), dcc.Input(id="seed", value=0), html.Img(id="plot")]
)


@app.callback(Output("plot", "src"), Input("kind", "value"), Input("seed", "value"))
def plot(kind: str, seed: int) -> str:
    draw(kind, int(seed))
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@app.server.route("/stats")
def stats() -> str:
    return json.dumps({**safeplot.stats(), "open_figures": len(Gcf.figs), "use_async": app._use_async})


app.server.wsgi_app = SafeplotMiddleware(app.server.wsgi_app)  # type: ignore[method-assign]
server = app.server
