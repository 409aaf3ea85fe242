"""The example server's cost limits: no request they allow holds the lock for long.

For every kind and format of examples/wsgi_app.py, renders the costliest
requests its limits allow (the most points at the default size, the largest
image at the default number of points, and half of the points with the
largest image allowed for them) and a default request (line, png, n=200),
in interleaved rounds. Prints each request's median time as a ratio of the
default's median; exits 1 if any exceeds --max-ratio.

    python benchmarks/bench_limits.py [--rounds 3] [--max-ratio 20] [--smoke]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

from _machine import header  # benchmarks/ is on sys.path when run as a script

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples import wsgi_app
from examples.wsgi_app import COST_BUDGET, MAX_DPI, MAX_INCHES, MAX_PIXELS, MAX_POINTS, Params

DEFAULT = ("line", "png", Params())
SMOKE = [("scatter", "svg"), ("line", "png")]


def allowed(kind: str, fmt: str, p: Params) -> bool:
    pixels = p.width * p.height * p.dpi**2
    return pixels <= MAX_PIXELS and wsgi_app.request_cost(kind, fmt, p) <= COST_BUDGET


def largest(kind: str, fmt: str, make: dict[str, object], grow: str, low: float, high: float) -> Params:
    """The largest value of ``grow`` in [low, high] that the limits allow, the rest as in ``make``."""
    integer = grow in ("n", "dpi")
    for _ in range(40):
        middle = (low + high) / 2
        candidate = dataclasses.replace(Params(), **make, **{grow: int(middle) if integer else middle})
        if allowed(kind, fmt, candidate):
            low = middle
        else:
            high = middle
    return dataclasses.replace(Params(), **make, **{grow: int(low) if integer else low})


def largest_square(kind: str, fmt: str, n: int) -> Params:
    """The largest square image at the highest resolution that the limits allow with n points."""
    side = largest(kind, fmt, {"n": n, "dpi": MAX_DPI}, "width", 0.5, MAX_INCHES)
    square = dataclasses.replace(side, height=side.width)
    while not allowed(kind, fmt, square):
        square = dataclasses.replace(square, width=square.width * 0.99, height=square.height * 0.99)
    return square


def costliest(kind: str, fmt: str) -> dict[str, Params]:
    """The corners of what the limits allow for one kind and format."""
    most_points = largest(kind, fmt, {}, "n", 1, MAX_POINTS)
    return {
        "most points": most_points,
        "largest image": largest_square(kind, fmt, Params().n),
        "half points, largest": largest_square(kind, fmt, max(1, most_points.n // 2)),
    }


def seconds(kind: str, fmt: str, p: Params) -> float:
    started = time.perf_counter()
    wsgi_app.plot_bytes(kind, fmt, p)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-ratio", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true", help="two kinds, one round, no verdict")
    args = parser.parse_args(argv)
    rounds = 1 if args.smoke else args.rounds
    pairs = SMOKE if args.smoke else [(kind, fmt) for kind in wsgi_app.PLOTS for fmt in wsgi_app.FORMATS]
    cases = [(kind, fmt, name, p) for kind, fmt in pairs for name, p in costliest(kind, fmt).items()]

    print(header(f"{rounds} rounds, {len(cases)} requests at the limits, budget {COST_BUDGET:g}x"))
    seconds(*DEFAULT)  # warm caches (fonts, mathtext) before timing anything
    default_times: list[float] = []
    times: dict[int, list[float]] = {}
    for _ in range(rounds):
        for index, (kind, fmt, _, p) in enumerate(cases):
            default_times.append(seconds(*DEFAULT))
            times.setdefault(index, []).append(seconds(kind, fmt, p))
    default = statistics.median(default_times)
    print(f"default request (line, png, n=200, 5x3.5 in at 80 dpi): {default * 1000:.1f} ms")
    print(
        f"{'kind':<10} {'fmt':<5} {'corner':<22} {'n':>7} {'inches':>11} {'dpi':>4} {'model':>6} {'ratio':>6}"
    )
    worst = 0.0
    for index, (kind, fmt, name, p) in enumerate(cases):
        ratio = statistics.median(times[index]) / default
        worst = max(worst, ratio)
        model = wsgi_app.request_cost(kind, fmt, p)
        size = f"{p.width:.1f}x{p.height:.1f}"
        print(f"{kind:<10} {fmt:<5} {name:<22} {p.n:>7} {size:>11} {p.dpi:>4} {model:6.1f} {ratio:6.1f}")
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    ok = worst <= args.max_ratio
    verdict = "ok" if ok else "FAIL"
    print(f"costliest allowed request: {worst:.1f}x a default one (max {args.max_ratio:g}): {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
