"""plt.savefig through safeplot draws once, gives stock bytes, and leaves the canvas readable."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.backends.backend_agg import FigureCanvasAgg

import safeplot

STOCK_SAVEFIG: Callable[..., Any] = plt.savefig.__wrapped__  # type: ignore[attr-defined]

SAVES: list[dict[str, Any]] = [
    {"format": "png"},
    {"format": "png", "dpi": 150},
    {"format": "png", "transparent": True},
    {"format": "png", "bbox_inches": "tight"},
    {"format": "svg", "metadata": {"Date": None}},
    {"format": "pdf", "metadata": {"CreationDate": None}},
    {"format": "png", "dpi": 45, "transparent": True, "bbox_inches": "tight"},
    {"format": "svg", "transparent": True, "bbox_inches": "tight", "metadata": {"Date": None}},
]


def build(layout: str | None) -> None:
    plt.rcParams["svg.hashsalt"] = "fixed"
    plt.figure(figsize=(4, 3), dpi=72, layout=layout)
    plt.subplot(1, 2, 1)
    plt.plot([1, 3, 2], label="a")
    plt.legend()
    plt.title(r"$\alpha$ line")
    plt.subplot(1, 2, 2)
    plt.imshow(np.arange(16.0).reshape(4, 4))
    plt.colorbar()
    plt.suptitle("suptitle")


def save_sequence(savefig: Callable[..., Any], layout: str | None) -> list[bytes]:
    with safeplot.locked():
        build(layout)
        outputs = []
        for options in SAVES:
            buffer = io.BytesIO()
            savefig(buffer, **options)
            outputs.append(buffer.getvalue())
        return outputs


@pytest.mark.parametrize("layout", [None, "tight", "constrained"])
def test_every_save_gives_the_bytes_of_stock_matplotlib(layout: str | None) -> None:
    stock = save_sequence(STOCK_SAVEFIG, layout)
    ours = save_sequence(plt.savefig, layout)
    for options, expected, got in zip(SAVES, stock, ours):
        assert got == expected, f"differs for {options}"


def count_draws(savefig: Callable[..., Any]) -> int:
    with safeplot.locked():
        build(None)
        draws = []
        plt.gcf().canvas.mpl_connect("draw_event", draws.append)
        savefig(io.BytesIO(), format="png")
        return len(draws)


def test_savefig_draws_once_where_stock_draws_twice() -> None:
    assert count_draws(STOCK_SAVEFIG) == 2  # the save, then draw_idle's redraw nobody sees
    assert count_draws(plt.savefig) == 1


def canvas_reads(savefig: Callable[..., Any], *, then_draw: bool) -> dict[str, Any]:
    """What old code reads from the canvas after a savefig at another dpi (and maybe plt.draw())."""
    with safeplot.locked():
        build(None)
        fig = plt.gcf()
        savefig(io.BytesIO(), format="png", dpi=200, transparent=True)
        if then_draw:
            plt.plot([3, 1, 2], color="red")
            plt.draw()
        canvas = fig.canvas
        region = canvas.copy_from_bbox(fig.bbox)
        reads = {
            "size": canvas.get_width_height(),
            "rgba": np.asarray(canvas.buffer_rgba()).copy(),
            "argb": bytes(canvas.tostring_argb()),
            "region": bytes(region),  # type: ignore[call-overload]
        }
        canvas.restore_region(region)
        reads["restored"] = np.asarray(canvas.buffer_rgba()).copy()
        return reads


@pytest.mark.parametrize("then_draw", [False, True], ids=["after-savefig", "after-plt.draw"])
def test_canvas_reads_see_a_drawn_current_canvas(then_draw: bool) -> None:
    stock = canvas_reads(STOCK_SAVEFIG, then_draw=then_draw)
    ours = canvas_reads(plt.savefig, then_draw=then_draw)
    assert ours["size"] == stock["size"] == (288, 216)
    assert ours["rgba"].shape == (216, 288, 4)
    assert np.array_equal(ours["rgba"], stock["rgba"])
    assert ours["argb"] == stock["argb"]
    assert ours["region"] == stock["region"]
    assert np.array_equal(ours["restored"], stock["restored"])
    assert ours["rgba"][..., 3].min() == 255  # transparent=True was undone, as stock does


def test_canvas_stays_an_agg_canvas_and_backend_reports_agg() -> None:
    with safeplot.locked():
        plt.plot([1, 2])
        plt.savefig(io.BytesIO())
        assert isinstance(plt.gcf().canvas, FigureCanvasAgg)
    assert matplotlib.get_backend().lower() == "agg"
    assert plt.savefig.__name__ == "savefig" and plt.savefig.__doc__ == STOCK_SAVEFIG.__doc__


def test_other_canvases_keep_stock_redraw() -> None:
    class CountingCanvas(FigureCanvasBase):
        idle_draws = 0

        def draw_idle(self, *args: Any, **kwargs: Any) -> None:
            type(self).idle_draws += 1

    with safeplot.locked():
        fig = plt.figure()
        plt.plot([1, 2])
        CountingCanvas(fig)
        plt.savefig(io.BytesIO(), format="svg")
    assert CountingCanvas.idle_draws == 1
