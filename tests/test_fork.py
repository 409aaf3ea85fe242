"""A forked child (gunicorn --preload, multiprocessing's fork) starts outside every group of the parent."""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import ListedColormap

import safeplot
from tests.conftest import scaled
from tests.plots import draw_and_save
from tests.servers import fetch_all, server_process
from tests.test_group import hold_lock_in_thread

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
WAIT = 30.0


def in_child(check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Fork; the child runs ``check`` and sends back what it returns (as JSON), or its error."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            os.close(read_end)
            try:
                report = check()
            except BaseException as error:
                report = {"error": repr(error)}
            os.write(write_end, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], WAIT)
        raw = os.read(read_end, 1 << 20) if ready else b""
    finally:
        os.close(read_end)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    return json.loads(raw) if raw else {"error": f"the child did not answer in {WAIT:g} s"}


def state_and_plot() -> dict[str, Any]:
    """In a child: the state it starts with, and a plot drawn in a group."""
    started = {
        "figures": plt.get_fignums(),
        "facecolor": str(dict.__getitem__(matplotlib.rcParams, "axes.facecolor")),
        "linewidth": dict.__getitem__(matplotlib.rcParams, "lines.linewidth"),
        "cmap": "house" in matplotlib.colormaps,
        "free": safeplot.lock.acquire(timeout=5),
    }
    safeplot.lock.release()
    with safeplot.locked(timeout=5):
        png = draw_and_save("line", 3, "png")
    return {**started, "png": png.hex()}


OUTSIDE = {"figures": [], "facecolor": "white", "linewidth": 1.5, "cmap": False, "free": True}


@contextmanager
def another_thread_inside_a_group(*, in_a_draw: bool = False) -> Iterator[None]:
    """Another thread inside a group that set a dark style, a colormap and a figure (and, if
    ``in_a_draw``, inside that figure's draw, holding matplotlib's render lock)."""
    inside, done = threading.Event(), threading.Event()

    def group() -> None:
        with safeplot.locked():
            plt.style.use("dark_background")
            plt.rcParams["lines.linewidth"] = 7
            matplotlib.colormaps.register(ListedColormap(["red", "blue"], name="house"))
            figure = plt.figure()
            plt.plot([1, 2, 3])
            if in_a_draw:
                figure.canvas.mpl_connect("draw_event", lambda event: (inside.set(), done.wait(WAIT)))
                figure.canvas.draw()
            else:
                inside.set()
                done.wait(WAIT)

    thread = threading.Thread(target=group, name="grouped")
    thread.start()
    assert inside.wait(WAIT)
    try:
        yield
    finally:
        done.set()
        thread.join(WAIT)


def expected_child() -> dict[str, Any]:
    with safeplot.locked():
        return {**OUTSIDE, "png": draw_and_save("line", 3, "png").hex()}


def test_a_child_forked_while_another_thread_is_inside_a_group_starts_outside_it() -> None:
    expected = expected_child()
    with another_thread_inside_a_group():
        report = in_child(state_and_plot)
    assert report == expected


def test_a_child_forked_while_another_thread_draws_can_draw() -> None:
    expected = expected_child()
    with another_thread_inside_a_group(in_a_draw=True):  # its render lock held by a thread not in the child
        report = in_child(state_and_plot)
    assert report == expected


def test_forked_child_gets_an_unheld_lock_while_a_parent_thread_holds_it() -> None:
    release = threading.Event()
    holder = hold_lock_in_thread(release)
    try:
        report = in_child(state_and_plot)
    finally:
        release.set()
        holder.join()
    assert report["free"] and report["figures"] == []


def test_fork_inside_a_group_keeps_the_forking_threads_hold() -> None:
    with safeplot.locked():
        plt.figure()

        def child() -> dict[str, Any]:
            owned = safeplot.lock.is_owned()
            figures = plt.get_fignums()
            safeplot.lock.release()  # the with-block's own release, as the child leaves it
            return {"owned": owned, "figures": figures, "free": safeplot.lock.acquire(timeout=1)}

        report = in_child(child)
    assert report == {"owned": True, "figures": [1], "free": True}


@pytest.mark.slow(seconds=12)
def test_gunicorn_preload_workers_forked_while_the_master_draws_serve_correct_plots() -> None:
    """gunicorn --preload forks its workers from a master whose own thread loops on groups."""
    paths = [f"/plot/{seed}.png" for seed in range(8)] * max(1, scaled(32) // 8)
    serial = {}
    for path in set(paths):
        with safeplot.locked():
            serial[path] = draw_and_save("line", int(path.split("/")[2].split(".")[0]), "png")
    command = [sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "2", "--preload"]
    command += ["--bind", "127.0.0.1:0", "tests.fork_site:app"]
    with server_process(command, r"Listening at: http://127\.0\.0\.1:(\d+)") as server:
        replies = fetch_all(server.base_url, paths, clients=8)
    assert [reply.status for reply in replies] == [200] * len(paths), "".join(server.output[-20:])
    wrong = [path for path, reply in zip(paths, replies) if reply.body != serial[path]]
    assert wrong == [], f"{len(wrong)} of {len(paths)} wrong"
    assert len({reply.headers["x-worker"] for reply in replies}) == 2  # both workers answered
