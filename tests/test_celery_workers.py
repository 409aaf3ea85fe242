"""Real Celery workers against a real Redis (Debian's redis-server on a free port), one per pool:
legacy plot tasks after a style-switching one equal a serial render, and no figure stays open."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import safeplot
from tests.plots import draw_and_save
from tests.servers import celery_worker, redis_server

pytest.importorskip("celery")
pytestmark = pytest.mark.xdist_group("celery-workers")
KINDS = ("line", "styled", "heatmap", "bar")


# One Redis per test process: the Celery app keeps its connections to the first broker URL it used
# (the worker fixture may be made again when another module's tests run in between).
@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run installs Debian's redis-server package")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with redis_server() as url:
        yield url


class Worker:
    def __init__(self, process: subprocess.Popen[str], pool: str) -> None:
        self.process = process
        self.pool = pool


CONCURRENCY = {"threads": 4, "prefork": 2, "solo": 1, "gevent": 8, "eventlet": 8}
IN_EVERY_RUN = ("threads",)  # the other pools run in nox -s soak (CI)


def pools(*names: str) -> list[Any]:
    """Parameters for the ``worker`` fixture: these pools, the ones beyond IN_EVERY_RUN marked soak."""
    return [name if name in IN_EVERY_RUN else pytest.param(name, marks=pytest.mark.soak) for name in names]


# Made once a test process per pool, even when other modules' tests run in between.
@pytest.fixture(scope="session")
def worker(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Worker]:
    pool = request.param
    if pool in ("gevent", "eventlet"):
        pytest.importorskip(pool)  # no free-threaded wheels: the free-threaded row goes without
    with celery_worker(redis_url, pool, CONCURRENCY[pool]) as process:
        yield Worker(process, pool)


def serial(kind: str, seed: int) -> bytes:
    with safeplot.locked():
        return draw_and_save(kind, seed, "png")


@pytest.mark.parametrize("worker", pools(*CONCURRENCY), indirect=True)
@pytest.mark.slow(seconds=8)
def test_plot_tasks_after_a_style_switching_one_equal_a_serial_render(worker: Worker) -> None:
    from tests import celery_site

    celery_site.go_dark.delay().get(timeout=60)
    jobs = [(kind, seed) for kind in KINDS for seed in range(4)]
    results = [celery_site.plot.delay(kind, seed) for kind, seed in jobs]
    outputs = [result.get(timeout=120) for result in results]
    wrong = [job for job, out in zip(jobs, outputs) if base64.b64decode(out["png"]) != serial(*job)]
    assert wrong == [], f"{len(wrong)} of {len(jobs)} wrong"
    assert [out["open_before"] for out in outputs] == [0] * len(jobs)  # nothing left by earlier tasks


@pytest.mark.slow(seconds=4)
@pytest.mark.parametrize(
    "worker",
    [pytest.param(pool, marks=pytest.mark.soak) for pool in ("threads", "gevent", "eventlet")],
    indirect=True,
)  # pools that run tasks side by side; in nox -s soak (CI)
def test_a_task_that_waits_past_its_timeout_fails_with_lock_timeout(worker: Worker) -> None:
    from tests import celery_site

    key = f"release-{uuid.uuid4().hex}"
    holder = celery_site.hold.delay(key)
    client = celery_site.app.backend.client
    try:
        deadline = time.monotonic() + 60
        while holder.state != "HOLDING":  # set by the task once it holds the lock
            assert time.monotonic() < deadline, "the holding task did not start"
            time.sleep(0.02)  # polling another process's state: nothing to wait on here
        started = time.monotonic()
        with pytest.raises(safeplot.LockTimeout) as raised:
            celery_site.impatient.delay().get(timeout=60)
        waited = time.monotonic() - started
    finally:
        client.set(key, b"1")
    assert holder.get(timeout=60) == "released"
    assert raised.value.timeout == 0.5 and raised.value.holder_kind == "task"
    assert raised.value.holder.startswith("tests.celery_site.hold[")
    assert 0.5 <= waited < 30
    assert celery_site.impatient.delay().get(timeout=60) == "drawn"  # the lock is free again


@pytest.mark.soak
@pytest.mark.slow(seconds=20)
@pytest.mark.parametrize("worker", pools("prefork", "solo"), indirect=True)  # a process, one task at a time
def test_300_tasks_that_never_close_their_figure_leave_none_open_and_bounded_memory(worker: Worker) -> None:
    from tests import celery_site

    outputs = [result.get(timeout=300) for result in [celery_site.plot.delay("line", n) for n in range(300)]]
    assert max(out["open_before"] for out in outputs) == 0
    by_process: dict[int, list[int]] = {}
    for out in outputs:
        by_process.setdefault(out["pid"], []).append(out["rss"])
    for pid, rss in by_process.items():
        growth = rss[-1] - rss[len(rss) // 5]  # past the first fifth's warm-up (font cache, imports)
        assert growth < 20_000, f"worker process {pid} grew {growth} KiB over {len(rss)} tasks: {rss[::30]}"
