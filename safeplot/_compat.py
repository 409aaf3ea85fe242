"""Every matplotlib-version-specific detail safeplot relies on, in one place.

Supported: matplotlib 3.5 and newer.  Each function here hides one difference
between versions; the rest of the package never tests a version itself.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from typing import Any, cast

import matplotlib
from matplotlib import rcsetup
from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure

RcSnapshot = dict[str, Any]

# FigureCanvasAgg methods that hand out the pixels of its last draw
# (tostring_rgb was removed in matplotlib 3.10).
AGG_PIXEL_READERS = [
    name
    for name in ("buffer_rgba", "tostring_argb", "tostring_rgb", "copy_from_bbox", "restore_region")
    if hasattr(FigureCanvasAgg, name)
]


def _version_info(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


MPL_VERSION = _version_info(matplotlib.__version__)


def builtin_backends(*, interactive: bool) -> list[str]:
    """The lower-case names of matplotlib's own (non-)interactive backends."""
    if MPL_VERSION >= (3, 9):
        from matplotlib.backends.registry import BackendFilter, backend_registry

        wanted = BackendFilter.INTERACTIVE if interactive else BackendFilter.NON_INTERACTIVE
        names: list[str] = backend_registry.list_builtin(wanted)  # type: ignore[no-untyped-call]
    else:
        names = getattr(rcsetup, "interactive_bk" if interactive else "non_interactive_bk")
    return [name.lower() for name in names]


def configured_backend() -> str | None:
    """The backend named in ``rcParams`` without resolving it; None if still automatic."""
    name = dict.__getitem__(matplotlib.rcParams, "backend")
    if name is rcsetup._auto_backend_sentinel:
        return None
    return str(name)


def snapshot_rcparams() -> RcSnapshot:
    """A raw copy of ``rcParams`` (no validation, no deprecation warnings), less the backend.

    Like ``matplotlib.rc_context``, the backend is left out so that restoring
    never switches it back.
    """
    # dict.items() reads the stored values directly; dict.copy() would go
    # through RcParams.__getitem__ for each of ~300 keys, six times slower.
    snapshot: RcSnapshot = dict(dict.items(cast(RcSnapshot, matplotlib.rcParams)))
    del snapshot["backend"]
    return snapshot


def restore_rcparams(snapshot: RcSnapshot) -> None:
    """Put back a :func:`snapshot_rcparams` copy, as ``rc_context`` does on exit."""
    params = matplotlib.rcParams
    update_raw = getattr(params, "_update_raw", None)  # matplotlib >= 3.10
    if update_raw is not None:
        update_raw(snapshot)
    else:
        dict.update(cast(RcSnapshot, params), snapshot)


def close_managers(managers: Iterable[FigureManagerBase]) -> int:
    """Close pyplot figures as ``plt.close`` does; return how many were closed.

    ``Gcf.destroy`` of matplotlib < 3.6 also runs ``gc.collect(1)`` for every
    figure, a cost of milliseconds a figure; this does what newer versions do
    and leaves the cycles to the ordinary garbage collector.
    """
    closed = 0
    for manager in managers:
        num = cast(int, manager.num)
        if Gcf.figs.get(num) is manager:
            Gcf.figs.pop(num)
        cid = getattr(manager, "_cidgcf", None)
        if cid is not None:
            manager.canvas.mpl_disconnect(cid)
        manager.destroy()
        closed += 1
    return closed


# The pyplot functions through which every pyplot call reaches pyplot's
# global state: the figure registry, the current figure/axes, rcParams.
PYPLOT_STATE_FUNCTIONS = (
    "figure",
    "gcf",
    "gca",
    "gci",
    "sci",
    "sca",
    "close",
    "clf",
    "get_fignums",
    "get_figlabels",
    "fignum_exists",
    "get_current_fig_manager",
    "subplot",
    "subplots",
    "subplot_mosaic",
    "subplot2grid",
    "axes",
    "delaxes",
    "show",
    "draw",
    "pause",
    "ion",
    "ioff",
    "rc",
    "rcdefaults",
    "rc_context",
    "xkcd",
    "switch_backend",
    "new_figure_manager",
    "draw_if_interactive",
)


def pyplot_state_functions() -> dict[str, types.FunctionType]:
    """Those of :data:`PYPLOT_STATE_FUNCTIONS` this pyplot has as plain functions.

    A function with a closure (one wrapped by a decorator in some version) is
    left out: its code cannot be swapped for one without that closure.  The
    pyplot functions it calls are still in the list.
    """
    import matplotlib.pyplot as plt

    found = {name: getattr(plt, name, None) for name in PYPLOT_STATE_FUNCTIONS}
    return {
        name: func
        for name, func in found.items()
        if isinstance(func, types.FunctionType) and not func.__closure__
    }


def has_layout_engine(fig: Figure) -> bool:
    """Whether the figure lays itself out at every draw (tight or constrained layout).

    Such a layout depends on the draws before it, so a skipped draw could
    change what later saves give.
    """
    if MPL_VERSION >= (3, 6):
        return fig.get_layout_engine() is not None
    return bool(fig.get_tight_layout() or fig.get_constrained_layout())


def alias_renderer_agg_lock(lock: object) -> None:
    """Make ``RendererAgg.lock`` the given lock.

    matplotlib < 3.8 had a class-level ``threading.RLock`` there, which its own
    ``FigureCanvasAgg.draw`` takes and which old code and docs used as "the
    plotting lock"; 3.8 removed it, so such code fails with AttributeError.
    Replacing (or restoring) it with safeplot's lock makes both kinds of code
    share one lock.
    """
    RendererAgg.lock = lock  # type: ignore[attr-defined]
