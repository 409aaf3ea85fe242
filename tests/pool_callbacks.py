"""Legacy callbacks for the RenderPool tests: module-level, so that workers can import them by name."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import matplotlib.pyplot as plt

from tests.plots import draw

MARK = "fresh"  # a test sets it in its own process: a worker made by forking would inherit it


class ChartError(Exception):
    """A callback's own exception type, which must come back as itself."""


def legacy(kind: str, seed: int) -> None:
    draw(kind, seed)  # leaves its figure open, as legacy code does


def legacy_noting_pid(seed: int, folder: str) -> None:
    (Path(folder) / f"{seed}.pid").write_text(str(os.getpid()))
    draw("line", seed)


def endless(seed: int) -> None:
    plt.figure()
    plt.plot([seed, 1])
    while True:  # a runaway render: only stopping its process ends it
        time.sleep(0.05)


def exits(code: int) -> None:
    plt.figure()
    os._exit(code)


def segfaults() -> None:
    plt.figure()
    os.kill(os.getpid(), signal.SIGSEGV)


def fails(message: str) -> None:
    plt.figure()
    raise ChartError(message)


def marked() -> None:
    plt.figure(figsize=(2, 1), dpi=50)
    plt.title(f"mark: {MARK}")


class StubbornError(Exception):
    """An exception that cannot be rebuilt from its args (pickle fails on the way back)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")


def fails_stubbornly() -> None:
    plt.figure()
    raise StubbornError(502, "upstream")


def times_out_by_itself() -> None:
    plt.figure()
    raise TimeoutError("Task timeout", 5)  # the callback's own, worded as pebble words its limit


def waits_for(path: str, seed: int, folder: str) -> None:
    """Notes its pid, then draws once ``path`` exists (a job that runs until the test lets it finish)."""
    (Path(folder) / f"{seed}.pid").write_text(str(os.getpid()))
    while not Path(path).exists():
        time.sleep(0.01)
    draw("line", seed)
