"""A locked() group lets the lock go while PIL encodes its image, and leaves no trace while it does."""

from __future__ import annotations

import io
import logging
import pickle
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

import safeplot
from tests.conftest import run_python, scaled
from tests.plots import RASTER_SAVES, draw, raster_saves

WAIT = 30.0


@pytest.mark.slow(seconds=4)
def test_raster_saves_in_a_group_give_the_bytes_of_stock_matplotlib() -> None:
    stock = run_python(
        "import sys, pickle, matplotlib\n"
        "matplotlib.use('agg')\n"
        "from tests.plots import raster_saves\n"
        "outputs = raster_saves('mathtext', 4)\n"
        "assert 'safeplot' not in sys.modules\n"
        "sys.stdout.buffer.write(pickle.dumps(outputs))\n",
        text=False,
    )
    assert stock.returncode == 0, stock.stderr
    expected = pickle.loads(stock.stdout)
    before = safeplot.stats()["encode_windows"]
    with safeplot.locked():
        ours = raster_saves("mathtext", 4)
    assert safeplot.stats()["encode_windows"] - before == len(RASTER_SAVES)
    options = RASTER_SAVES
    differ = [options[i] for i, (got, want) in enumerate(zip(ours, expected)) if got != want]
    assert differ == []


def test_vector_formats_and_paths_keep_the_lock(tmp_path: Path) -> None:
    before = safeplot.stats()["encode_windows"]
    with safeplot.locked():
        draw("line", 1)
        for fmt in ("svg", "pdf"):
            plt.savefig(io.BytesIO(), format=fmt)
        plt.savefig(tmp_path / "plot.png")  # PIL opens a path itself: no window
        with open(tmp_path / "named.png", "wb") as named:
            plt.savefig(named, format="png")
        plt.close()
    assert safeplot.stats()["encode_windows"] == before
    assert (tmp_path / "plot.png").read_bytes() == (tmp_path / "named.png").read_bytes()


class PausingFile(io.BytesIO):
    """An output file whose first write waits until the test says go: PIL is then encoding."""

    def __init__(self, encoding: threading.Event, go: threading.Event) -> None:
        super().__init__()
        self._encoding, self._go = encoding, go

    def write(self, data: Any) -> int:
        if not self._encoding.is_set():
            self._encoding.set()
            assert self._go.wait(WAIT)
        return super().write(data)


CMAP = ListedColormap(["red", "blue"], name="safeplot-window-test")


def group_that_saves(output: io.BytesIO) -> dict[str, Any]:
    """A group with a figure, a style, an rcParam and a colormap of its own; what it saw after saving."""
    with safeplot.locked():
        plt.style.use("dark_background")
        matplotlib.colormaps.register(CMAP)
        draw("line", 5)
        plt.rcParams["lines.linewidth"] = 7
        figure = plt.gcf()
        plt.savefig(output, format="png")
        return {
            "current figure kept": plt.gcf() is figure and plt.get_fignums() == [figure.number],
            "linewidth": plt.rcParams["lines.linewidth"],
            "facecolor": plt.rcParams["axes.facecolor"],
            "cmap": CMAP.name in matplotlib.colormaps,
        }


def test_another_group_runs_while_one_encodes_and_sees_nothing_of_it() -> None:
    encoding, go = threading.Event(), threading.Event()
    output = PausingFile(encoding, go)
    after: dict[str, Any] = {}
    saver = threading.Thread(target=lambda: after.update(group_that_saves(output)), name="saver")
    saver.start()
    try:
        assert encoding.wait(WAIT)
        with safeplot.locked(timeout=WAIT):  # enters while the saver is in PIL: the window is open
            seen = {
                "figures": plt.get_fignums(),
                "linewidth": plt.rcParams["lines.linewidth"],
                "facecolor": plt.rcParams["axes.facecolor"],
                "cmap": CMAP.name in matplotlib.colormaps,
            }
            plt.style.use("ggplot")  # undone when this group ends
        with safeplot.lock:  # a lasting change of the outside, made while the window is open
            matplotlib.rcParams["axes.titlesize"] = 21
    finally:
        go.set()
        saver.join(WAIT)
    try:
        assert seen == {"figures": [], "linewidth": 1.5, "facecolor": "white", "cmap": False}
        assert after == {"current figure kept": True, "linewidth": 7, "facecolor": "black", "cmap": True}
        assert matplotlib.rcParams["axes.titlesize"] == 21  # the saver's group kept the new outside
        assert plt.rcParams["lines.linewidth"] == 1.5 and CMAP.name not in matplotlib.colormaps
        serial = io.BytesIO()
        assert group_that_saves(serial) == after
    finally:
        matplotlib.rcParams["axes.titlesize"] = "large"
    assert output.getvalue() == serial.getvalue()


@pytest.mark.parametrize("plain", ["safeplot.lock", "RendererAgg.lock"])
def test_a_plain_hold_inside_the_group_keeps_the_lock_through_the_encoding(plain: str) -> None:
    hold = safeplot.lock if plain == "safeplot.lock" else RendererAgg.lock  # type: ignore[attr-defined]
    encoding, go = threading.Event(), threading.Event()
    output = PausingFile(encoding, go)

    def save() -> None:
        with safeplot.locked(), hold:
            draw("bar", 2)
            plt.savefig(output, format="png")

    saver = threading.Thread(target=save, name="saver")
    saver.start()
    try:
        assert encoding.wait(WAIT)
        with (
            pytest.raises(safeplot.LockTimeout, match="held by thread 'saver'"),
            safeplot.locked(timeout=0.2),
        ):
            pass
    finally:
        go.set()
        saver.join(WAIT)
    assert output.getvalue().startswith(b"\x89PNG")


STYLES = ("dark_background", "ggplot", "classic")
WEBP = "webp" if "webp" in FigureCanvasBase.get_supported_filetypes() else "png"  # matplotlib >= 3.6
JOBS = [("line", "png"), ("heatmap", "jpeg"), ("scatter", WEBP), ("bar", "tiff")]


def styled_save(kind: str, seed: int, fmt: str) -> bytes:
    with safeplot.locked():
        plt.style.use(STYLES[seed % len(STYLES)])
        draw(kind, seed)
        buffer = io.BytesIO()
        plt.savefig(buffer, format=fmt)
        return buffer.getvalue()


@pytest.mark.slow(seconds=6)
def test_style_changing_groups_encoding_in_parallel_match_a_serial_run() -> None:
    jobs = [(kind, seed, fmt) for seed in range(scaled(6)) for kind, fmt in JOBS]
    serial = [styled_save(*job) for job in jobs]
    before = safeplot.stats()
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda job: styled_save(*job), jobs))
    after = safeplot.stats()
    wrong = [job for job, got, want in zip(jobs, threaded, serial) if got != want]
    assert wrong == []
    assert after["acquisitions"] - before["acquisitions"] == len(jobs)  # one per group, windows or not
    assert after["encode_windows"] - before["encode_windows"] == len(jobs)
    assert after["holder"] is None and after["hold_seconds_total"] > before["hold_seconds_total"]


def test_a_figure_shared_by_groups_is_encoded_with_the_lock_held() -> None:
    shared = Figure(figsize=(3, 2), dpi=60)  # legacy: one module-level figure, redrawn by every request
    FigureCanvasAgg(shared)
    axes = shared.subplots()

    def redraw(seed: int) -> bytes:
        with safeplot.locked():
            axes.clear()
            axes.plot(np.random.default_rng(seed).random(50))
            buffer = io.BytesIO()
            shared.savefig(buffer, format="png")
            return buffer.getvalue()

    serial = [redraw(seed) for seed in range(8)]
    before = safeplot.stats()["encode_windows"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(redraw, range(8)))
    assert threaded == serial
    assert safeplot.stats()["encode_windows"] == before  # another group could redraw it meanwhile


def test_configure_turns_the_window_off() -> None:
    with pytest.raises(TypeError, match="encode_window must be True or False"):
        safeplot.configure(encode_window="no")  # type: ignore[arg-type]
    safeplot.configure(encode_window=False)
    try:
        before = safeplot.stats()["encode_windows"]
        assert styled_save("line", 1, "png") == styled_save("line", 1, "png")
        assert safeplot.stats()["encode_windows"] == before
    finally:
        safeplot.configure(encode_window=True)


class Contenders:
    """Threads that loop on small groups until stopped: one of them nearly always waits for the lock."""

    def __init__(self, count: int = 2) -> None:
        self._stop = threading.Event()
        self.renders = 0
        self._threads = [threading.Thread(target=self._loop, name=f"contender-{n}") for n in range(count)]

    def _loop(self) -> None:
        while not self._stop.is_set():
            with safeplot.locked(timeout=WAIT):
                draw("bar", 1)
                plt.savefig(io.BytesIO(), format="png")
            self.renders += 1

    def __enter__(self) -> Contenders:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)


def finishes(job: Any, times: int) -> bool:
    """Whether ``job`` runs ``times`` times in a thread of its own within WAIT seconds (no deadlock)."""
    thread = threading.Thread(target=lambda: [job() for _ in range(times)], name="saver", daemon=True)
    thread.start()
    thread.join(WAIT)
    return not thread.is_alive()


def test_a_save_inside_a_draw_keeps_the_lock_through_its_encoding() -> None:
    # A draw_event callback saves a thumbnail: savefig inside a draw, whose thread holds
    # matplotlib's render lock. Letting safeplot's lock go there would let another group take
    # it and wait for the render lock, while this thread waits for safeplot's: a deadlock.
    thumbnails: list[bytes] = []

    @safeplot.locked(timeout=WAIT)
    def report_with_thumbnail() -> bytes:
        figure = plt.figure()
        plt.plot([1, 3, 2])
        thumbnail = plt.figure(figsize=(1, 1), dpi=40)
        plt.plot([1, 3, 2])

        def on_draw(event: Any) -> None:
            if event.canvas.figure is figure:
                buffer = io.BytesIO()
                thumbnail.savefig(buffer, format="png")
                thumbnails.append(buffer.getvalue())

        figure.canvas.mpl_connect("draw_event", on_draw)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()

    windows = safeplot.stats()["encode_windows"]
    with Contenders() as contenders:
        assert finishes(report_with_thumbnail, 5)
    assert len(thumbnails) == 5 and len(set(thumbnails)) == 1
    assert contenders.renders > 0
    assert safeplot.stats()["encode_windows"] - windows >= 5  # the outer saves still opened theirs


def test_a_warning_handler_that_renders_during_a_draw_does_not_deadlock() -> None:
    # logging.captureWarnings sends matplotlib's missing-glyph warnings, raised inside a draw,
    # to a handler that renders a plot in a group of its own (nested: the same thread).
    rendered: list[bytes] = []

    class RenderingHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            with safeplot.locked(timeout=WAIT):
                draw("line", 2)
                buffer = io.BytesIO()
                plt.savefig(buffer, format="png")
                rendered.append(buffer.getvalue())

    @safeplot.locked(timeout=WAIT)
    def plot_with_a_missing_glyph() -> None:
        plt.figure()
        plt.title("\u6f22")  # not in DejaVu Sans
        plt.savefig(io.BytesIO(), format="png")

    handler = RenderingHandler()
    logger = logging.getLogger("py.warnings")
    logger.addHandler(handler)
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings(), Contenders():
            warnings.simplefilter("always")
            assert finishes(plot_with_a_missing_glyph, 2)
    finally:
        logging.captureWarnings(False)
        logger.removeHandler(handler)
    assert len(rendered) >= 2 and len(set(rendered)) == 1
