"""render() and render_callback(): bytes out, clear errors in."""

from __future__ import annotations

import io

import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf
from matplotlib.figure import Figure

import safeplot
from safeplot._render import mimetype, supported_formats
from tests.plots import SAVE_KW, draw, draw_and_save

MAGIC = {
    "png": b"\x89PNG\r\n\x1a\n",
    "svg": b"<?xml",
    "pdf": b"%PDF-",
    "jpeg": b"\xff\xd8\xff",
    "eps": b"%!PS",
}


@pytest.mark.parametrize("fmt", sorted(MAGIC))
def test_render_current_figure_matches_plt_savefig(fmt: str) -> None:
    kwargs = SAVE_KW.get(fmt, {})
    with safeplot.locked():
        draw("line", 1)
        ours = safeplot.render(format=fmt, **kwargs)
        buffer = io.BytesIO()
        plt.savefig(buffer, format=fmt, **kwargs)
    assert ours.startswith(MAGIC[fmt])
    if fmt != "eps":  # eps embeds a creation time
        assert ours == buffer.getvalue()


def test_render_takes_savefig_options_and_leaves_the_figure_open() -> None:
    fig = Figure(figsize=(2, 1))
    fig.subplots().plot([1, 2])
    small = safeplot.render(fig, dpi=50)
    big = safeplot.render(fig, format="PNG", dpi=100)
    assert len(big) > len(small)
    with safeplot.locked() as p:
        p.plot([1, 2])
        safeplot.render(transparent=True, bbox_inches="tight")
        assert len(p.get_fignums()) == 1


def test_unknown_format_lists_the_supported_ones() -> None:
    with pytest.raises(ValueError, match=r"unsupported format 'gif'; supported: .*png.*svg"):
        safeplot.render(Figure(), format="gif")
    with pytest.raises(ValueError, match="unsupported format 'bmp'"):
        safeplot.render_callback(draw, "line", 1, format="bmp")
    assert {"png", "svg", "pdf", "jpeg"} <= set(supported_formats())
    assert mimetype("svg") == "image/svg+xml" and mimetype("JPG") == "image/jpeg"


def test_render_without_a_figure_is_a_value_error() -> None:
    with safeplot.locked():
        with pytest.raises(ValueError, match="no current pyplot figure"):
            safeplot.render()
        assert Gcf.figs == {}  # no empty figure was made to render
    with pytest.raises(TypeError, match="Figure, not Axes"):
        safeplot.render(Figure().subplots())  # type: ignore[arg-type]


def test_render_callback_renders_the_current_figure_and_closes_it() -> None:
    png = safeplot.render_callback(draw, "heatmap", 3)
    assert png == draw_and_save_in_group("heatmap", 3)
    assert Gcf.figs == {}


def draw_and_save_in_group(kind: str, seed: int) -> bytes:
    with safeplot.locked():
        return draw_and_save(kind, seed, "png")


def test_render_callback_prefers_a_returned_figure() -> None:
    def returns_figure(title: str) -> Figure:
        plt.figure()
        plt.plot([1, 2])
        fig = plt.figure()
        plt.plot([3, 1])
        plt.title(title)
        plt.figure()  # a later, empty current figure
        return fig

    svg = safeplot.render_callback(
        returns_figure, "chosen", format="svg", savefig_kwargs={"metadata": {"Date": None}}
    )
    assert b"chosen" in svg
    assert Gcf.figs == {}


def test_render_callback_that_drew_nothing_is_a_value_error() -> None:
    def nothing() -> None:
        pass

    def blank() -> None:
        plt.figure()

    def closes_its_own() -> bytes:
        plt.plot([1, 2])
        buffer = io.BytesIO()
        plt.savefig(buffer)
        plt.close()
        return buffer.getvalue()

    for func in (nothing, blank, closes_its_own):
        with pytest.raises(ValueError, match=f"callback .*{func.__name__}.* drew nothing"):
            safeplot.render_callback(func)
    assert Gcf.figs == {}


def test_render_callback_nested_does_not_take_the_outer_figure() -> None:
    with safeplot.locked() as p:
        p.plot([1, 2])
        with pytest.raises(ValueError, match="drew nothing"):
            safeplot.render_callback(lambda: None)
        assert len(p.get_fignums()) == 1


def test_render_callback_propagates_errors_after_cleaning_up() -> None:
    def broken() -> None:
        plt.figure()
        plt.rcParams["lines.linewidth"] = 11
        raise KeyError("missing column")

    with pytest.raises(KeyError, match="missing column"):
        safeplot.render_callback(broken)
    assert Gcf.figs == {}
    assert not safeplot.lock.is_owned()
