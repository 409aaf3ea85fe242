"""examples/celery_app.py for real: Redis, a threads worker and the web app, each its own process."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import safeplot
from tests.servers import ROOT, fetch, redis_server, server_process

pytest.importorskip("celery")
pytestmark = pytest.mark.xdist_group("celery-workers")


@pytest.mark.soak
@pytest.mark.slow(seconds=10)
def test_the_web_app_answers_with_reports_the_worker_rendered() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing in CI: .ci/run installs Debian's redis-server package")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    from celery.result import AsyncResult

    with redis_server() as url:
        os.environ["REDIS_URL"] = url  # for the example module imported below, in this process
        from examples import celery_app

        celery_app.app.conf.broker_url = celery_app.app.conf.result_backend = url
        env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
        worker = subprocess.Popen(
            [sys.executable, "examples/celery_app.py", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        web_command = [sys.executable, "examples/celery_app.py", "web", "--port", "0"]
        try:
            deadline = time.monotonic() + 60
            while not celery_app.app.control.ping(timeout=0.5):  # the worker is up once it answers
                assert worker.poll() is None and time.monotonic() < deadline, "the worker did not start"
            with server_process(web_command, r"serving on http://127\.0\.0\.1:(\d+)/", extra_env=env) as site:
                assert fetch(site.base_url, "/healthz").status == 200
                assert fetch(site.base_url, "/reports/new?region=nowhere").status == 400
                enqueued = [fetch(site.base_url, f"/reports/new?region={r}") for r in celery_app.REGIONS * 2]
                assert [reply.status for reply in enqueued] == [303] * 8
                locations = [reply.headers["location"] for reply in enqueued]
                for location in locations:  # wait for each report where the worker stores it
                    AsyncResult(location.split("/")[-1].removesuffix(".png"), app=celery_app.app).get(
                        timeout=60
                    )
                with ThreadPoolExecutor(8) as pool:
                    replies = list(pool.map(lambda location: fetch(site.base_url, location), locations))
        finally:
            worker.terminate()
            worker.wait(30)
    for region, reply in zip(celery_app.REGIONS * 2, replies):
        assert reply.status == 200 and reply.headers["content-type"] == "image/png"
        with safeplot.locked():
            assert reply.body == base64.b64decode(celery_app.sales_report.run(region)), region
