"""plt.savefig through safeplot draws once, gives stock bytes, and leaves the canvas readable."""

from __future__ import annotations

import inspect
import io
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

import safeplot
from tests.conftest import run_python


def STOCK_SAVEFIG(*args: Any, **kwargs: Any) -> None:
    """What stock ``pyplot.savefig`` does (matplotlib 3.5 to 3.11): save, then redraw."""
    fig = plt.gcf()
    fig.savefig(*args, **kwargs)
    fig.canvas.draw_idle()


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


# The layout engines keep the stock redraw: their check runs in nox -s soak (CI).
@pytest.mark.parametrize(
    "layout",
    [
        None,
        pytest.param("tight", marks=pytest.mark.soak),
        pytest.param("constrained", marks=pytest.mark.soak),
    ],
)
@pytest.mark.slow(seconds=3)
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
    assert plt.savefig.__name__ == "savefig"
    assert plt.savefig.__doc__ and plt.savefig.__doc__.strip().startswith("Save the current figure")


def glyph_warning_locations(savefig: Callable[..., Any]) -> set[tuple[str, int]]:
    """Where the warnings of a glyph missing from the font, raised while saving, point."""
    with safeplot.locked(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plt.title("\ue000")  # a private-use character: in no font
        savefig(io.BytesIO(), format="png")
    return {(w.filename, w.lineno) for w in caught if "missing from" in str(w.message)}


@pytest.mark.parametrize("guard", ["off", "warn"])
def test_warnings_raised_while_saving_point_at_the_callers_line(guard: str) -> None:
    safeplot.guard(guard)  # type: ignore[arg-type]
    line = inspect.getsourcelines(glyph_warning_locations)[1] + 5
    assert glyph_warning_locations(plt.savefig) == {(__file__, line)}


def test_warnings_raised_while_saving_point_where_they_do_without_safeplot() -> None:
    script = (
        "import io, warnings{}\n"
        "import matplotlib.pyplot as plt\n"
        "warnings.simplefilter('always')\n"
        "plt.title('\\ue000')\n"
        "plt.savefig(io.BytesIO())\n"
    )
    stock = run_python(script.format(""), env={"MPLBACKEND": "agg"})
    ours = run_python(script.format(", safeplot"))
    assert stock.returncode == ours.returncode == 0, stock.stderr + ours.stderr
    assert "<string>:5: UserWarning: Glyph 57344" in stock.stderr
    # stock matplotlib warns twice: once for the save, once for its redraw
    assert set(ours.stderr.splitlines()) == set(stock.stderr.splitlines())
