"""pyplot's process-wide state as one value: its figures, ``rcParams`` and the registries.

:class:`PyplotState` is what a group sets aside, puts back or re-applies; every
place that does so goes through :meth:`PyplotState.capture` and
:meth:`PyplotState.apply`.  The caller holds :data:`safeplot.lock`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.figure import Figure

from . import _compat

Figures = dict[Any, FigureManagerBase]  # pyplot's figure registry: number -> manager, the current one last


class PyplotState(NamedTuple):
    """A copy of pyplot's figures (in order, the current one last), ``rcParams`` and registries.

    The figures themselves, colormaps and unit converters are shared, not
    copied: applying a state makes the same objects current again.
    """

    figures: Figures
    rc: _compat.RcSnapshot
    registries: _compat.RegistrySnapshot

    @classmethod
    def capture(cls) -> PyplotState:
        """The state now (about 0.1 ms: a raw copy of ~300 ``rcParams``)."""
        return cls(dict(Gcf.figs), _compat.snapshot_rcparams(), _compat.snapshot_registries())

    def apply(self, *, figures: bool = True) -> None:
        """Make this the state: the same figures open (unless ``figures=False``), ``rcParams``, registries."""
        if figures:
            set_figures(self.figures)
        _compat.restore_rcparams(self.rc)
        _compat.restore_registries(self.registries)

    def apply_view(self) -> None:
        """Make this state's current figure current again (if open) and apply its ``rcParams`` and
        registries; other figures opened meanwhile stay open."""
        if self.figures:
            current = list(self.figures.values())[-1]
            for number, manager in list(Gcf.figs.items()):
                if manager is current:
                    Gcf.figs.move_to_end(number)
        _compat.restore_rcparams(self.rc)
        _compat.restore_registries(self.registries)

    def keep_changes(self, before: PyplotState, after: PyplotState) -> None:
        """Make this state hold what changed from ``before`` to ``after`` in ``rcParams`` and registries.

        For changes that must outlive the group this state belongs to (what a
        module's first import did); values are compared by identity.
        """
        for name, value in after.rc.items():
            if before.rc.get(name, _MISSING) is not value:
                self.rc[name] = value
        for mine, old, new in zip(self.registries, before.registries, after.registries):
            for key, value in new.items():
                if old.get(key, _MISSING) is not value:
                    mine[key] = value
            for key in old.keys() - new.keys():
                mine.pop(key, None)


_MISSING = object()


def open_figures() -> Figures:
    """pyplot's figure registry as it is now (a copy)."""
    return dict(Gcf.figs)


def set_figures(figures: Figures) -> None:
    """Make exactly these figures pyplot's, in this order (the last one current)."""
    Gcf.figs.clear()
    Gcf.figs.update(figures)


def hide_figures() -> Figures:
    """Set every open pyplot figure aside (not closed) and return them."""
    figures = dict(Gcf.figs)
    Gcf.figs.clear()
    return figures


def close_figures_except(kept: Figures) -> int:
    """Close every pyplot figure not in ``kept`` (by identity), as ``plt.close`` does; return how many."""
    kept_managers = {id(manager) for manager in kept.values()}
    opened = [manager for manager in list(Gcf.figs.values()) if id(manager) not in kept_managers]
    return _compat.close_managers(opened)


def close_managers_of(figures: Figures, *, kept: Figures) -> int:
    """Close those of ``figures`` (open or set aside) that are not in ``kept``; return how many."""
    kept_managers = {id(manager) for manager in kept.values()}
    return _compat.close_managers(m for m in figures.values() if id(m) not in kept_managers)


def current_figure() -> Figure | None:
    """pyplot's current figure, without making one; None when there is none."""
    manager = Gcf.get_active()
    if manager is None:
        return None
    figure: Figure = manager.canvas.figure
    return figure


def is_open(figure: Figure, among: Figures) -> bool:
    """Whether ``figure`` is one of the pyplot figures ``among``."""
    return any(manager.canvas.figure is figure for manager in among.values())
