"""safeplot.lock: RLock behaviour, timeouts, statistics, the legacy alias, fork."""

from __future__ import annotations

import logging
import pickle
import sys
import threading
import time

import pytest
from matplotlib.backends.backend_agg import RendererAgg

import safeplot
from tests.conftest import run_python
from tests.test_group import hold_lock_in_thread


def test_reentrant_like_rlock() -> None:
    assert safeplot.lock.acquire()
    assert safeplot.lock.acquire(timeout=0.01)
    with safeplot.lock:
        assert safeplot.lock.is_owned()
    safeplot.lock.release()
    assert safeplot.lock.is_owned()
    safeplot.lock.release()
    assert not safeplot.lock.is_owned()
    with pytest.raises(RuntimeError, match="un-acquired"):
        safeplot.lock.release()
    with pytest.raises(ValueError):
        safeplot.lock.acquire(blocking=False, timeout=1)


def test_other_thread_cannot_acquire_or_release_while_held() -> None:
    release = threading.Event()
    holder = hold_lock_in_thread(release)
    try:
        assert safeplot.lock.acquire(blocking=False) is False
        started = time.monotonic()
        assert safeplot.lock.acquire(timeout=0.2) is False
        assert time.monotonic() - started >= 0.2
        with pytest.raises(RuntimeError):
            safeplot.lock.release()
        assert safeplot.lock.holder == "holder"
        assert "holder" in repr(safeplot.lock)
    finally:
        release.set()
        holder.join()
    assert safeplot.lock.holder is None


def test_lock_timeout_pickles_with_its_facts() -> None:
    error = safeplot.LockTimeout(2.5, "worker-3")
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is safeplot.LockTimeout
    assert (clone.timeout, clone.holder, str(clone)) == (2.5, "worker-3", str(error))
    assert "2.5 s" in str(error) and "'worker-3'" in str(error)


def test_stats_count_acquisitions_waits_timeouts_and_holds() -> None:
    before = safeplot.stats()
    release = threading.Event()
    holder = hold_lock_in_thread(release)
    try:
        assert not safeplot.lock.acquire(timeout=0.05)
    finally:
        release.set()
        holder.join()
    with safeplot.lock, safeplot.lock:  # re-entry is not a new acquisition
        pass
    after = safeplot.stats()
    assert after["acquisitions"] - before["acquisitions"] == 2
    assert after["timeouts"] - before["timeouts"] == 1
    assert after["wait_seconds_total"] - before["wait_seconds_total"] >= 0.05
    assert after["hold_seconds_max"] >= after["hold_seconds_total"] / after["acquisitions"]
    assert after["holder"] is None
    assert set(after) == {
        "acquisitions",
        "encode_windows",
        "waits",
        "timeouts",
        "figures_closed",
        "wait_seconds_total",
        "wait_seconds_max",
        "hold_seconds_total",
        "hold_seconds_max",
        "holder",
    }


def test_configure_validates_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        safeplot.configure(timeout=float("nan"))
    with pytest.raises(TypeError, match="timeout"):
        safeplot.configure(timeout=True)
    safeplot.configure(timeout=float("inf"))
    assert safeplot.lock.default_timeout is None


@pytest.mark.slow(seconds=2)
def test_timeout_from_environment() -> None:
    code = "import safeplot; print(safeplot.lock.default_timeout)"
    assert run_python(code, env={"SAFEPLOT_TIMEOUT": "2.5"}).stdout.strip() == "2.5"
    assert run_python(code, env={"SAFEPLOT_TIMEOUT": "none"}).stdout.strip() == "None"
    bad = run_python(code, env={"SAFEPLOT_TIMEOUT": "soon"})
    assert bad.returncode != 0
    assert "ValueError: SAFEPLOT_TIMEOUT='soon'" in bad.stderr


def test_renderer_agg_lock_is_the_safeplot_lock() -> None:
    assert RendererAgg.lock is safeplot.lock  # type: ignore[attr-defined]
    release = threading.Event()
    held = threading.Event()

    def legacy_holder() -> None:
        with RendererAgg.lock:  # type: ignore[attr-defined]  # the old docs' idiom
            held.set()
            release.wait(30)

    thread = threading.Thread(target=legacy_holder, name="legacy")
    thread.start()
    assert held.wait(10)
    try:
        with pytest.raises(safeplot.LockTimeout, match="legacy"), safeplot.locked(timeout=0.1):
            pass
    finally:
        release.set()
        thread.join()


def test_long_hold_logs_one_warning_with_where_the_lock_was_taken(caplog: pytest.LogCaptureFixture) -> None:
    safeplot.configure(long_hold=0.2)
    with caplog.at_level(logging.WARNING, logger="safeplot"):
        with safeplot.locked():  # taken here
            threading.Event().wait(0.4)  # a hold past the threshold
        line = sys._getframe().f_lineno - 2
        with safeplot.locked():
            pass  # a short hold: not logged
    records = [r for r in caplog.records if r.name == "safeplot"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert f"taken at {__file__}:{line}" in message
    assert "over 0.2 s" in message and "MainThread" in message
    held = float(message.split("held for ")[1].split(" s")[0])
    assert held >= 0.4
