"""Encoding raster images with the lock released, so that threads encode while another draws.

PIL's encoders (zlib, libjpeg, libwebp, libtiff) release the GIL, so on a
threaded server one request can encode its PNG while another draws.  Holding
:data:`safeplot.lock` through the encoding would forbid that.  matplotlib hands
a finished image to PIL's ``Image.save`` as the very last thing its saving
functions do (``_compat.pil_save_functions``); their code is swapped, once, at
import, for a trampoline that gives PIL a wrapper of the output file.  When
PIL starts saving (it asks the file for its ``name``; at the latest, its first
``write``), the wrapper opens an :class:`EncodeWindow`: the group's figures,
``rcParams`` and registry changes are set aside, the state of outside is put
back, and the lock is released.  When the saving function returns, the lock
is taken back, before anyone else waiting for it, and the group's state
re-applied, before any more of matplotlib runs.

Everything the encoder uses was read under the lock: matplotlib has built
the PIL image and its save arguments (metadata, dpi, JPEG background) before
calling ``Image.save``.  The window opens only for a thread whose holds of
the lock are all its own ``locked()`` groups (a ``with safeplot.lock:`` or
legacy ``RendererAgg.lock`` block keeps it held, and so does a request's hold
under a middleware), never while the thread holds a lock that another thread
may wait for while holding safeplot's (matplotlib's render lock, in a
``savefig`` inside a draw; a logging handler's lock, in a handler that
renders; a module's import lock, in its top-level code), only for one of
the groups' own pyplot figures (one shared with other groups could be
redrawn meanwhile), only for a file object without a
path name (``io.BytesIO``, a socket file: PIL treats a path differently), and
only while ``configure(encode_window=)`` is on.
"""

from __future__ import annotations

import inspect
import os
import sys
import types
from types import TracebackType
from typing import Any

from . import _compat
from ._group import own_groups, resume, suspend
from ._lock import WindowHold, lock
from ._owners import Runner, current_runner
from ._patch import Swap
from ._state import open_figures

_DISPATCH = "_safeplot_encoding"  # the name the trampolines call, in the globals of each swapped function


def _trampoline(*args: Any, **kwargs: Any) -> Any:
    # Runs as matplotlib's saving function itself (its globals, its file name),
    # so warnings raised in the original still point at the caller's line.
    call = _safeplot_encoding("__key__", args, kwargs)  # type: ignore[name-defined]  # noqa: F821
    with call:
        return call.function(*call.args, **call.kwargs)


class EncodeWindow:
    """A stretch in which a thread's groups let the lock go, leaving no trace of themselves.

    :meth:`open` puts back the state of outside the runner's outermost group
    and releases the lock; :meth:`close` takes the lock back (before anyone
    else waiting), takes the current state as the new outside (a ``with
    safeplot.lock:`` block elsewhere may have changed it meanwhile) and
    re-applies the groups' own state.
    """

    __slots__ = ("_hold", "runner")

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self._hold: WindowHold | None = None

    @staticmethod
    def possible(runner: Runner) -> bool:
        """The cheap part of :func:`_window_for`: the window is on, every hold one of ``runner``'s groups."""
        depth = lock.runner_holds(runner)
        return lock.encode_window and depth > 0 and depth == own_groups(runner)

    def open(self) -> None:
        if self._hold is not None:
            return
        suspend(self.runner)
        self._hold = lock.open_window(self.runner)

    def close(self) -> None:
        hold, self._hold = self._hold, None
        if hold is None:
            return
        lock.close_window(hold)
        resume(self.runner)


def _window_for(saving: object) -> EncodeWindow | None:
    """A window for encoding ``saving`` (a canvas, or its renderer), if this thread may open one.

    Only if every hold of the lock by this thread is one of its own
    ``locked()`` groups, the window is on (:func:`safeplot.configure`), the
    thread is not inside a draw, and the figure is one of the groups' own
    pyplot figures: no other group can reach it meanwhile (a figure made
    outside the groups, kept at module level and redrawn by every request, is
    not).
    """
    runner = current_runner()
    if not EncodeWindow.possible(runner) or _holds_other_locks():
        return None
    for manager in open_figures().values():
        renderer = getattr(manager.canvas, "renderer", None)
        parts = (manager.canvas, renderer, getattr(renderer, "_renderer", None))  # imsave gets the last
        if any(saving is part for part in parts):
            return EncodeWindow(runner)
    return None


def _holds_other_locks() -> bool:
    """Whether the calling thread holds a lock that another thread may wait for while holding safeplot's.

    Letting safeplot's lock go and taking it back while holding such a lock
    could deadlock with that thread: matplotlib's render lock (a save inside
    a draw), a logging handler's lock (a handler that renders), a module's
    import lock (a save in a module's top-level code).
    """
    frame = sys._getframe(2)
    return _compat.holds_drawing_lock() or _compat.in_logging_handler(frame) or _compat.in_first_import(frame)


class _WindowedFile:
    """The output file as PIL sees it: the window opens when PIL starts saving into it."""

    def __init__(self, target: Any, window: EncodeWindow) -> None:
        self._target = target
        self._window = window

    @property
    def name(self) -> Any:
        # Image.save asks for the file's name once its arguments are settled,
        # just before it encodes.  The target has no path name (checked).
        self._window.open()
        raise AttributeError("name")

    def write(self, data: Any) -> Any:
        self._window.open()
        return self._target.write(data)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._target, attribute)


class _Call:
    """One call of a swapped saving function: what to run, and the window around it."""

    __slots__ = ("args", "function", "kwargs", "window")

    def __init__(self, function: types.FunctionType, args: Any, kwargs: Any, window: EncodeWindow | None):
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.window = window

    def __enter__(self) -> None:
        pass

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.window is not None:
            self.window.close()


class _Target:
    __slots__ = ("file_parameter", "signature", "swap")

    def __init__(self, swap: Swap, file_parameter: str) -> None:
        self.swap = swap
        self.signature = inspect.signature(swap.function)
        self.file_parameter = file_parameter


_targets: dict[str, _Target] = {}


def _prepare(key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
    target = _targets[key]
    original = target.swap.original
    if not EncodeWindow.possible(current_runner()):  # most saves: no need to look at the arguments
        return _Call(original, args, kwargs, None)
    bound = target.signature.bind(*args, **kwargs)
    # What is being encoded: the canvas itself, or the Agg renderer whose buffer imsave was given.
    saving = bound.arguments.get("self") or getattr(bound.arguments.get("arr"), "obj", None)
    window = _window_for(saving) if saving is not None else None
    if window is None:
        return _Call(original, args, kwargs, None)
    output = bound.arguments.get(target.file_parameter)
    fmt = bound.arguments.get("format") if "format" in target.signature.parameters else "jpeg or tiff"
    raster = fmt == "jpeg or tiff" or (isinstance(fmt, str) and fmt.lower() in _compat.PIL_FORMATS)
    if not raster or not _is_unnamed_file(output):
        return _Call(original, args, kwargs, None)
    bound.arguments[target.file_parameter] = _WindowedFile(output, window)
    return _Call(original, bound.args, bound.kwargs, window)


def _is_unnamed_file(output: object) -> bool:
    if not hasattr(output, "write"):
        return False
    name = getattr(output, "name", None)
    return not isinstance(name, (str, bytes, os.PathLike))


def release_lock_while_encoding() -> None:
    """Swap the code of matplotlib's PIL-saving functions for the trampoline (once per process)."""
    if _targets:
        return
    for key, (function, file_parameter) in _compat.pil_save_functions().items():
        target = _targets[key] = _Target(Swap(function, key), file_parameter)
        target.swap.apply(_trampoline, {_DISPATCH: _prepare})
