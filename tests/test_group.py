"""locked(): isolation of figures and rcParams, nesting, errors, timeouts, decorator forms."""

from __future__ import annotations

import asyncio
import datetime
import inspect
import threading
import time
from collections.abc import Iterator

import matplotlib
import matplotlib.colors
import matplotlib.dates
import matplotlib.pyplot as plt
import matplotlib.units
import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot


class Boom(Exception):
    pass


@pytest.fixture
def outside_figures() -> Iterator[list[plt.Figure]]:
    """Two figures opened outside any group, figure 2 current; closed at the end."""
    with safeplot.lock:
        figs = [plt.figure(1), plt.figure(2)]
        figs[0].gca().plot([1, 2])
    yield figs
    with safeplot.lock:
        plt.close("all")


def test_context_manager_yields_pyplot_and_holds_lock() -> None:
    with safeplot.locked() as p:
        assert p is plt
        assert safeplot.lock.is_owned()
        assert safeplot.stats()["holder"] == threading.current_thread().name
    assert not safeplot.lock.is_owned()
    assert safeplot.stats()["holder"] is None


def test_group_hides_outside_figures_and_gives_them_back_untouched(outside_figures: list[plt.Figure]) -> None:
    managers = list(Gcf.figs.items())
    first_lines = list(outside_figures[0].axes[0].lines)
    with safeplot.locked() as p:
        assert p.get_fignums() == []
        fig = p.figure()
        assert fig.number == 1  # a fresh registry: numbering starts again
        p.plot([3, 4])
        p.close("all")  # closes only what the group sees
        p.figure()
    assert list(Gcf.figs.items()) == managers
    assert plt.gcf() is outside_figures[1]
    assert list(outside_figures[0].axes[0].lines) == first_lines


def test_group_closes_every_figure_it_opened() -> None:
    closed_before = safeplot.stats()["figures_closed"]
    with safeplot.locked() as p:
        figs = [p.figure() for _ in range(3)]
        p.subplots(2, 2)
    assert Gcf.figs == {}
    assert safeplot.stats()["figures_closed"] - closed_before == 4
    assert all(not Gcf.has_fignum(f.number) for f in figs)


def test_group_undoes_rcparams_and_style_changes() -> None:
    before = dict(matplotlib.rcParams)
    with safeplot.locked() as p:
        p.style.use("dark_background")
        p.rcParams["lines.linewidth"] = 7
        p.rc("font", size=3)
        matplotlib.rcParams["axes.grid"] = True
        assert p.rcParams["figure.facecolor"] == "black"
    assert dict(matplotlib.rcParams) == before


def test_group_starts_from_the_rcparams_of_outside() -> None:
    with safeplot.lock:
        matplotlib.rcParams["lines.linewidth"] = 9
    try:
        with safeplot.locked() as p:
            assert p.rcParams["lines.linewidth"] == 9
            p.rcParams["lines.linewidth"] = 1
        assert matplotlib.rcParams["lines.linewidth"] == 9
    finally:
        matplotlib.rcParams["lines.linewidth"] = matplotlib.rcParamsDefault["lines.linewidth"]


def test_exception_closes_figures_restores_state_releases_lock(outside_figures: list[plt.Figure]) -> None:
    managers = list(Gcf.figs.items())
    before = dict(matplotlib.rcParams)
    with pytest.raises(Boom), safeplot.locked() as p:
        p.figure()
        p.style.use("ggplot")
        raise Boom
    assert list(Gcf.figs.items()) == managers
    assert dict(matplotlib.rcParams) == before
    assert not safeplot.lock.is_owned()
    assert safeplot.lock.acquire(blocking=False)  # really free
    safeplot.lock.release()


def test_decorated_function_cleans_up_on_exception() -> None:
    @safeplot.locked
    def broken() -> None:
        plt.figure()
        plt.rcParams["lines.linewidth"] = 12
        raise Boom

    with pytest.raises(Boom):
        broken()
    assert Gcf.figs == {}
    assert matplotlib.rcParams["lines.linewidth"] == matplotlib.rcParamsDefault["lines.linewidth"]


def test_nested_groups_see_outer_figures_and_close_only_their_own() -> None:
    with safeplot.locked() as p:
        outer = p.figure()
        p.rcParams["lines.linewidth"] = 5
        with safeplot.locked(timeout=0.01):  # re-entrant: never waits on itself
            assert p.gcf() is outer
            inner = p.figure()
            p.rcParams["lines.linewidth"] = 2
        assert Gcf.get_fig_manager(inner.number) is None or p.gcf() is not inner
        assert p.get_fignums() == [outer.number]
        assert p.gcf() is outer
        assert p.rcParams["lines.linewidth"] == 5
        assert safeplot.lock.is_owned()
    assert not safeplot.lock.is_owned()


def test_decorator_forms_keep_name_doc_and_signature() -> None:
    def draw(n: int, *, title: str = "x") -> int:
        """Draw n points."""
        plt.plot(range(n))
        return len(plt.get_fignums())

    bare = safeplot.locked(draw)
    with_options = safeplot.locked(timeout=5)(draw)
    for wrapped in (bare, with_options):
        assert wrapped.__name__ == "draw"
        assert wrapped.__doc__ == "Draw n points."
        assert inspect.signature(wrapped) == inspect.signature(draw)
        assert wrapped(3, title="y") == 1
        assert Gcf.figs == {}


def test_group_object_can_be_shared_and_reused() -> None:
    group = safeplot.locked()
    with group:
        with group:
            plt.figure()
        assert plt.get_fignums() == []
    with group:
        assert safeplot.lock.is_owned()


def test_decorating_async_and_generator_functions_is_refused() -> None:
    async def coroutine() -> None:
        plt.figure()

    async def async_gen() -> object:
        yield plt.figure()

    def gen() -> Iterator[object]:
        yield plt.figure()

    for func in (coroutine, async_gen, gen):
        with pytest.raises(TypeError, match="lock inside it instead"):
            safeplot.locked(func)
        with pytest.raises(TypeError, match=func.__name__):
            safeplot.locked(timeout=1)(func)
    assert asyncio.iscoroutinefunction(coroutine)  # untouched


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="function to decorate"):
        safeplot.locked(5)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="timeout"):
        safeplot.locked(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        safeplot.locked(timeout="5")  # type: ignore[arg-type]


def hold_lock_in_thread(release: threading.Event) -> threading.Thread:
    """Start a thread named 'holder' that holds the lock until release is set."""
    held = threading.Event()

    def hold() -> None:
        with safeplot.lock:
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    assert held.wait(10)
    return holder


def test_timeout_raises_lock_timeout_naming_timeout_and_holder() -> None:
    release = threading.Event()
    holder = hold_lock_in_thread(release)
    try:
        started = time.monotonic()
        with pytest.raises(safeplot.LockTimeout) as caught, safeplot.locked(timeout=0.3):
            pytest.fail("entered a group while another thread held the lock")
        waited = time.monotonic() - started
    finally:
        release.set()
        holder.join()
    assert 0.3 <= waited < 5
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.timeout == 0.3
    assert caught.value.holder == "holder"
    assert "0.3 s" in str(caught.value) and "'holder'" in str(caught.value)
    assert Gcf.figs == {}
    with safeplot.locked(timeout=1):  # usable again once released
        pass


def test_configured_default_timeout_applies_to_groups_and_plain_lock() -> None:
    release = threading.Event()
    holder = hold_lock_in_thread(release)
    try:
        safeplot.configure(timeout=0.2)
        for enter in (safeplot.locked(), safeplot.lock, safeplot.locked(timeout=0.2)):
            started = time.monotonic()
            with pytest.raises(safeplot.LockTimeout), enter:
                pass
            assert 0.2 <= time.monotonic() - started < 5
    finally:
        release.set()
        holder.join()


def test_group_waits_for_the_holder_then_runs() -> None:
    release = threading.Event()
    holder = hold_lock_in_thread(release)
    entered = threading.Event()
    waits_before = safeplot.stats()["waits"]

    def waiter() -> None:
        with safeplot.locked(timeout=30):
            entered.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not entered.wait(0.2)  # still blocked while the holder holds the lock
    release.set()
    assert entered.wait(10)
    thread.join()
    holder.join()
    assert safeplot.stats()["waits"] == waits_before + 1


def concise_dates_callback() -> None:
    """As matplotlib's gallery ticks/date_concise_formatter.py does: a converter for every date plot."""
    matplotlib.units.registry[datetime.date] = matplotlib.dates.ConciseDateConverter()
    plt.plot([datetime.date(2026, 1, day) for day in (1, 15, 31)], [1, 3, 2])


def custom_cmap_callback() -> None:
    """As the gallery's color/custom_cmap.py does: register a colormap, then use it by name."""
    cmap = matplotlib.colors.LinearSegmentedColormap.from_list("safeplot_test_map", ["red", "blue"])
    matplotlib.colormaps.register(cmap)
    plt.imshow([[0, 1], [1, 0]], cmap="safeplot_test_map")


def test_a_unit_converter_set_in_a_group_is_gone_after_it() -> None:
    registry = matplotlib.units.registry
    before = dict(registry)
    first = safeplot.render_callback(concise_dates_callback)
    assert dict(registry) == before and registry[datetime.date] is before[datetime.date]
    assert safeplot.render_callback(concise_dates_callback) == first
    with safeplot.locked() as p:  # a later date plot gets the converter of outside, not the callback's
        p.plot([datetime.date(2026, 1, 1), datetime.date(2026, 2, 1)], [1, 2])
        assert not isinstance(p.gca().xaxis.get_major_formatter(), matplotlib.dates.ConciseDateFormatter)


def test_a_callback_registering_a_colormap_runs_twice_in_a_row() -> None:
    first = safeplot.render_callback(custom_cmap_callback)
    assert safeplot.render_callback(custom_cmap_callback) == first
    assert "safeplot_test_map" not in matplotlib.colormaps


def test_a_nested_group_undoes_only_its_own_registry_changes() -> None:
    outer_map = matplotlib.colors.ListedColormap(["red", "green"], name="safeplot_outer")
    inner_map = matplotlib.colors.ListedColormap(["blue", "black"], name="safeplot_inner")
    with safeplot.locked():
        matplotlib.colormaps.register(outer_map)
        matplotlib.units.registry[datetime.date] = outer_converter = matplotlib.dates.ConciseDateConverter()
        with safeplot.locked():
            matplotlib.colormaps.register(inner_map)
            matplotlib.units.registry[datetime.date] = matplotlib.dates.DateConverter()
            del matplotlib.colormaps._cmaps["safeplot_outer"]  # type: ignore[attr-defined]
        assert "safeplot_outer" in matplotlib.colormaps and "safeplot_inner" not in matplotlib.colormaps
        assert matplotlib.units.registry[datetime.date] is outer_converter
    assert "safeplot_outer" not in matplotlib.colormaps
    assert not isinstance(matplotlib.units.registry[datetime.date], matplotlib.dates.ConciseDateConverter)


@pytest.mark.skipif(
    not hasattr(matplotlib, "color_sequences"), reason="color sequences came in matplotlib 3.6"
)
def test_a_color_sequence_registered_in_a_group_is_gone_after_it() -> None:
    for _ in range(2):
        with safeplot.locked():
            matplotlib.color_sequences.register("safeplot_test", ["red", "blue"])
            assert "safeplot_test" in matplotlib.color_sequences
    assert "safeplot_test" not in matplotlib.color_sequences
