"""Each benchmark runs in its smoke mode, so that none of them rots."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        # The smoke runs of the older benchmarks are soak tests (CI runs them): each is a
        # fresh interpreter that renders for seconds, and the tests cover what they measure.
        pytest.param("bench_render.py", ["B/A", "C/A", "line", "scatter"], marks=pytest.mark.soak),
        pytest.param(
            "bench_overhead.py",
            ["threading.RLock", "locked() without rcParams isolation", "locked()"],
            marks=pytest.mark.soak,
        ),
        pytest.param(
            "bench_http.py",
            ["safeplot / OO (werkzeug threaded):", "gunicorn 2 workers / 1 worker:"],
            marks=[pytest.mark.soak, pytest.mark.slow(seconds=12)],  # four servers: the longest smoke
        ),
        pytest.param(
            "bench_guard.py",
            ["plt.gcf()", "rcParams[key]", "Line2D()", "render", "added us"],
            marks=pytest.mark.soak,
        ),
        pytest.param(
            "bench_limits.py",
            ["default request", "most points", "largest image", "half points, largest"],
            marks=pytest.mark.soak,
        ),
        ("bench_threads.py", ["safeplot/oo", "640x480          2"]),
        pytest.param("bench_window.py", ["window on", "window off", "on/off"], marks=pytest.mark.soak),
        pytest.param(
            "bench_pool.py",
            ["bytes equal to render_callback in-process: True", "pool / 1 thread", "worker RSS over"],
            marks=[pytest.mark.soak, pytest.mark.slow(seconds=15)],
        ),
        pytest.param(
            "bench_celery.py",
            ["prefork -c 2", "threads -c 2", "x solo"],
            marks=[pytest.mark.soak, pytest.mark.slow(seconds=15)],
        ),
    ],
)
def test_benchmark_smoke_run(script: str, expected: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for text in expected:
        assert text in result.stdout
    assert "smoke run: no verdict" in result.stdout
