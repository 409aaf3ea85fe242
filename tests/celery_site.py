"""A Celery app of legacy pyplot tasks, every one under SafeplotTask; the broker and result backend
are the Redis named by ``SAFEPLOT_TEST_REDIS`` (tests/test_celery_workers.py starts one).

``plot`` never closes its figure and reports how many figures the worker had open when it
started (left by earlier tasks), its process id and RSS; ``go_dark`` switches the style for good
as far as it knows; ``hold`` takes the lock and keeps it until a Redis key is set (marking
itself ``HOLDING``); ``impatient`` waits at most 0.5 s for the lock.
"""

from __future__ import annotations

import base64
import io
import os
import time
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import redis
from celery import Celery
from matplotlib._pylab_helpers import Gcf

import safeplot
from tests.plots import draw_and_save

REDIS = os.environ.get("SAFEPLOT_TEST_REDIS", "redis://127.0.0.1:6379/0")

app = Celery("celery_site", broker=REDIS, backend=REDIS, task_cls="safeplot.celery:SafeplotTask")
app.conf.update(
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
)


def rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@app.task
def plot(kind: str, seed: int) -> dict[str, Any]:
    with safeplot.lock:  # no group runs meanwhile: what earlier tasks of this process left open
        open_before = len(Gcf.figs)
    png = draw_and_save(kind, seed, "png")  # never closes its figure, as legacy tasks don't
    return {
        "png": base64.b64encode(png).decode(),
        "open_before": open_before,
        "pid": os.getpid(),
        "rss": rss_kib(),
    }


@app.task
def go_dark() -> int:
    plt.style.use("dark_background")
    plt.rcParams["lines.linewidth"] = 7
    plt.figure()
    plt.plot([3, 1, 2])
    return os.getpid()


@app.task(bind=True)
def hold(self: Any, key: str) -> str:
    plt.figure()  # the run's first touch: it holds the lock from here
    self.update_state(state="HOLDING")
    client = redis.Redis.from_url(REDIS)
    deadline = time.monotonic() + 60
    while not client.get(key) and time.monotonic() < deadline:
        time.sleep(0.01)  # a busy wait (as a long draw would be): the hold stays
    return "released"


@app.task
def legacy_report(seed: int) -> int:
    """The benchmarks' legacy callback: a 640x480 line and scatter of 10 000 points; the PNG's size."""
    rng = np.random.default_rng(seed)
    x, y = rng.random(10_000), rng.normal(size=10_000).cumsum()
    plt.figure(figsize=(6.4, 4.8), dpi=100)
    plt.plot(y, linewidth=0.8)
    plt.scatter(x * len(y), y, s=3)
    plt.title(f"report {seed}")
    buffer = io.BytesIO()
    plt.savefig(buffer, format="png")
    return len(buffer.getvalue())


@app.task(safeplot_timeout=0.5)
def impatient() -> str:
    plt.figure()
    return "drawn"
