from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot
from safeplot._guard import hooks
from safeplot._lock import DEFAULT_LONG_HOLD
from safeplot._web import requests_in_flight

ROOT = Path(__file__).resolve().parent.parent


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 60, text: bool = True
) -> subprocess.CompletedProcess[Any]:
    """Run code in a fresh interpreter with this checkout importable; env adds variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MPLBACKEND", "SAFEPLOT_"))}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=text, timeout=timeout
    )


# The soak session (nox -s soak) runs the load tests with this many times the requests.
SOAK = float(os.environ.get("SAFEPLOT_SOAK", "1"))


def scaled(count: int) -> int:
    """A request or render count of a load test, times SAFEPLOT_SOAK."""
    return max(1, round(count * SOAK))


REPORT = "safeplot report"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, so that parallel workers share out the quick ones at the end."""

    def expected_seconds(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        if slow is None:
            return 0.0
        if "seconds" not in slow.kwargs:
            raise pytest.UsageError(f"{item.nodeid}: write @pytest.mark.slow(seconds=...)")
        return float(slow.kwargs["seconds"])

    items.sort(key=expected_seconds, reverse=True)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a measurement for the run's summary (shown also when tests run in workers)."""

    def record(text: str) -> None:
        request.node.user_properties.append((REPORT, text))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = [
        f"{test.nodeid}: {value}"
        for outcome in ("passed", "failed")
        for test in terminalreporter.stats.get(outcome, [])
        for name, value in getattr(test, "user_properties", [])
        if name == REPORT
    ]
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.line(line)


@pytest.fixture(autouse=True)
def clean_pyplot_state() -> Iterator[None]:
    """Every test starts with the hooks off, and must end with no open figures, no request in flight,
    the lock free and default rcParams."""
    if hooks.installed:
        gc.collect()  # a request is gone with the last reference to it (a log record's traceback, a cycle)
    assert not hooks.installed, "pyplot hooks left installed by an earlier test (a request still referenced?)"
    rc_before = dict(matplotlib.rcParams)
    yield
    leaked = len(Gcf.figs)
    Gcf.destroy_all()
    safeplot.guard("off")
    safeplot.configure(timeout=None, long_hold=DEFAULT_LONG_HOLD)
    assert requests_in_flight() == 0, "a middleware request never finished"
    assert not safeplot.lock.is_owned(), "test left safeplot.lock held"
    assert leaked == 0, f"test left {leaked} pyplot figures open"
    changed = [
        k for k, v in matplotlib.rcParams.items() if k != "backend" and str(rc_before.get(k)) != str(v)
    ]
    matplotlib.rcParams.update({k: rc_before[k] for k in changed})
    assert not changed, f"test left rcParams changed: {changed}"


@contextmanager
def held_by_another_thread() -> Iterator[None]:
    """``safeplot.lock`` held by a thread named 'holder' for the duration of the block."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with safeplot.lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    assert held.wait(30)
    try:
        yield
    finally:
        release.set()
        holder.join(30)
