"""The FastAPI app the ASGI tests serve: legacy endpoints, and endpoints that hold the lock on request.

A test holds the lock with ``/hold`` (in a thread of its own), learns that it
is held from ``/wait/held`` and ends the hold with ``/set/release``.  Events
live in the server process, so the sequence needs no sleeps.
"""

from __future__ import annotations

import asyncio
import io
import threading
from typing import Any

import matplotlib.pyplot as plt
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

import safeplot
from safeplot.asgi import SafeplotMiddleware, render_callback
from tests.gate import Gate
from tests.plots import draw, draw_and_save

EVENTS = {"held": threading.Event()}
RELEASE = Gate()  # waited for at work, so that the hold is not set aside meanwhile
WAIT = 30.0

app = FastAPI()
app.add_middleware(SafeplotMiddleware)  # its timeout: SAFEPLOT_TIMEOUT, safeplot's default


@app.get("/legacy/{seed}.png")
def legacy(seed: int) -> Response:
    draw("line", seed)
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return Response(buffer.getvalue(), media_type="image/png")


@app.get("/callback/{seed}.png")
async def callback(seed: int) -> Response:
    return Response(await render_callback(draw, "bar", seed), media_type="image/png")


@app.get("/gather/{seed}.bin")
async def gather(seed: int) -> Response:
    """Two legacy helpers in the thread pool and two callbacks, all at once, for one request.

    None changes the style for good: their threads share the request's group, in any order.
    """
    parts = await asyncio.gather(
        run_in_threadpool(draw_and_save, "scatter", seed, "png"),
        run_in_threadpool(draw_and_save, "line", seed, "png"),
        render_callback(draw, "hist", seed),
        render_callback(draw, "heatmap", seed),
    )
    return Response(b"|".join(parts), media_type="application/octet-stream")


@app.get("/executor/{kind}/{seed}.png")
async def executor(kind: str, seed: int) -> Response:
    """A legacy plot in the loop's executor, without the request's context."""
    loop = asyncio.get_running_loop()
    return Response(
        await loop.run_in_executor(None, draw_and_save, kind, seed, "png"), media_type="image/png"
    )


@app.get("/abandon/{seed}.png")
async def abandon(seed: int) -> Response:
    """A legacy plot awaited for half a second at most: its thread may go on after the answer."""
    try:
        png = await asyncio.wait_for(asyncio.to_thread(draw_and_save, "line", seed, "png"), 0.5)
    except asyncio.TimeoutError:
        return PlainTextResponse("too slow\n", status_code=504)
    return Response(png, media_type="image/png")


@app.get("/on-the-loop")
async def on_the_loop() -> Response:
    plt.figure()  # pyplot on the event loop: refused, never waits
    return Response(b"unreachable")


@app.get("/hold")
def hold() -> PlainTextResponse:
    RELEASE.close()
    with safeplot.locked():
        EVENTS["held"].set()
        released = RELEASE.wait(WAIT)
        EVENTS["held"].clear()
    return PlainTextResponse(f"released={released}\n")


@app.get("/wait/{name}")
def wait(name: str) -> PlainTextResponse:
    return PlainTextResponse(f"{name}={EVENTS[name].wait(WAIT)}\n")


@app.get("/set/{name}")
async def set_event(name: str) -> PlainTextResponse:
    if name == "release":
        RELEASE.open()
    else:
        EVENTS[name].set()
    return PlainTextResponse(f"{name} set\n")


@app.get("/healthz")
async def healthz() -> PlainTextResponse:
    await asyncio.sleep(0)
    return PlainTextResponse("ok\n")


@app.get("/stats")
def stats() -> dict[str, Any]:
    body: dict[str, Any] = dict(safeplot.stats())
    if safeplot.lock.acquire(timeout=5):
        try:
            body["open_figures"] = len(plt.get_fignums())
        finally:
            safeplot.lock.release()
    return body
