"""Choosing and forcing the non-interactive backend pyplot uses, and its Agg canvas."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from . import _compat
from ._errors import SafeplotWarning
from ._patch import Swap

BACKEND_ENV = "SAFEPLOT_BACKEND"
DEFAULT_BACKEND = "agg"


def _normalise(name: str) -> str:
    name = name.strip()
    return name if name.startswith("module://") else name.lower()


def _is_headless_module(name: str) -> bool:
    module = importlib.import_module(name[len("module://") :])
    canvas = getattr(module, "FigureCanvas", None)
    return canvas is not None and getattr(canvas, "required_interactive_framework", None) is None


def backend_from_env(raw: str | None) -> str:
    """The backend to force: ``SAFEPLOT_BACKEND`` if set and non-interactive, else Agg.

    Raises ValueError naming the variable for an interactive, unknown or
    unloadable backend.
    """
    if raw is None or not raw.strip():
        return DEFAULT_BACKEND
    name = _normalise(raw)
    if name in _compat.builtin_backends(interactive=False):
        return name
    allowed = ", ".join(sorted(_compat.builtin_backends(interactive=False)))
    if name in _compat.builtin_backends(interactive=True):
        raise ValueError(
            f"{BACKEND_ENV}={raw!r} is an interactive backend, which hangs or crashes "
            f"off the main thread; use a non-interactive one: {allowed}"
        )
    if name.startswith("module://"):
        try:
            headless = _is_headless_module(name)
        except ImportError as exc:
            raise ValueError(f"{BACKEND_ENV}={raw!r} cannot be imported: {exc}") from exc
        if not headless:
            raise ValueError(f"{BACKEND_ENV}={raw!r} needs a GUI event loop; use a non-interactive backend")
        return name
    raise ValueError(f"{BACKEND_ENV}={raw!r} is not a matplotlib backend; use one of: {allowed}")


def force_backend() -> str:
    """Make pyplot use the chosen non-interactive backend, before it can pick a GUI one.

    If pyplot was imported earlier with another backend already chosen, it is
    switched, with a :class:`SafeplotWarning` saying from what.  Returns the
    backend's name.
    """
    target = backend_from_env(os.environ.get(BACKEND_ENV))
    if "matplotlib.pyplot" in sys.modules:
        previous = _compat.configured_backend()
        if previous is not None and _normalise(previous) != target:
            interactive = _normalise(previous) in _compat.builtin_backends(interactive=True)
            why = (
                "an interactive backend hangs or crashes off the main thread"
                if interactive
                else (f"set {BACKEND_ENV} to keep a non-interactive backend")
            )
            warnings.warn(
                f"safeplot switched pyplot's backend from {previous!r} to {target!r}: {why}",
                SafeplotWarning,
                stacklevel=3,
            )
    else:
        matplotlib.use(target)
    import matplotlib.pyplot as plt

    plt.switch_backend(target)
    return target


class DeferredDrawCanvasAgg(FigureCanvasAgg):
    """The Agg canvas of a pyplot figure after ``plt.savefig``, with its redraw deferred.

    Stock ``pyplot.savefig`` ends with ``canvas.draw_idle()``, which on Agg is
    a second full draw whose pixels nobody sees unless they read the canvas.
    Here that draw happens only when something reads the canvas's pixels
    (``_compat.AGG_PIXEL_READERS``) or asks for a draw; a figure that is saved
    and closed is drawn once.  Figures with a layout engine are redrawn at once
    as stock does, since their layout depends on every draw before.
    """

    _safeplot_draw_pending = False

    def draw(self) -> None:
        self._safeplot_draw_pending = False
        super().draw()  # type: ignore[no-untyped-call]

    def _draw_if_pending(self) -> None:
        if self._safeplot_draw_pending:
            self.draw()


def _draws_first(name: str) -> Callable[..., Any]:
    read = getattr(FigureCanvasAgg, name)

    @functools.wraps(read)
    def draw_then_read(self: DeferredDrawCanvasAgg, *args: Any, **kwargs: Any) -> Any:
        self._draw_if_pending()
        return read(self, *args, **kwargs)

    return draw_then_read


for _name in _compat.AGG_PIXEL_READERS:
    setattr(DeferredDrawCanvasAgg, _name, _draws_first(_name))


def _deferred_savefig(*args: Any, **kwargs: Any) -> Any:
    # Becomes the code of pyplot.savefig, with pyplot's globals (gcf is
    # pyplot's) and pyplot's file name: matplotlib's warnings skip its frame as
    # they skip any of matplotlib's (by module name before Python 3.12, by file
    # name since) and point at the caller's line, as with stock savefig.
    fig = gcf()  # type: ignore[name-defined]  # noqa: F821
    result = fig.savefig(*args, **kwargs)
    _safeplot_after_savefig(fig)  # type: ignore[name-defined]  # noqa: F821
    return result


def _after_savefig(fig: Figure) -> None:
    """What stock pyplot.savefig does after saving, with the Agg redraw deferred."""
    canvas = fig.canvas
    if type(canvas) in (FigureCanvasAgg, DeferredDrawCanvasAgg) and not _compat.has_layout_engine(fig):
        canvas.__class__ = DeferredDrawCanvasAgg
        canvas._safeplot_draw_pending = True  # type: ignore[attr-defined]
    else:
        canvas.draw_idle()  # what stock pyplot does


_savefig_swap: list[Swap] = []


def defer_savefig_redraw() -> None:
    """Make ``pyplot.savefig`` defer its trailing redraw on Agg canvases (once per process).

    The code of matplotlib's own ``savefig`` function is swapped, so names
    imported earlier with ``from matplotlib.pyplot import savefig`` get it too.
    If an app put another function in its place, pyplot is left as it is.
    """
    import matplotlib.pyplot as plt

    savefig = plt.__dict__.get("savefig")
    if _savefig_swap or not _compat.is_matplotlibs_own(savefig):
        return
    assert isinstance(savefig, types.FunctionType)
    swap = Swap(savefig, "pyplot.savefig")
    swap.apply(_deferred_savefig, {"_safeplot_after_savefig": _after_savefig})
    _savefig_swap.append(swap)
