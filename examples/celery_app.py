"""Plots rendered by Celery workers: a web view enqueues a report, then answers with its image.

Start Redis, a worker and the web app (each in its own terminal):

    redis-server --port 6379 --save ''
    python examples/celery_app.py worker            # or: celery -A examples.celery_app worker -P threads
    python examples/celery_app.py web --port 8000

``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``) names the broker and the
result backend.  Routes of the web app:

    /                               a page with a link per region
    /reports/new?region=<region>    enqueues a report, answers 303 to its page
    /reports/<id>.png               the image once ready; 202 with Retry-After while it renders
    /healthz                        "ok"

The task is legacy pyplot code (module-level ``plt`` calls, a style switched
for good, no ``plt.close``); ``task_cls="safeplot.celery:SafeplotTask"`` alone
makes every run of it a group, on any worker pool.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import os
import sys
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from celery import Celery
from celery.result import AsyncResult
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

import safeplot

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REGIONS = ("north", "south", "east", "west")

app = Celery("celery_app", broker=REDIS_URL, backend=REDIS_URL, task_cls="safeplot.celery:SafeplotTask")
app.conf.update(
    safeplot_timeout=30,  # a run that waits longer for the lock fails with safeplot.LockTimeout
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)


# Named, so that a worker started as `python examples/celery_app.py worker` (the module is
# __main__) and one started by `celery -A examples.celery_app worker` know it by one name.
@app.task(name="celery_app.sales_report", autoretry_for=(safeplot.LockTimeout,), max_retries=3)
def sales_report(region: str) -> str:
    """A legacy report: the PNG, base64-encoded (the result backend carries JSON)."""
    rng = np.random.default_rng(REGIONS.index(region))
    if region == "north":
        plt.style.use("dark_background")  # "for good", as old code thinks: undone after the run
    plt.figure(figsize=(6, 3.5), dpi=80)
    plt.plot(np.cumsum(rng.normal(size=90)), label="sales")
    plt.bar(range(0, 90, 10), rng.integers(5, 20, size=9), width=6, alpha=0.4, label="orders")
    plt.title(f"Sales, {region}")
    plt.legend(loc="upper left")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


PAGE = """<!doctype html><title>Reports</title><h1>Sales reports</h1>
<ul>{links}</ul>
<p>Each link enqueues a report on a Celery worker; its page shows the image once it is ready.</p>"""


def web(environ: dict[str, Any], start_response: Any) -> Any:
    """The web app: enqueue a report, answer with its image once the worker has rendered it."""
    request = Request(environ)
    path = request.path
    if path == "/":
        links = "".join(f'<li><a href="/reports/new?region={r}">{r}</a></li>' for r in REGIONS)
        response = Response(PAGE.format(links=links), mimetype="text/html")
    elif path == "/healthz":
        response = Response("ok\n", mimetype="text/plain")
    elif path == "/reports/new":
        region = request.args.get("region", "")
        if region not in REGIONS:
            response = Response(f"region must be one of {', '.join(REGIONS)}\n", 400, mimetype="text/plain")
        else:
            result = sales_report.delay(region)
            response = Response(status=303, headers={"Location": f"/reports/{result.id}.png"})
    elif path.startswith("/reports/") and path.endswith(".png"):
        result = AsyncResult(path[len("/reports/") : -len(".png")], app=app)
        if result.successful():
            response = Response(base64.b64decode(result.get()), mimetype="image/png")
        elif result.failed():
            response = Response(f"the report failed: {result.result!r}\n", 500, mimetype="text/plain")
        else:  # pending (or an id nobody enqueued): ask again soon
            response = Response("rendering\n", 202, mimetype="text/plain", headers={"Retry-After": "1"})
    else:
        response = Response("not found\n", 404, mimetype="text/plain")
    return response(environ, start_response)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="safeplot Celery example: the web app or a worker")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("web", help="serve the web app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    work = commands.add_parser("worker", help="run a worker")
    work.add_argument("--pool", default="threads", help="a Celery pool: prefork, threads, solo, gevent...")
    work.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args(argv)
    if args.command == "worker":
        app.worker_main(["worker", "-P", args.pool, "-c", str(args.concurrency), "-l", "info"])
        return 0
    server = make_server(args.host, args.port, web, threaded=True)
    print(f"serving on http://{args.host}:{server.port}/ (reports from {REDIS_URL})", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
