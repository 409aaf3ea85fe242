"""A legacy FastAPI app that never imports safeplot, for ``safeplot-run --middleware uvicorn``."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
from fastapi import FastAPI
from fastapi.responses import Response

from tests.plots import draw

app = FastAPI()


@app.get("/plot/{kind}/{seed}.png")
def plot(kind: str, seed: int) -> Response:
    draw(kind, seed)
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return Response(buffer.getvalue(), media_type="image/png")
