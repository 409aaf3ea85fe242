"""Encoding raster images with the lock released, so that threads encode while another draws.

PIL's encoders (zlib, libjpeg, libwebp, libtiff) release the GIL, so on a
threaded server one request can encode its PNG while another draws.  Holding
:data:`safeplot.lock` through the encoding would forbid that.  matplotlib hands
a finished image to PIL's ``Image.save`` as the very last thing its saving
functions do (``_compat.pil_save_functions``); their code is swapped, once, at
import, for a trampoline that gives PIL a wrapper of the output file.  When
PIL starts saving (it asks the file for its ``name``; at the latest, its first
``write``), the wrapper opens an :class:`~safeplot._group.OutsideWindow`: the
group's figures, ``rcParams`` and registry changes are set aside and the lock
is released.  When the saving function returns, the lock is taken back and
the group's state re-applied, before any more of matplotlib runs.

Everything the encoder uses was read under the lock: matplotlib has built
the PIL image and its save arguments (metadata, dpi, JPEG background) before
calling ``Image.save``.  The window opens only for a thread whose holds of
the lock are all ``locked()`` groups (a ``with safeplot.lock:`` or legacy
``RendererAgg.lock`` block keeps it held), only for one of those groups' own
pyplot figures (one shared with other groups could be redrawn meanwhile),
only for a file object without a path name (``io.BytesIO``, a socket file:
PIL treats a path differently), and only while ``configure(encode_window=)``
is on.
"""

from __future__ import annotations

import inspect
import os
import types
from types import TracebackType
from typing import Any

from . import _compat
from ._group import OutsideWindow

_PREPARE = "_safeplot_encoding"  # the name the trampolines call, in the globals of each swapped function


def _trampoline(*args: Any, **kwargs: Any) -> Any:
    # Runs as matplotlib's saving function itself (its globals, its file name),
    # so warnings raised in the original still point at the caller's line.
    call = _safeplot_encoding("__key__", args, kwargs)  # type: ignore[name-defined]  # noqa: F821
    with call:
        return call.function(*call.args, **call.kwargs)


class _WindowedFile:
    """The output file as PIL sees it: the window opens when PIL starts saving into it."""

    def __init__(self, target: Any, window: OutsideWindow) -> None:
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

    def __init__(self, function: types.FunctionType, args: Any, kwargs: Any, window: OutsideWindow | None):
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
    __slots__ = ("file_parameter", "original", "signature")

    def __init__(self, function: types.FunctionType, file_parameter: str) -> None:
        self.signature = inspect.signature(function)
        self.file_parameter = file_parameter
        self.original = types.FunctionType(
            function.__code__, function.__globals__, function.__name__, function.__defaults__
        )
        self.original.__kwdefaults__ = function.__kwdefaults__


_targets: dict[str, _Target] = {}


def _prepare(key: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
    target = _targets[key]
    if not OutsideWindow.possible():  # most saves: no need to look at the arguments
        return _Call(target.original, args, kwargs, None)
    bound = target.signature.bind(*args, **kwargs)
    # What is being encoded: the canvas itself, or the Agg renderer whose buffer imsave was given.
    saving = bound.arguments.get("self") or getattr(bound.arguments.get("arr"), "obj", None)
    if saving is None or not OutsideWindow.allowed(saving):
        return _Call(target.original, args, kwargs, None)
    output = bound.arguments.get(target.file_parameter)
    fmt = bound.arguments.get("format") if "format" in target.signature.parameters else "jpeg or tiff"
    raster = fmt == "jpeg or tiff" or (isinstance(fmt, str) and fmt.lower() in _compat.PIL_FORMATS)
    if not raster or not _is_unnamed_file(output):
        return _Call(target.original, args, kwargs, None)
    window = OutsideWindow()
    bound.arguments[target.file_parameter] = _WindowedFile(output, window)
    return _Call(target.original, bound.args, bound.kwargs, window)


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
        _targets[key] = _Target(function, file_parameter)
        function.__globals__[_PREPARE] = _prepare
        function.__signature__ = _targets[key].signature  # type: ignore[attr-defined]
        template = _trampoline.__code__
        consts = tuple(key if const == "__key__" else const for const in template.co_consts)
        function.__code__ = template.replace(
            co_consts=consts, co_name=function.__code__.co_name, co_filename=function.__code__.co_filename
        )
