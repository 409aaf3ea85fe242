"""Render time of legacy pyplot code through safeplot, as a ratio to hand-written OO code.

For each plot kind, in one process, interleaved per round (A, B, C in a
rotating order), median of the rounds:
    A  hand-written object-oriented code: Figure + Agg canvas, fig.savefig
    B  raw pyplot: plt.figure ... plt.savefig ... plt.close, as stock matplotlib does it
    C  the same pyplot code inside safeplot.locked()
Prints the medians and the ratios B/A and C/A; exits 1 if any C/A exceeds --max-ratio.

    python benchmarks/bench_render.py [--rounds 15] [--max-ratio 1.05] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from _machine import header  # benchmarks/ is on sys.path when run as a script
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import safeplot

SIZE = {"figsize": (6.4, 4.8), "dpi": 100}
STOCK_SAVEFIG: Callable[..., Any] = getattr(plt.savefig, "__wrapped__", plt.savefig)


def data(kind: str) -> dict[str, Any]:
    rng = np.random.default_rng(42)
    return {
        "line": {"y": rng.normal(size=1000).cumsum()},
        "scatter": {"x": rng.random(10_000), "y": rng.random(10_000), "c": rng.random(10_000)},
        "histogram": {"values": rng.normal(size=50_000)},
        "imshow": {"image": rng.random((200, 200))},
        "subplots": {"series": [rng.normal(size=200).cumsum() for _ in range(4)]},
    }[kind]


def draw_oo(kind: str, d: dict[str, Any]) -> bytes:
    """A: what a careful engineer writes without pyplot."""
    fig = Figure(**SIZE)
    FigureCanvasAgg(fig)
    if kind == "line":
        ax = fig.subplots()
        ax.plot(d["y"])
        ax.set_title("line")
    elif kind == "scatter":
        ax = fig.subplots()
        ax.scatter(d["x"], d["y"], c=d["c"], s=4)
    elif kind == "histogram":
        ax = fig.subplots()
        ax.hist(d["values"], bins=50)
    elif kind == "imshow":
        ax = fig.subplots()
        image = ax.imshow(d["image"], cmap="viridis")
        fig.colorbar(image, ax=ax)
    elif kind == "subplots":
        for i, (ax, series) in enumerate(zip(fig.subplots(2, 2).flat, d["series"])):
            ax.plot(series)
            ax.set_title(f"panel {i}")
            ax.text(0.5, 0.5, f"n = {len(series)}", transform=ax.transAxes)
        fig.suptitle("subplots")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def draw_pyplot(kind: str, d: dict[str, Any], savefig: Callable[..., Any]) -> bytes:
    """B and C: the same plot as old code writes it with pyplot."""
    plt.figure(**SIZE)
    if kind == "line":
        plt.plot(d["y"])
        plt.title("line")
    elif kind == "scatter":
        plt.scatter(d["x"], d["y"], c=d["c"], s=4)
    elif kind == "histogram":
        plt.hist(d["values"], bins=50)
    elif kind == "imshow":
        plt.imshow(d["image"], cmap="viridis")
        plt.colorbar()
    elif kind == "subplots":
        for i, series in enumerate(d["series"]):
            plt.subplot(2, 2, i + 1)
            plt.plot(series)
            plt.title(f"panel {i}")
            plt.text(0.5, 0.5, f"n = {len(series)}", transform=plt.gca().transAxes)
        plt.suptitle("subplots")
    buffer = io.BytesIO()
    savefig(buffer, format="png")
    plt.close()
    return buffer.getvalue()


def raw_pyplot(kind: str, d: dict[str, Any]) -> bytes:
    return draw_pyplot(kind, d, STOCK_SAVEFIG)


def through_safeplot(kind: str, d: dict[str, Any]) -> bytes:
    with safeplot.locked():
        return draw_pyplot(kind, d, plt.savefig)


VARIANTS: dict[str, Callable[[str, dict[str, Any]], bytes]] = {
    "A oo": draw_oo,
    "B pyplot": raw_pyplot,
    "C safeplot": through_safeplot,
}
KINDS = ("line", "scatter", "histogram", "imshow", "subplots")


def measure(kinds: tuple[str, ...], rounds: int) -> dict[str, dict[str, float]]:
    """Median seconds per kind and variant; checks B and C give A's bytes."""
    medians: dict[str, dict[str, float]] = {}
    for kind in kinds:
        d = data(kind)
        outputs = {name: run(kind, d) for name, run in VARIANTS.items()}  # warm-up
        if len(set(outputs.values())) != 1:
            raise SystemExit(f"{kind}: the variants do not render the same bytes")
        times: dict[str, list[float]] = {name: [] for name in VARIANTS}
        names = list(VARIANTS)
        for round_ in range(rounds):
            order = names[round_ % 3 :] + names[: round_ % 3]
            for name in order:
                started = time.perf_counter()
                VARIANTS[name](kind, d)
                times[name].append(time.perf_counter() - started)
        medians[kind] = {name: statistics.median(values) for name, values in times.items()}
    return medians


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--max-ratio", type=float, default=1.05)
    parser.add_argument("--smoke", action="store_true", help="1 round of two kinds, no verdict")
    args = parser.parse_args(argv)
    kinds = KINDS[:2] if args.smoke else KINDS
    rounds = 1 if args.smoke else args.rounds

    print(header(f"{rounds} rounds"))
    medians = measure(kinds, rounds)
    print(f"{'kind':<10} {'A oo ms':>8} {'B pyplot ms':>12} {'C safeplot ms':>14} {'B/A':>6} {'C/A':>6}")
    worst = 0.0
    for kind, m in medians.items():
        a, b, c = m["A oo"], m["B pyplot"], m["C safeplot"]
        worst = max(worst, c / a)
        print(f"{kind:<10} {a * 1e3:8.1f} {b * 1e3:12.1f} {c * 1e3:14.1f} {b / a:6.2f} {c / a:6.2f}")
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    verdict = "ok" if worst <= args.max_ratio else "FAIL"
    print(f"worst C/A {worst:.3f} (max {args.max_ratio}): {verdict}")
    return 0 if worst <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
