"""Deterministic legacy-style pyplot drawings used by the tests and benchmarks."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backend_bases import FigureCanvasBase

KINDS = ("line", "scatter", "hist", "bar", "heatmap", "subplots", "mathtext", "styled")
FORMATS = ("png", "svg", "pdf")
# Formats embed a date and random ids unless told not to.
SAVE_KW = {
    "png": {},
    "svg": {"metadata": {"Date": None}},
    "pdf": {"metadata": {"CreationDate": None}},
}


def draw(kind: str, seed: int) -> None:
    """Draw one distinct plot on a new pyplot figure, the legacy way (module-level plt calls)."""
    rng = np.random.default_rng(seed)
    plt.rcParams["svg.hashsalt"] = "safeplot-tests"
    if kind == "styled":
        plt.style.use("ggplot")
    plt.rcParams["lines.linewidth"] = 1 + seed % 4
    plt.figure(figsize=(3, 2), dpi=60)
    if kind == "line":
        plt.plot(np.cumsum(rng.normal(size=50)), label=f"run {seed}")
        plt.legend()
    elif kind == "scatter":
        plt.scatter(rng.random(80), rng.random(80), c=rng.random(80), s=8)
    elif kind == "hist":
        plt.hist(rng.normal(size=300), bins=5 + seed % 20)
    elif kind == "bar":
        plt.bar(list("abcde"), rng.integers(1, 10, size=5))
    elif kind == "heatmap":
        plt.imshow(rng.random((12, 12)), cmap="viridis")
        plt.colorbar()
    elif kind == "subplots":
        for n in range(4):
            plt.subplot(2, 2, n + 1)
            plt.plot(rng.random(10) * (n + 1))
            plt.title(f"#{n}", fontsize=6)
    elif kind == "mathtext":
        plt.plot(rng.random(10))
        plt.title(rf"$\alpha_{{{seed}}} = \frac{{{seed}}}{{\sqrt{{2}}}}$")
    elif kind == "styled":
        plt.plot(rng.random(20), "o-")
    else:
        raise ValueError(kind)
    plt.title(f"{kind} {seed}", loc="left", fontsize=7)


def draw_and_save(kind: str, seed: int, fmt: str) -> bytes:
    """The whole legacy callback: draw, ``plt.savefig`` into a buffer, return the bytes."""
    draw(kind, seed)
    buffer = io.BytesIO()
    plt.savefig(buffer, format=fmt, **SAVE_KW[fmt])
    return buffer.getvalue()


# Raster saves whose bytes PIL encodes, with the options that change what it is given
# (webp needs matplotlib >= 3.6).
RASTER_SAVES: list[dict[str, object]] = [
    {"format": "png"},
    {"format": "png", "dpi": 90, "metadata": {"Title": "safeplot", "Software": None}},
    {"format": "png", "transparent": True, "bbox_inches": "tight", "pil_kwargs": {"compress_level": 9}},
    {"format": "jpeg"},
    {"format": "jpeg", "transparent": True, "pil_kwargs": {"quality": 60, "optimize": True}},
    {"format": "webp", "dpi": 50},
    {"format": "webp", "bbox_inches": "tight", "pil_kwargs": {"lossless": True}},
    {"format": "tiff"},
    {"format": "tiff", "transparent": True, "pil_kwargs": {"compression": "tiff_lzw"}},
]
RASTER_SAVES = [save for save in RASTER_SAVES if save["format"] in FigureCanvasBase.get_supported_filetypes()]


def raster_saves(kind: str, seed: int) -> list[bytes]:
    """``draw(kind, seed)`` saved with every one of RASTER_SAVES, each on a fresh figure."""
    outputs = []
    for options in RASTER_SAVES:
        draw(kind, seed)
        buffer = io.BytesIO()
        plt.savefig(buffer, **options)  # type: ignore[arg-type]
        plt.close()
        outputs.append(buffer.getvalue())
    return outputs
