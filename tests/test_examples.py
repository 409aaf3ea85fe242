"""The examples run as scripts and do what they say."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT


@pytest.mark.soak  # and in CI's wheel smoke run
@pytest.mark.slow(seconds=4)
def test_legacy_callback_example_reports_all_outputs_match() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "legacy_callback.py"), "--threads", "8", "--renders", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "8 threads x 3 renders: 24/24 outputs match the serial render, 0 wrong, 0 errors, 0 figures left open"
        in result.stdout
    )
    assert "all outputs match" in result.stdout
