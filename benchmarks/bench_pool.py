"""RenderPool against rendering in-process: throughput on every core, cold start, per-job overhead, memory.

The legacy callback is bench_threads.py's (a line and a scatter of 10 000
points, 640x480 PNG).  In interleaved rounds (rotating order, medians) it
measures renders/s of

    1 thread     safeplot.render_callback in this process, one thread
    2 threads    the same from two threads (the encode window lets one encode while the other draws)
    pool         RenderPool(2), jobs submitted together

and prints pool / 1 thread (the goal: >= 1.85 on 2 cores; 2.0 is the limit)
and pool / 2 threads.  Then: the time from a cold RenderPool(2) to its first
render; the per-job overhead (pickling, IPC) on a small 320x240 plot, as the
time of a pool job one at a time over the in-process one; and the RSS of a
worker over 1,000 jobs of a callback that never closes its figure.

    python benchmarks/bench_pool.py [--rounds 5] [--renders 12] [--rss-jobs 1000] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from _machine import header  # benchmarks/ is on sys.path when run as a script

import safeplot

POINTS = 10_000


def legacy_report(seed: int, width: float = 6.4, height: float = 4.8) -> None:
    """A legacy callback: module-level pyplot, its figure left open."""
    rng = np.random.default_rng(seed)
    x, y = rng.random(POINTS), rng.normal(size=POINTS).cumsum()
    plt.figure(figsize=(width, height), dpi=100)
    plt.plot(y, linewidth=0.8)
    plt.scatter(x * POINTS, y, s=3)
    plt.title(f"report {seed}")


def small_noting_rss(seed: int, rss_file: str) -> None:
    """A small legacy plot; every 100th job appends the worker's RSS (KiB) to ``rss_file``."""
    legacy_report(seed, 3.2, 2.4)
    if seed % 100 == 0:
        with open("/proc/self/status", encoding="ascii") as status:
            rss = next(line.split()[1] for line in status if line.startswith("VmRSS:"))
        with open(rss_file, "a", encoding="ascii") as out:
            out.write(f"{os.getpid()} {rss}\n")


def in_threads(threads: int, renders: int) -> float:
    """Renders/s of render_callback from ``threads`` threads started together."""
    start = threading.Barrier(threads + 1)

    def work(index: int) -> None:
        start.wait()
        for job in range(renders // threads):
            safeplot.render_callback(legacy_report, index * 1000 + job)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    began = time.perf_counter()
    for worker in workers:
        worker.join()
    return renders // threads * threads / (time.perf_counter() - began)


def in_pool(pool: safeplot.RenderPool, renders: int) -> float:
    began = time.perf_counter()
    for future in [pool.submit(legacy_report, n) for n in range(renders)]:
        future.result()
    return renders / (time.perf_counter() - began)


def per_job_seconds(render: Callable[[int], bytes], jobs: int) -> float:
    began = time.perf_counter()
    for n in range(jobs):
        render(n)
    return (time.perf_counter() - began) / jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--renders", type=int, default=12, help="renders a measurement")
    parser.add_argument("--rss-jobs", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="1 round of 2 renders, 200 RSS jobs, no verdict")
    args = parser.parse_args(argv)
    rounds, renders, rss_jobs = (1, 2, 200) if args.smoke else (args.rounds, args.renders, args.rss_jobs)
    print(header(f"{rounds} rounds of {renders} renders, {rss_jobs} jobs for RSS"))

    cold: list[float] = []
    for _ in range(1 if args.smoke else 3):
        began = time.perf_counter()
        with safeplot.RenderPool(2) as pool:
            pool.submit(legacy_report, 0).result()
            cold.append(time.perf_counter() - began)
    with safeplot.RenderPool(2) as pool:
        pool.submit(legacy_report, 0).result()
        same = pool.submit(legacy_report, 5).result() == safeplot.render_callback(legacy_report, 5)
        variants: dict[str, Callable[[], float]] = {
            "1 thread": lambda: in_threads(1, renders),
            "2 threads": lambda: in_threads(2, renders),
            "pool": lambda: in_pool(pool, renders),
        }
        rates: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for round_ in range(rounds):
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                rates[name].append(variants[name]())
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"bytes equal to render_callback in-process: {same}")
    for name, rate in medians.items():
        print(f"{name:<10} {rate:6.1f} renders/s")
    print(f"pool / 1 thread:  {medians['pool'] / medians['1 thread']:.2f} (goal >= 1.85, limit 2.0)")
    print(f"pool / 2 threads: {medians['pool'] / medians['2 threads']:.2f}")
    print(f"cold RenderPool(2) to its first render: median {statistics.median(cold):.2f} s")

    with safeplot.RenderPool(1) as pool:
        pool.submit(small_noting_rss, 1, os.devnull).result()

        def pooled(n: int) -> bytes:
            return pool.submit(legacy_report, n, 3.2, 2.4).result()

        def local(n: int) -> bytes:
            return safeplot.render_callback(legacy_report, n, 3.2, 2.4)

        jobs = 10 if args.smoke else 40
        pairs = [(per_job_seconds(pooled, jobs), per_job_seconds(local, jobs)) for _ in range(rounds)]
    pooled_s = statistics.median(p for p, _ in pairs)
    local_s = statistics.median(lo for _, lo in pairs)
    print(
        f"320x240, one job at a time: pool {pooled_s * 1e3:.1f} ms, in-process {local_s * 1e3:.1f} ms, "
        f"pool / in-process {pooled_s / local_s:.2f}"
    )

    with tempfile.TemporaryDirectory() as folder:
        rss_file = str(Path(folder) / "rss")
        with safeplot.RenderPool(1) as pool:
            for future in [pool.submit(small_noting_rss, n, rss_file) for n in range(rss_jobs)]:
                future.result()
        samples = [int(line.split()[1]) for line in Path(rss_file).read_text().splitlines()]
    print(
        f"worker RSS over {rss_jobs} jobs that never close their figure (KiB, every 100th): {samples}; "
        f"growth after the first 100: {samples[-1] - samples[1] if len(samples) > 1 else 0} KiB"
    )
    if args.smoke:
        print("smoke run: no verdict")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
