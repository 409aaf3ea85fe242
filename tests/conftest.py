from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot
from safeplot._lock import DEFAULT_LONG_HOLD
from safeplot.guard import hooks

ROOT = Path(__file__).resolve().parent.parent


def run_python(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run code in a fresh interpreter with this checkout importable; env adds variables."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("MPLBACKEND", "SAFEPLOT_"))}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(autouse=True)
def clean_pyplot_state() -> Iterator[None]:
    """Every test starts and must end with no open figures, the lock free and default rcParams."""
    rc_before = dict(matplotlib.rcParams)
    yield
    leaked = len(Gcf.figs)
    Gcf.destroy_all()
    safeplot.guard("off")
    safeplot.configure(timeout=None, long_hold=DEFAULT_LONG_HOLD)
    assert not hooks.installed, "pyplot hooks left installed (a middleware request never closed?)"
    assert not safeplot.lock.is_owned(), "test left safeplot.lock held"
    assert leaked == 0, f"test left {leaked} pyplot figures open"
    changed = [
        k for k, v in matplotlib.rcParams.items() if k != "backend" and str(rc_before.get(k)) != str(v)
    ]
    matplotlib.rcParams.update({k: rc_before[k] for k in changed})
    assert not changed, f"test left rcParams changed: {changed}"
