"""Legacy plot tasks per second on Celery's prefork (-c 2), threads (-c 2) and solo pools, one machine.

Starts Debian's redis-server on a free port and three real workers of
tests/celery_site.py, each on a queue of its own, every task under
safeplot.celery.SafeplotTask.  In each round every pool in turn (rotating
order) gets a batch of the same legacy callback (a 640x480 line and scatter
of 10 000 points, PNG) while the others idle; prints tasks/s (medians of
the rounds) and each pool's ratio to solo.

    python benchmarks/bench_celery.py [--rounds 5] [--tasks 24] [--smoke]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _machine import header  # benchmarks/ is on sys.path when run as a script

from tests.servers import celery_worker, redis_server

POOLS = {"prefork -c 2": ("prefork", 2), "threads -c 2": ("threads", 2), "solo": ("solo", 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--smoke", action="store_true", help="1 round of 4 tasks, no verdict")
    args = parser.parse_args(argv)
    rounds, tasks = (1, 4) if args.smoke else (args.rounds, args.tasks)
    print(header(f"{rounds} rounds x {tasks} tasks a pool"))
    with ExitStack() as stack:
        url = stack.enter_context(redis_server())
        for pool, concurrency in POOLS.values():
            stack.enter_context(celery_worker(url, pool, concurrency, queue=pool))
        from tests import celery_site

        for pool, _ in POOLS.values():  # warm each worker up: imports, font cache
            celery_site.legacy_report.apply_async((0,), queue=pool).get(timeout=120)
        rates: dict[str, list[float]] = {name: [] for name in POOLS}
        names = list(POOLS)
        for round_ in range(rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                pool = POOLS[name][0]
                started = time.perf_counter()
                results = [celery_site.legacy_report.apply_async((n,), queue=pool) for n in range(tasks)]
                for result in results:
                    result.get(timeout=300)
                rates[name].append(tasks / (time.perf_counter() - started))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    solo = medians["solo"]
    for name, rate in medians.items():
        print(f"{name:<14} {rate:6.1f} tasks/s  {rate / solo:5.2f}x solo")
    if args.smoke:
        print("smoke run: no verdict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
