"""Cost of an empty locked() group, with and without its rcParams isolation, against a bare RLock.

Each variant enters and leaves its block with an empty body, in batches;
batches are interleaved across variants, and the median batch gives the time
per entry.  Exits 1 if a full group costs more than --max-ms.

    python benchmarks/bench_overhead.py [--rounds 15] [--batch 2000] [--max-ms 0.5] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import matplotlib
from _machine import header  # benchmarks/ is on sys.path when run as a script

import safeplot
from safeplot import _compat

rlock = threading.RLock()


def no_rc_snapshot() -> dict[str, Any]:
    return {}


def no_rc_restore(snapshot: dict[str, Any]) -> None:
    pass


class WithoutRcIsolation:
    """locked() with the rcParams snapshot and restore made no-ops, for the duration of the block."""

    def __init__(self) -> None:
        self.group = safeplot.locked()

    def __enter__(self) -> None:
        self.saved = _compat.snapshot_rcparams, _compat.restore_rcparams
        _compat.snapshot_rcparams, _compat.restore_rcparams = no_rc_snapshot, no_rc_restore  # type: ignore[assignment]
        self.group.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.group.__exit__(None, None, None)
        _compat.snapshot_rcparams, _compat.restore_rcparams = self.saved


VARIANTS: dict[str, Callable[[], AbstractContextManager[Any]]] = {
    "threading.RLock": lambda: rlock,
    "safeplot.lock": lambda: safeplot.lock,
    "locked() without rcParams isolation": WithoutRcIsolation,
    "locked()": safeplot.locked,
    "matplotlib.rc_context()": matplotlib.rc_context,
}


def batch_seconds(make: Callable[[], AbstractContextManager[Any]], batch: int) -> float:
    started = time.perf_counter()
    for _ in range(batch):
        with make():
            pass
    return (time.perf_counter() - started) / batch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--max-ms", type=float, default=0.5)
    parser.add_argument("--smoke", action="store_true", help="3 rounds of 50, no verdict")
    args = parser.parse_args(argv)
    rounds, batch = (3, 50) if args.smoke else (args.rounds, args.batch)

    print(header(f"{rounds} rounds x {batch}"))
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    names = list(VARIANTS)
    for round_ in range(rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            times[name].append(batch_seconds(VARIANTS[name], batch))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["threading.RLock"]
    for name, seconds in medians.items():
        print(f"{name:<38} {seconds * 1e6:8.1f} us  {seconds / base:7.0f}x RLock")
    group_ms = medians["locked()"] * 1e3
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    ok = group_ms <= args.max_ms
    print(f"locked() {group_ms:.3f} ms per group (max {args.max_ms}): {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
