"""Cost the hooks (of the guard and the middleware) add to calls made with the lock held.

Times calls inside a locked() group with the hooks off and on
(guard("warn")), interleaved in batches, median batch per call:
    plt.gcf()           one hooked pyplot function
    plt.xlim()          a plotting function: reaches two hooked functions (gca, gcf)
    rcParams[key]       a read of rcParams (hooked for the middleware's first touch)
    Line2D()            making an artist (hooked likewise; reads rcParams too)
    rc_context()        entering and leaving matplotlib.rc_context
    render              a whole 640x480 line plot saved as PNG: thousands of the above
Prints the added microseconds per call and the render's ratio; exits 1 if a
call through one or two hooks gains more than --max-us or the render more than --max-render-ratio.

    python benchmarks/bench_guard.py [--rounds 15] [--batch 5000] [--max-us 2]
                                     [--max-render-ratio 1.1] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable

import matplotlib
import matplotlib.pyplot as plt
from _machine import header  # benchmarks/ is on sys.path when run as a script
from matplotlib.lines import Line2D

import safeplot


def enter_rc_context() -> None:
    with matplotlib.rc_context():
        pass


def render() -> None:
    fig = plt.figure(figsize=(8, 6), dpi=80)
    plt.plot(range(1000), [i % 37 for i in range(1000)])
    plt.title("render")
    plt.savefig(io.BytesIO(), format="png")
    plt.close(fig)


# name -> (call, how many of them in a batch, as a fraction of --batch)
CALLS: dict[str, tuple[Callable[[], object], float]] = {
    "plt.gcf()": (plt.gcf, 1.0),
    "plt.xlim()": (plt.xlim, 1.0),
    "rcParams[key]": (lambda: matplotlib.rcParams["lines.linewidth"], 1.0),
    "Line2D()": (lambda: Line2D([], []), 0.2),
    "rc_context()": (enter_rc_context, 0.02),
    "render": (render, 0.0004),
}

# Calls that pass one or two hooks: --max-us applies to them. The others pass
# many (an artist reads ~30 rcParams; rc_context writes back ~300).
SINGLE_HOOKED_CALLS = ("plt.gcf()", "plt.xlim()", "rcParams[key]")


def per_call(call: Callable[[], object], batch: int) -> float:
    started = time.perf_counter()
    for _ in range(batch):
        call()
    return (time.perf_counter() - started) / batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--max-us", type=float, default=2.0)
    parser.add_argument("--max-render-ratio", type=float, default=1.1)
    parser.add_argument("--smoke", action="store_true", help="3 rounds of 100, no verdict")
    args = parser.parse_args(argv)
    rounds, batch = (3, 100) if args.smoke else (args.rounds, args.batch)

    print(header(f"{rounds} rounds x {batch}"))
    times: dict[tuple[str, str], list[float]] = {}
    with safeplot.locked():
        plt.plot([1, 2])
        for round_ in range(rounds):
            for mode in ("off", "warn") if round_ % 2 else ("warn", "off"):
                safeplot.guard(mode)  # type: ignore[arg-type]
                for name, (call, share) in CALLS.items():
                    times.setdefault((name, mode), []).append(per_call(call, max(1, int(batch * share))))
        safeplot.guard("off")
    worst = 0.0
    print(f"{'call':<14} {'hooks off us':>13} {'hooks on us':>12} {'added us':>9} {'on/off':>7}")
    for name in CALLS:
        off = statistics.median(times[(name, "off")]) * 1e6
        on = statistics.median(times[(name, "warn")]) * 1e6
        if name in SINGLE_HOOKED_CALLS:
            worst = max(worst, on - off)
        print(f"{name:<14} {off:13.2f} {on:12.2f} {on - off:9.2f} {on / off:7.3f}")
    render_ratio = statistics.median(times[("render", "warn")]) / statistics.median(times[("render", "off")])
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    ok = worst <= args.max_us and render_ratio <= args.max_render_ratio
    print(
        f"worst added {worst:.2f} us per call (max {args.max_us}), render on/off {render_ratio:.3f} "
        f"(max {args.max_render_ratio}): {'ok' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
