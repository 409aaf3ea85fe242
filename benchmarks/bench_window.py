"""A group coming back from its encode window is not starved: one large render among threads on small groups.

One thread renders a large legacy plot (800x600, line and scatter of 10 000
points, PNG) in ``@safeplot.locked`` while three others loop on small groups
(320x240 bar charts).  With the encode window on, the large render lets the
lock go while PIL encodes its image and must win it back from the three;
with it off (``safeplot.configure(encode_window=False)``) it keeps the lock.
The two settings run in interleaved rounds; prints the median time of a
large render with each, and on/off; exits 1 if on/off is above --max-ratio.

    python benchmarks/bench_window.py [--rounds 5] [--renders 6] [--max-ratio 1.10] [--smoke]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import threading
import time

import matplotlib.pyplot as plt
import numpy as np
from _machine import header  # benchmarks/ is on sys.path when run as a script

import safeplot

POINTS = 10_000
SMALL_THREADS = 3


@safeplot.locked
def large(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    plt.figure(figsize=(8, 6), dpi=100)
    plt.plot(rng.normal(size=POINTS).cumsum(), linewidth=0.8)
    plt.scatter(rng.random(POINTS) * POINTS, rng.normal(size=POINTS) * 30, s=2)
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return buffer.getvalue()


@safeplot.locked
def small(seed: int) -> None:
    plt.figure(figsize=(3.2, 2.4), dpi=100)
    plt.bar(list("abcde"), [seed % 7 + n for n in range(5)])
    plt.savefig(io.BytesIO(), format="png")


def large_render_times(renders: int) -> list[float]:
    """Seconds of each of ``renders`` large renders while SMALL_THREADS threads loop on small groups."""
    stop = threading.Event()
    started = threading.Barrier(SMALL_THREADS + 1)

    def loop(index: int) -> None:
        started.wait()
        seed = index
        while not stop.is_set():
            small(seed)
            seed += SMALL_THREADS

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(SMALL_THREADS)]
    for thread in threads:
        thread.start()
    started.wait()
    times = []
    try:
        for seed in range(renders):
            began = time.perf_counter()
            large(seed)
            times.append(time.perf_counter() - began)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--renders", type=int, default=6, help="large renders a measurement")
    parser.add_argument("--max-ratio", type=float, default=1.10)
    parser.add_argument("--smoke", action="store_true", help="1 round of 2 renders, no verdict")
    args = parser.parse_args(argv)
    rounds = 1 if args.smoke else args.rounds
    renders = 2 if args.smoke else args.renders
    print(header(f"{rounds} rounds of {renders} large renders, {SMALL_THREADS} threads on small groups"))
    samples: dict[bool, list[float]] = {True: [], False: []}
    large(0)  # warm: fonts, caches
    began = time.perf_counter()
    large(1)
    alone = time.perf_counter() - began
    for round_ in range(rounds):
        for window in (True, False) if round_ % 2 == 0 else (False, True):
            safeplot.configure(encode_window=window)
            samples[window].extend(large_render_times(renders))
    safeplot.configure(encode_window=True)
    on, off = statistics.median(samples[True]), statistics.median(samples[False])
    print(f"large render alone: {alone * 1e3:.0f} ms")
    print(f"large render, window on : median {on * 1e3:.0f} ms over {len(samples[True])}")
    print(f"large render, window off: median {off * 1e3:.0f} ms over {len(samples[False])}")
    ratio = on / off
    print(f"on/off: {ratio:.2f}")
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    ok = ratio <= args.max_ratio
    print(f"window on/off {ratio:.2f} (max {args.max_ratio}): {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
