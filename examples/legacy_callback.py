"""An old pyplot callback made thread-safe by one added line.

Run it:  python examples/legacy_callback.py [--threads 8] [--renders 10] [--without-safeplot]

It renders every plot once serially, then again from several threads at once,
and reports whether every threaded output is byte-identical to the serial one.
With --without-safeplot the same callback runs without the decorator, to show
what plain pyplot does under threads (wrong images, errors, leaked figures).
"""

from __future__ import annotations

import argparse
import io
import sys
import threading

import matplotlib.pyplot as plt
import numpy as np

import safeplot


@safeplot.locked  # the one line added to the old code
def callback(seed: int) -> bytes:
    """The legacy callback: global pyplot state, savefig into a buffer, never closes."""
    rng = np.random.default_rng(seed)
    plt.figure(figsize=(4, 3), dpi=80)
    plt.plot(rng.normal(size=200).cumsum(), label=f"series {seed}")
    plt.scatter(range(0, 200, 20), rng.normal(size=10) * 5, color="tab:red")
    plt.title(f"Report #{seed}")
    plt.legend(loc="upper left")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--renders", type=int, default=10, help="renders per thread")
    parser.add_argument("--without-safeplot", action="store_true", help="run the undecorated callback")
    args = parser.parse_args(argv)
    draw = callback.__wrapped__ if args.without_safeplot else callback  # type: ignore[attr-defined]

    seeds = range(args.threads * args.renders)
    expected = {seed: callback(seed) for seed in seeds}  # serial, always safe
    results: dict[int, bytes] = {}
    errors: list[str] = []

    def worker(first: int) -> None:
        for seed in range(first, first + args.renders):
            try:
                results[seed] = draw(seed)
            except Exception as exc:  # plain pyplot under threads fails in many ways
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(t * args.renders,)) for t in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    wrong = [seed for seed in seeds if seed in results and results[seed] != expected[seed]]
    open_figures = len(plt.get_fignums())
    label = "plain pyplot" if args.without_safeplot else "safeplot.locked"
    print(
        f"{label}: {args.threads} threads x {args.renders} renders: "
        f"{len(seeds) - len(wrong) - len(errors)}/{len(seeds)} outputs match the serial render, "
        f"{len(wrong)} wrong, {len(errors)} errors, {open_figures} figures left open"
    )
    for error in errors[:3]:
        print("  error:", error)
    ok = not wrong and not errors and open_figures == 0
    print("all outputs match" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
