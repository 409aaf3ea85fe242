"""Throughput of legacy pyplot under safeplot on 1, 2 and 4 threads, as a ratio to hand-written OO code.

Variants, all rendering the same line and scatter plots (10 000 points each,
PNG) and giving the same bytes:
    oo        object-oriented code: Figure + Agg canvas, no lock at all
    safeplot  the legacy pyplot code in @safeplot.locked (PIL encodes with the lock released)
    held      the same inside `with safeplot.lock:` too, which keeps the lock held
              through the encoding (as a group does when the encode window is off)

For each image size and thread count, the variants run in interleaved rounds
(rotating order); each measurement starts the threads together on a barrier
and times a fixed number of renders.  Prints renders/s (medians of the rounds)
and safeplot/oo; exits 1 if safeplot/oo on 2 threads is below --min-ratio.

    python benchmarks/bench_threads.py [--rounds 5] [--renders 6] [--min-ratio 0.95] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import threading
import time
from collections.abc import Callable

import matplotlib.pyplot as plt
import numpy as np
from _machine import header  # benchmarks/ is on sys.path when run as a script
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import safeplot

SIZES = {"640x480": (6.4, 4.8), "1600x1200": (16.0, 12.0)}
POINTS = 10_000
KINDS = ("line", "scatter")


def data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random(POINTS), rng.normal(size=POINTS).cumsum()


def oo(kind: str, size: str, seed: int) -> bytes:
    """What a careful engineer writes without pyplot."""
    x, y = data(seed)
    fig = Figure(figsize=SIZES[size], dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if kind == "line":
        ax.plot(y, linewidth=0.8)
    else:
        ax.scatter(x, y, s=3)
    ax.set_title(f"{kind} {seed}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def draw_legacy(kind: str, size: str, seed: int) -> bytes:
    """The same plot, written the old way."""
    x, y = data(seed)
    plt.figure(figsize=SIZES[size], dpi=100)
    if kind == "line":
        plt.plot(y, linewidth=0.8)
    else:
        plt.scatter(x, y, s=3)
    plt.title(f"{kind} {seed}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return buffer.getvalue()


@safeplot.locked
def with_safeplot(kind: str, size: str, seed: int) -> bytes:
    return draw_legacy(kind, size, seed)


@safeplot.locked
def lock_held(kind: str, size: str, seed: int) -> bytes:
    with safeplot.lock:  # a plain hold inside the group: no encode window
        return draw_legacy(kind, size, seed)


Render = Callable[[str, str, int], bytes]
VARIANTS: dict[str, Render] = {"oo": oo, "safeplot": with_safeplot, "held": lock_held}


def renders_per_second(render: Render, size: str, threads: int, each: int) -> float:
    """``threads`` threads started together, each rendering ``each`` plots; total renders per second."""
    start = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        start.wait()
        for job in range(each):
            render(KINDS[(index + job) % len(KINDS)], size, index * 100 + job)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return threads * each / (time.perf_counter() - began)


def check_same_bytes(size: str) -> None:
    for kind in KINDS:
        outputs = {name: render(kind, size, 7) for name, render in VARIANTS.items()}
        if len(set(outputs.values())) != 1:
            raise SystemExit(f"{kind} {size}: the variants do not render the same bytes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-ratio", type=float, default=0.95)
    parser.add_argument("--renders", type=int, default=6, help="renders a thread a measurement")
    parser.add_argument("--smoke", action="store_true", help="1 round, 640x480, 1 and 2 threads, no verdict")
    args = parser.parse_args(argv)
    sizes = ["640x480"] if args.smoke else list(SIZES)
    thread_counts = [1, 2] if args.smoke else [1, 2, 4]
    rounds = 1 if args.smoke else args.rounds
    each = 1 if args.smoke else args.renders

    print(header(f"{rounds} rounds, {each} renders a thread a measurement"))
    columns = f"{'oo r/s':>8} {'safeplot r/s':>13} {'held r/s':>9} {'safeplot/oo':>12}"
    print(f"{'size':<10} {'threads':>7} {columns}")
    worst_at_two = float("inf")
    for size in sizes:
        check_same_bytes(size)
        for threads in thread_counts:
            samples: dict[str, list[float]] = {name: [] for name in VARIANTS}
            names = list(VARIANTS)
            for round_ in range(rounds):
                for name in names[round_ % 3 :] + names[: round_ % 3]:
                    samples[name].append(renders_per_second(VARIANTS[name], size, threads, each))
            rate = {name: statistics.median(values) for name, values in samples.items()}
            ratio = rate["safeplot"] / rate["oo"]
            if threads == 2:
                worst_at_two = min(worst_at_two, ratio)
            print(
                f"{size:<10} {threads:>7} {rate['oo']:8.1f} {rate['safeplot']:13.1f} "
                f"{rate['held']:9.1f} {ratio:12.2f}"
            )
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    ok = worst_at_two >= args.min_ratio
    verdict = "ok" if ok else "FAIL"
    print(f"worst safeplot/oo on 2 threads {worst_at_two:.2f} (min {args.min_ratio}): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
