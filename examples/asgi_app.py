"""A FastAPI app whose old pyplot endpoints are made safe by one line, served by uvicorn.

Run it:      python examples/asgi_app.py [--host 127.0.0.1] [--port 8000]
Or:          uvicorn examples.asgi_app:app --port 8000

Routes:
    /                       a page of plots, fetched concurrently by the browser
    /legacy/<kind>.png      unchanged legacy `def` endpoints (plt calls, savefig into a Response,
                            no plt.close); SafeplotMiddleware alone makes them safe
    /report/<seed>.png      an `async def` endpoint awaiting safeplot.asgi.render_callback, rendered
                            by a safeplot.RenderPool of worker processes (every core, a hard time
                            limit) started and stopped with the app (its lifespan)
    /healthz                `async def`, "ok", never touches pyplot
    /stats                  JSON of safeplot.stats() and the number of open figures

A plotting request waits at most 10 s for the plotting lock, then answers 503
(SAFEPLOT_TIMEOUT in the environment sets another limit); a report that renders
for longer than 30 s in the pool answers 503 too.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

import safeplot
from safeplot.asgi import SafeplotMiddleware, render_callback

RAW_TIMEOUT = os.environ.get("SAFEPLOT_TIMEOUT", "10").strip()
TIMEOUT = None if RAW_TIMEOUT.lower() in ("", "none") else float(RAW_TIMEOUT)  # none: wait forever
LEGACY_KINDS = ("line", "bars", "scatter", "dark")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """A pool of worker processes for the reports, for the app's lifetime."""
    with safeplot.RenderPool(time_limit=30) as pool:  # one worker per usable CPU
        app.state.pool = pool
        yield


app = FastAPI(title="safeplot example", lifespan=lifespan)
app.add_middleware(SafeplotMiddleware, timeout=TIMEOUT)  # the one added line


# --- legacy code: written before safeplot, left as it was -----------------------------------------


@app.get("/legacy/{kind}.png")
def legacy_plot(kind: str) -> Response:
    """A plain def endpoint: FastAPI runs it in its thread pool, where pyplot would race."""
    if kind not in LEGACY_KINDS:
        raise HTTPException(404, f"unknown plot {kind!r}")
    rng = np.random.default_rng(LEGACY_KINDS.index(kind))
    if kind == "dark":
        plt.style.use("dark_background")  # leaks into every later request without safeplot
    plt.figure(figsize=(4, 3), dpi=80)
    if kind == "bars":
        plt.bar(["north", "south", "east", "west"], rng.integers(5, 50, size=4))
    elif kind == "scatter":
        plt.scatter(rng.normal(size=300), rng.normal(size=300), s=6, alpha=0.6)
    else:
        plt.plot(rng.normal(size=400).cumsum())
    plt.title(f"legacy {kind}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return Response(buffer.getvalue(), media_type="image/png")


def weekly_report(seed: int) -> None:
    """An old plotting callback from elsewhere in the codebase."""
    rng = np.random.default_rng(seed)
    plt.figure(figsize=(4, 3), dpi=80)
    plt.hist(rng.normal(size=1000), bins=30, color="tab:green")
    plt.title(f"report #{seed}")


# --- async endpoints --------------------------------------------------------------------------------


@app.get("/report/{seed}.png")
async def report(seed: int, request: Request) -> Response:
    """An async endpoint: the callback runs in a worker process, the event loop never waits."""
    # A client that runs no lifespan (a bare test transport) has no pool: a worker thread renders.
    png = await render_callback(weekly_report, seed, pool=getattr(request.app.state, "pool", None))
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})


@app.get("/healthz")
async def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok\n")


@app.get("/stats")
def stats() -> dict[str, Any]:
    open_figures = None
    if safeplot.lock.acquire(timeout=1):  # a def endpoint: waiting here does not stall the loop
        try:
            open_figures = len(plt.get_fignums())
        finally:
            safeplot.lock.release()
    return {**safeplot.stats(), "open_figures": open_figures}


@app.get("/", response_class=HTMLResponse)
async def index() -> str:
    images = [f"/legacy/{kind}.png" for kind in LEGACY_KINDS] + [f"/report/{seed}.png" for seed in (1, 2)]
    figures = "\n".join(
        f'<figure><img src="{src}" alt="{src}" onload="done(true)" onerror="done(false)">'
        f"<figcaption>{src}</figcaption></figure>"
        for src in images
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>safeplot FastAPI example</title>
<style>main {{ display: grid; grid-template-columns: repeat(3, 1fr); gap: 1em; }}
img {{ width: 100%; }} body {{ font-family: sans-serif; }}</style></head>
<body><h1>safeplot FastAPI example</h1><p id="status">loading {len(images)} plots&hellip;</p>
<main>
{figures}
</main>
<script>
let settled = 0, loaded = 0;
function done(ok) {{
  settled += 1; loaded += ok ? 1 : 0;
  if (settled === {len(images)}) document.getElementById("status").textContent =
    loaded + "/" + settled + " plots loaded";
}}
</script></body></html>
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="safeplot FastAPI example")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
