"""Figures and legacy callbacks to bytes; output formats and their mimetypes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

from matplotlib.backend_bases import FigureCanvasBase
from matplotlib.figure import Figure

from ._group import figure_opened_in_group, locked
from ._lock import lock
from ._state import current_figure

_MIMETYPES = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
    "tif": "image/tiff",
    "tiff": "image/tiff",
    "eps": "application/postscript",
    "ps": "application/postscript",
    "pgf": "text/x-tex",
    "raw": "application/octet-stream",
    "rgba": "application/octet-stream",
}


def supported_formats() -> list[str]:
    """The output formats this matplotlib can write (``svgz`` is left out: it is gzip)."""
    return sorted(fmt for fmt in FigureCanvasBase.get_supported_filetypes() if fmt in _MIMETYPES)


def check_format(format: str) -> str:
    """Return the lower-case format name; ValueError listing the supported ones otherwise."""
    fmt = format.lower().lstrip(".") if isinstance(format, str) else format
    if fmt not in supported_formats():
        raise ValueError(f"unsupported format {format!r}; supported: {', '.join(supported_formats())}")
    return str(fmt)


def mimetype(format: str) -> str:
    """The mimetype of an output format, e.g. ``image/svg+xml`` for ``svg``."""
    return _MIMETYPES[check_format(format)]


def render(fig: Figure | None = None, format: str = "png", **savefig_kwargs: Any) -> bytes:
    """Save a figure (by default pyplot's current one) to bytes.

    ``savefig_kwargs`` go to ``Figure.savefig`` (``dpi``, ``transparent``,
    ``bbox_inches``, ``metadata``...).  The figure is left open.  Holds
    :data:`safeplot.lock` while it draws.  Raises ValueError for an unknown
    format (the message lists the supported ones) or when there is no current
    figure, TypeError when ``fig`` is not a figure, and
    :class:`safeplot.LockTimeout` as ``with safeplot.lock:`` does.
    """
    fmt = check_format(format)
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError(f"render() needs a matplotlib Figure, not {type(fig).__name__}")
    # Inside a group the lock is held already; another level of it would keep
    # the group from releasing it while PIL encodes (see _encode).
    with contextlib.nullcontext() if lock.is_owned() else lock:
        if fig is None:
            fig = current_figure()
            if fig is None:
                raise ValueError("render() found no current pyplot figure: draw one first or pass fig=")
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, **savefig_kwargs)
        return buffer.getvalue()


def figure_drawn_by(func: Callable[..., Any], result: object) -> Figure:
    """The figure a callback drew, called inside the group it ran in.

    That is ``result`` if it is a figure, else the current figure if the
    group opened it.  Raises ValueError when there is none or it is blank.
    """
    name = getattr(func, "__qualname__", func)
    fig = result if isinstance(result, Figure) else figure_opened_in_group()
    if fig is None:
        raise ValueError(
            f"callback {name!r} drew nothing: it opened no pyplot figure "
            f"and returned {type(result).__name__}, not a Figure"
        )
    if len(fig.get_children()) <= 1:  # only the background patch
        raise ValueError(f"callback {name!r} drew nothing: its figure is blank")
    return fig


def render_callback(
    func: Callable[..., Any],
    *args: Any,
    format: str = "png",
    savefig_kwargs: dict[str, Any] | None = None,
    **kwargs: Any,
) -> bytes:
    """Run a legacy pyplot callback in a ``locked()`` group and return its figure as bytes.

    ``func(*args, **kwargs)`` runs inside a group; if it returns a figure that
    one is rendered, else the current figure it opened.  Its figures are closed
    afterwards.  ``savefig_kwargs`` go to ``Figure.savefig``.  Raises
    ValueError when the callback drew nothing (opened no figure, or only a
    blank one) or the format is unknown; :class:`safeplot.LockTimeout` when
    the lock is not had within the configured timeout; exceptions from
    ``func`` propagate after the group is cleaned up.
    """
    fmt = check_format(format)
    with locked():
        fig = figure_drawn_by(func, func(*args, **kwargs))
        return render(fig, fmt, **(savefig_kwargs or {}))
