"""A WSGI site for gunicorn --preload whose master keeps a thread drawing in groups.

The thread loops on groups that set ``dark_background``, a line width of 7 and
open a figure, and spends nearly all its time inside them, so gunicorn forks
its workers from a master in the middle of a group.  Each worker serves
``/plot/<seed>.png``, a legacy plot, under the middleware.
"""

from __future__ import annotations

import os
import threading

import matplotlib.pyplot as plt
from werkzeug.wrappers import Request, Response

import safeplot
from safeplot.wsgi import SafeplotMiddleware
from tests.plots import draw_and_save


def _draw_in_groups_for_ever() -> None:
    pause = threading.Event()
    while True:
        with safeplot.locked():
            plt.style.use("dark_background")
            plt.rcParams["lines.linewidth"] = 7
            plt.figure()
            plt.plot([3, 1, 2])
            pause.wait(0.02)  # inside the group: the master is in one nearly all the time
        pause.wait(0.0005)


threading.Thread(target=_draw_in_groups_for_ever, name="master-groups", daemon=True).start()


def _plots(environ: dict[str, object], start_response: object) -> object:
    request = Request(environ)  # type: ignore[arg-type]
    seed = int(request.path.rsplit("/", 1)[1].split(".")[0])
    response = Response(draw_and_save("line", seed, "png"), mimetype="image/png")
    response.headers["X-Worker"] = str(os.getpid())
    return response(environ, start_response)  # type: ignore[arg-type]


app = SafeplotMiddleware(_plots)
