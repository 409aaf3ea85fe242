"""Requests per second on the example plot server, as ratios taken in one run.

Two comparisons, each with the same client load (concurrent HTTP clients on
127.0.0.1), servers started side by side and measured in interleaved rounds:
    safeplot / OO    examples/wsgi_app.py (legacy pyplot + safeplot, werkzeug threaded)
                     against benchmarks/oo_app.py (the same plots, object-oriented, no lock)
    2 / 1 workers    the example app under gunicorn gthread --threads 8 --preload, -w 2 against -w 1
Prints median requests/second and the ratios; exits 1 if a ratio is below its minimum.

    python benchmarks/bench_http.py [--rounds 7] [--requests 80] [--clients 16] [--smoke]
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

from tests.servers import (
    ServerProcess,
    example_server,
    fetch_all,
    gunicorn_server,
    server_process,
)

KINDS = ("line", "scatter", "bar", "heatmap", "pie")
QUERY = "width=4&height=3&dpi=80&n=500"


def oo_server() -> ServerProcess:
    return server_process(  # type: ignore[return-value]
        [sys.executable, str(Path(__file__).with_name("oo_app.py")), "--port", "0"],
        r"serving on http://127\.0\.0\.1:(\d+)/",
    )


def paths(count: int) -> list[str]:
    return [f"/plot/{KINDS[i % len(KINDS)]}.png?{QUERY}&seed={i % 7}" for i in range(count)]


def requests_per_second(server: ServerProcess, count: int, clients: int) -> float:
    started = time.perf_counter()
    replies = fetch_all(server.base_url, paths(count), clients=clients)
    elapsed = time.perf_counter() - started
    bad = [reply.status for reply in replies if reply.status != 200]
    if bad:
        raise SystemExit(f"{server.base_url} answered {bad[:5]}")
    return count / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=80, help="requests per server per round")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--min-oo-ratio", type=float, default=0.95)
    parser.add_argument("--min-worker-ratio", type=float, default=1.7)
    parser.add_argument("--smoke", action="store_true", help="1 round of 10 requests, no verdict")
    args = parser.parse_args(argv)
    rounds, count = (1, 10) if args.smoke else (args.rounds, args.requests)

    print(header(f"{rounds} rounds x {count} requests, {args.clients} clients"))
    with ExitStack() as stack:
        servers = {
            "safeplot werkzeug": stack.enter_context(example_server()),
            "oo werkzeug": stack.enter_context(oo_server()),
            "gunicorn -w 2": stack.enter_context(gunicorn_server(workers=2)),
            "gunicorn -w 1": stack.enter_context(gunicorn_server(workers=1)),
        }
        checked = len(KINDS) * (1 if args.smoke else 7)
        reference = fetch_all(servers["oo werkzeug"].base_url, paths(checked))
        for name, server in servers.items():  # same bytes everywhere, and warm
            if [r.body for r in fetch_all(server.base_url, paths(checked))] != [r.body for r in reference]:
                raise SystemExit(f"{name} does not serve the same images as the OO app")
        rates: dict[str, list[float]] = {name: [] for name in servers}
        names = list(servers)
        for round_ in range(rounds):
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                rates[name].append(requests_per_second(servers[name], count, args.clients))

    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, rate in medians.items():
        print(f"{name:<18} {rate:7.1f} requests/s")
    oo_ratio = medians["safeplot werkzeug"] / medians["oo werkzeug"]
    worker_ratio = medians["gunicorn -w 2"] / medians["gunicorn -w 1"]
    print(f"safeplot / OO (werkzeug threaded): {oo_ratio:.2f}  (min {args.min_oo_ratio})")
    print(f"gunicorn 2 workers / 1 worker:     {worker_ratio:.2f}  (min {args.min_worker_ratio})")
    if args.smoke:
        print("smoke run: no verdict")
        return 0
    ok = oo_ratio >= args.min_oo_ratio and worker_ratio >= args.min_worker_ratio
    print("ok" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
