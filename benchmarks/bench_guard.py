"""Cost the guard's hooks add to a pyplot call made with the lock held.

Times pyplot calls inside a locked() group with the hooks off and on
(guard("warn")), interleaved in batches, median batch per call:
    plt.gcf()     one hooked function
    plt.xlim()    a plotting function: reaches two hooked functions (gca, gcf)
Prints the added microseconds per call; exits 1 if any exceeds --max-us.

    python benchmarks/bench_guard.py [--rounds 15] [--batch 5000] [--max-us 2] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import matplotlib.pyplot as plt
from _machine import header  # benchmarks/ is on sys.path when run as a script

import safeplot

CALLS: dict[str, Callable[[], object]] = {"plt.gcf()": plt.gcf, "plt.xlim()": plt.xlim}


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
                for name, call in CALLS.items():
                    times.setdefault((name, mode), []).append(per_call(call, batch))
        safeplot.guard("off")
    worst = 0.0
    print(f"{'call':<12} {'hooks off us':>13} {'hooks on us':>12} {'added us':>9}")
    for name in CALLS:
        off = statistics.median(times[(name, "off")]) * 1e6
        on = statistics.median(times[(name, "warn")]) * 1e6
        worst = max(worst, on - off)
        print(f"{name:<12} {off:13.2f} {on:12.2f} {on - off:9.2f}")
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    ok = worst <= args.max_us
    print(f"worst added {worst:.2f} us per call (max {args.max_us}): {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
