"""Each benchmark runs in its smoke mode, so that none of them rots."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("bench_render.py", ["B/A", "C/A", "line", "scatter"]),
        ("bench_overhead.py", ["threading.RLock", "locked() without rcParams isolation", "locked()"]),
        pytest.param(
            "bench_http.py",
            ["safeplot / OO (werkzeug threaded):", "gunicorn 2 workers / 1 worker:"],
            marks=[pytest.mark.soak, pytest.mark.slow(seconds=12)],  # four servers: the longest smoke
        ),
        ("bench_guard.py", ["plt.gcf()", "rcParams[key]", "Line2D()", "render", "added us"]),
        pytest.param(
            "bench_limits.py",
            ["default request", "most points", "largest image", "half points, largest"],
            marks=pytest.mark.soak,  # the limits themselves are tested with the example server
        ),
        ("bench_threads.py", ["safeplot/oo", "640x480          2"]),
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
