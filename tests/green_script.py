"""Greenlets drawing in groups, switching inside them: ``python green_script.py LIBRARY ORDER``.

LIBRARY is gevent or eventlet, ORDER before or after.

``before``: safeplot is imported before the library patches ``threading`` (as
under gunicorn's ``--preload``).  Prints how many of 30 concurrent plots differ
from a serial run, then what a waiter with a 0.05 s timeout saw while another
greenlet held the lock and kept running (sleeping in steps).
"""

from __future__ import annotations

import io
import sys
from typing import Any, Callable

LIBRARY, ORDER = sys.argv[1], sys.argv[2]
if ORDER == "before":
    import safeplot
if LIBRARY == "gevent":
    from gevent import monkey

    monkey.patch_all()
    import gevent

    def spawn(func: Callable[..., Any], *args: Any) -> Any:
        return gevent.spawn(func, *args)

    def results(greenlets: list[Any]) -> list[Any]:
        gevent.joinall(greenlets, timeout=60, raise_error=True)
        return [greenlet.value for greenlet in greenlets]

    nap = gevent.sleep
else:
    import eventlet

    eventlet.monkey_patch()

    def spawn(func: Callable[..., Any], *args: Any) -> Any:
        return eventlet.spawn(func, *args)

    def results(greenlets: list[Any]) -> list[Any]:
        return [greenlet.wait() for greenlet in greenlets]

    nap = eventlet.sleep

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib._pylab_helpers import Gcf  # noqa: E402

import safeplot  # noqa: E402


def plot(seed: int) -> bytes:
    with safeplot.locked(timeout=30):
        plt.figure(figsize=(2, 2), dpi=50)
        nap(0.001)  # a switch inside the group
        plt.plot([seed, 1, seed * 2 % 7])
        if seed % 3 == 0:
            plt.style.use("dark_background")
        nap(0)
        plt.title(str(seed))
        buffer = io.BytesIO()
        plt.savefig(buffer, format="png")
        return buffer.getvalue()


serial = [plot(seed) for seed in range(30)]
concurrent = results([spawn(plot, seed) for seed in range(30)])
wrong = sum(a != b for a, b in zip(concurrent, serial))
print(f"{wrong} of 30 wrong, {len(Gcf.figs)} figures open")

steps: list[int] = []


def holder() -> None:
    with safeplot.locked():
        for step in range(20):
            steps.append(step)
            nap(0.01)


def waiter() -> str:
    try:
        with safeplot.locked(timeout=0.05):
            return "got the lock"
    except safeplot.LockTimeout as error:
        ran_on = "ran on" if len(steps) > 1 else "froze"
        return f"LockTimeout after the holder {ran_on}: held by {error.holder_kind} {error.holder!r}"


held = spawn(holder)
nap(0)  # the holder takes the lock
waited = spawn(waiter)
print(results([held, waited])[1])
