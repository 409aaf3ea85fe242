"""Every matplotlib-version-specific detail safeplot relies on, in one place.

Supported: matplotlib 3.5 and newer.  Each function here hides one difference
between versions; the rest of the package never tests a version itself.
"""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Iterable
from typing import Any, cast

import matplotlib
from matplotlib import RcParams, rcsetup
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


def is_matplotlibs_own(func: object) -> bool:
    """Whether ``func`` is a plain function defined in matplotlib's own source.

    A replacement an app put in its place (a lambda, a ``functools.partial``, a
    mock) is not; nor is a function with a closure (one wrapped by a decorator
    in some version), whose code cannot be swapped for one without it.
    """
    return (
        isinstance(func, types.FunctionType)
        and not func.__closure__
        and func.__code__.co_filename.startswith(_MATPLOTLIB_DIR)
    )


_MATPLOTLIB_DIR = os.path.join(os.path.dirname(os.path.abspath(matplotlib.__file__)), "")


def pyplot_state_functions() -> dict[str, types.FunctionType]:
    """Those of :data:`PYPLOT_STATE_FUNCTIONS` this pyplot has as matplotlib's own plain functions.

    The pyplot functions a left-out one calls are still in the list.
    """
    import matplotlib.pyplot as plt

    found = {name: getattr(plt, name, None) for name in PYPLOT_STATE_FUNCTIONS}
    return {name: cast(types.FunctionType, f) for name, f in found.items() if is_matplotlibs_own(f)}


def _unwrapped(func: Any) -> Any:
    """The generator function behind a ``contextlib.contextmanager`` (what it calls on entry)."""
    return getattr(func, "__wrapped__", func)


def shared_state_functions() -> dict[str, types.FunctionType]:
    """matplotlib's functions outside pyplot that change its process-wide state.

    Keys are the names the guard reports.  ``style.context`` and ``rc_context``
    are context managers: the function listed is the generator they call on
    entry, so a check there runs before any ``rcParams`` are copied.
    """
    import matplotlib.style

    candidates = {
        "matplotlib.style.use": matplotlib.style.use,
        "matplotlib.style.context": _unwrapped(matplotlib.style.context),
        "matplotlib.style.reload_library": matplotlib.style.reload_library,
        "matplotlib.rc_context": _unwrapped(matplotlib.rc_context),
        "matplotlib.rc": matplotlib.rc,
        "matplotlib.rcdefaults": matplotlib.rcdefaults,
        "matplotlib.rc_file": matplotlib.rc_file,
        "matplotlib.rc_file_defaults": matplotlib.rc_file_defaults,
        "matplotlib.colormaps.register": type(matplotlib.colormaps).register,
    }
    sequences = getattr(matplotlib, "color_sequences", None)  # matplotlib >= 3.6
    if sequences is not None:
        candidates["matplotlib.color_sequences.register"] = type(sequences).register
    return {name: cast(types.FunctionType, f) for name, f in candidates.items() if is_matplotlibs_own(f)}


def touch_functions() -> dict[str, types.FunctionType]:
    """matplotlib's functions whose call reads its process-wide state: making an artist, reading rcParams."""
    from matplotlib.artist import Artist

    candidates = {"Artist.__init__": Artist.__init__, "rcParams.__getitem__": RcParams.__getitem__}
    return {name: cast(types.FunctionType, f) for name, f in candidates.items() if is_matplotlibs_own(f)}


def rcparams_setitem() -> types.FunctionType:
    """``RcParams.__setitem__``, the one way ``rcParams[key] = value`` and ``update`` write."""
    return cast(types.FunctionType, RcParams.__setitem__)


# Output formats whose bytes PIL encodes (what the lock may be released for).
PIL_FORMATS = frozenset({"png", "jpg", "jpeg", "tif", "tiff", "webp", "gif", "avif"})


def pil_save_functions() -> dict[str, tuple[types.FunctionType, str]]:
    """matplotlib's functions that end by handing a finished image to PIL's ``Image.save``.

    Values are the function and the name of its file argument.  ``image.imsave``
    saves every raster format the Agg canvas writes, except in matplotlib 3.5,
    whose ``print_jpg`` and ``print_tif`` call PIL themselves.  In each, the
    call to ``Image.save`` is the last thing done.
    """
    import matplotlib.image

    found: dict[str, tuple[types.FunctionType, str]] = {}
    if is_matplotlibs_own(matplotlib.image.imsave):
        found["image.imsave"] = (cast(types.FunctionType, matplotlib.image.imsave), "fname")
    for name in ("print_jpg", "print_tif"):
        method = inspect.unwrap(FigureCanvasAgg.__dict__[name])
        if is_matplotlibs_own(method) and not {"imsave", "_print_pil"} & set(method.__code__.co_names):
            found[f"FigureCanvasAgg.{name}"] = (cast(types.FunctionType, method), "filename_or_obj")
    return found


# --- registries a group puts back as it found them ----------------------------

RegistrySnapshot = tuple[dict[Any, Any], ...]


def _registries() -> tuple[dict[Any, Any], ...]:
    """The dicts behind the units registry and the colormap and color-sequence registries."""
    import matplotlib.units

    found: list[dict[Any, Any]] = [matplotlib.units.registry, matplotlib.colormaps._cmaps]  # type: ignore[attr-defined]
    sequences = getattr(matplotlib, "color_sequences", None)  # matplotlib >= 3.6
    if sequences is not None:
        found.append(sequences._color_sequences)
    return tuple(found)


def snapshot_registries() -> RegistrySnapshot:
    """Shallow copies of the registries (the converters and colormaps themselves are shared)."""
    return tuple(dict(registry) for registry in _registries())


def restore_registries(snapshot: RegistrySnapshot) -> None:
    """Put back a :func:`snapshot_registries` copy, touching only the entries that changed.

    Entries are compared by identity (a colormap's ``==`` compares its whole
    lookup table), and the dicts are never cleared, so a thread reading a
    registry without the lock never finds it empty.
    """
    for registry, saved in zip(_registries(), snapshot):
        if len(registry) == len(saved) and all(registry.get(k, _MISSING) is v for k, v in saved.items()):
            continue
        for key in [key for key in registry if key not in saved]:
            del registry[key]
        for key, value in saved.items():
            if registry.get(key, _MISSING) is not value:
                dict.__setitem__(registry, key, value)


_MISSING = object()


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
