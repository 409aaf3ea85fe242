"""Choosing and forcing the non-interactive backend pyplot uses."""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import matplotlib

from . import _compat
from ._errors import SafeplotWarning

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
            why = "an interactive backend hangs or crashes off the main thread" if interactive else (
                f"set {BACKEND_ENV} to keep a non-interactive backend"
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
