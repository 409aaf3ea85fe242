"""Deterministic legacy-style pyplot drawings used by the tests and benchmarks."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import numpy as np

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
