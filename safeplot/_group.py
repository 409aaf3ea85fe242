"""``locked()``: a group of pyplot calls that runs alone and cleans up after itself."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import Any, TypeVar, overload

import matplotlib.pyplot as plt
from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.figure import Figure

from . import _compat
from ._lock import _UNSET, check_timeout, lock

F = TypeVar("F", bound=Callable[..., Any])


class _Frame:
    """What one entered group must put back when it ends."""

    __slots__ = ("hidden", "present", "rc", "registries")

    def __init__(
        self,
        hidden: dict[Any, FigureManagerBase] | None,
        present: set[FigureManagerBase],
    ) -> None:
        self.hidden = hidden  # figures of outside, set aside by an outermost group
        self.present = present  # figures a nested group found open, and leaves open
        self.rc = _compat.snapshot_rcparams()
        self.registries = _compat.snapshot_registries()  # units, colormaps, color sequences


class _Frames(threading.local):
    def __init__(self) -> None:
        self.stack: list[_Frame] = []


_frames = _Frames()


def figure_opened_in_group() -> Figure | None:
    """The current pyplot figure if the innermost group of this thread opened it, else None."""
    manager = Gcf.get_active()
    if not _frames.stack or manager is None or manager in _frames.stack[-1].present:
        return None
    figure: Figure = manager.canvas.figure
    return figure


def _open_frame(*, outermost: bool) -> _Frame:
    """Start a group's frame (the lock held): an outermost one sets the figures of outside aside."""
    if not outermost:
        return _Frame(None, set(Gcf.figs.values()))
    frame = _Frame(dict(Gcf.figs), set())
    Gcf.figs.clear()
    return frame


def _close_frame(frame: _Frame) -> None:
    """End a group's frame (the lock held): close what it opened, put back what it changed."""
    opened = [m for m in list(Gcf.figs.values()) if m not in frame.present]
    try:
        lock.count_figures_closed(_compat.close_managers(opened))
    finally:
        if frame.hidden is not None:
            Gcf.figs.clear()
            Gcf.figs.update(frame.hidden)
        _compat.restore_rcparams(frame.rc)
        _compat.restore_registries(frame.registries)


class ContextGroup:
    """An outermost group held for a context (an ASGI request), begun in one thread, ended in another.

    :meth:`enter` takes the lock in the calling thread and claims it for the
    context's owner (``_lock.context_owner``), so that the thread may go on to
    other work (a thread pool's) without holding it for that work.
    :meth:`exit`, in any thread running the same context (the event loop's),
    takes the hold over without waiting and ends the group as ``locked()``
    does.  Its frame is kept here, not on a thread's stack.
    """

    __slots__ = ("_frame", "_timeout")

    def __init__(self, timeout: float | None) -> None:
        self._timeout = timeout
        self._frame: _Frame | None = None

    def enter(self) -> None:
        """Raises :class:`safeplot.LockTimeout` when the lock is not had in time."""
        lock.acquire_within(lock.default_timeout if self._timeout is _UNSET else self._timeout)
        try:
            lock._claim_for_context()
            self._frame = _open_frame(outermost=True)
        except BaseException:
            lock.release()
            raise

    def exit(self) -> None:
        frame, self._frame = self._frame, None
        if frame is None:
            return
        lock._take_over()
        try:
            _close_frame(frame)
        finally:
            lock.release()


class OutsideWindow:
    """A stretch in which this thread's groups let the lock go, leaving no trace of themselves.

    For work that needs none of matplotlib's shared state (PIL encoding a
    finished image).  :meth:`open` puts back the state of outside the
    outermost group (its figures, ``rcParams``, registries) and releases the
    lock; :meth:`close` takes the lock back, takes the current state as the
    new outside (a ``with safeplot.lock:`` block elsewhere may have changed it
    meanwhile) and re-applies the groups' own state.  Only a thread that holds
    the lock through ``locked()`` groups alone may open one, for a figure of
    its own (:meth:`allowed`).
    """

    __slots__ = ("_hold", "_saved")

    def __init__(self) -> None:
        self._saved: tuple[dict[Any, FigureManagerBase], _compat.RcSnapshot, Any] | None = None
        self._hold: Any = None

    @staticmethod
    def possible() -> bool:
        """The cheap part of :meth:`allowed`: the window is on and every hold is a ``locked()`` group's."""
        depth = lock._held_depth()
        return lock.encode_window and depth > 0 and depth == len(_frames.stack)

    @staticmethod
    def allowed(saving: object) -> bool:
        """Whether this thread may open a window while ``saving`` (a canvas, or its renderer) is encoded.

        Only if every hold of the lock by this thread is a ``locked()``
        group's, the window is on (:func:`safeplot.configure`), and the figure
        is one of the groups' own pyplot figures: no other group can reach it
        meanwhile (a figure made outside the groups, kept at module level and
        redrawn by every request, is not).
        """
        if not OutsideWindow.possible():
            return False
        for manager in Gcf.figs.values():
            renderer = getattr(manager.canvas, "renderer", None)
            parts = (manager.canvas, renderer, getattr(renderer, "_renderer", None))  # imsave gets the last
            if any(saving is part for part in parts):
                return True
        return False

    def open(self) -> None:
        if self._saved is not None:
            return
        outside = _frames.stack[0]
        assert outside.hidden is not None  # the outermost group's
        self._saved = (dict(Gcf.figs), _compat.snapshot_rcparams(), _compat.snapshot_registries())
        Gcf.figs.clear()
        Gcf.figs.update(outside.hidden)
        _compat.restore_rcparams(outside.rc)
        _compat.restore_registries(outside.registries)
        self._hold = lock._release_for_window()

    def close(self) -> None:
        if self._saved is None:
            return
        lock._end_window(self._hold)
        figures, rc, registries = self._saved
        self._saved = None
        outside = _frames.stack[0]
        outside.hidden = dict(Gcf.figs)
        outside.rc = _compat.snapshot_rcparams()
        outside.registries = _compat.snapshot_registries()
        Gcf.figs.clear()
        Gcf.figs.update(figures)
        _compat.restore_rcparams(rc)
        _compat.restore_registries(registries)


def check_lockable(func: Callable[..., Any]) -> None:
    """Refuse, with TypeError, a function whose body would run after a wrapper returned."""
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        kind = "async function"
    elif inspect.isgeneratorfunction(func):
        kind = "generator function"
    else:
        return
    raise TypeError(
        f"safeplot cannot lock {kind} {func.__qualname__}: the lock would be "
        "released before its body runs; lock inside it instead"
    )


class _Group:
    """The object ``locked()`` returns: a context manager and a decorator.

    It keeps no per-entry state of its own (that lives on a per-thread stack),
    so one object may be shared by threads and entered recursively.
    """

    __slots__ = ("_timeout",)

    def __init__(self, timeout: float | None) -> None:
        self._timeout = timeout

    def __repr__(self) -> str:
        return (
            "safeplot.locked()" if self._timeout is _UNSET else f"safeplot.locked(timeout={self._timeout!r})"
        )

    def __enter__(self) -> ModuleType:
        timeout = lock.default_timeout if self._timeout is _UNSET else self._timeout
        lock.acquire_within(timeout)
        try:
            # Inside a request's context-held group (ASGI), this group is a nested one.
            outermost = not _frames.stack and lock._context_owner is None
            _frames.stack.append(_open_frame(outermost=outermost))
        except BaseException:
            lock.release()
            raise
        return plt

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        frame = _frames.stack.pop()
        try:
            _close_frame(frame)
        finally:
            lock.release()

    def __call__(self, func: F) -> F:
        check_lockable(func)

        @functools.wraps(func)
        def run_in_group(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return run_in_group  # type: ignore[return-value]


@overload
def locked(func: F, /) -> F: ...


@overload
def locked(*, timeout: float | None = ...) -> _Group: ...


def locked(func: Callable[..., Any] | None = None, /, *, timeout: float | None = _UNSET) -> Any:
    """Run pyplot calls as one group, alone and cleaned up afterwards.

    Use as ``with safeplot.locked() as plt:`` (``plt`` is ``matplotlib.pyplot``),
    as a bare decorator ``@safeplot.locked``, or as ``@safeplot.locked(timeout=5)``.

    The group holds :data:`safeplot.lock`.  An outermost group starts with no
    pyplot figures visible (those of outside are set aside, not closed) and the
    ``rcParams`` of outside.  When it ends, normally or by an exception, every
    figure opened in it is closed, every ``rcParams``/``plt.style.use`` change
    is undone, so are changes to the units registry and the colormap and
    color-sequence registries, the figures of outside come back as they were,
    and the lock is released.  A nested group in the same thread sees the
    outer group's figures, closes only those it opened and undoes only its
    own changes.

    ``timeout`` (seconds; None waits forever) defaults to the value set with
    :func:`safeplot.configure`.  Raises :class:`safeplot.LockTimeout` when the
    lock is not had in time, TypeError when decorating an ``async def`` or a
    generator function (the lock would be released before the body runs) or
    given something that is not a function, ValueError for a negative timeout.
    """
    if timeout is not _UNSET:
        timeout = check_timeout(timeout)
    group = _Group(timeout)
    if func is None:
        return group
    if not callable(func):
        raise TypeError(f"safeplot.locked takes a function to decorate or timeout=...; got {func!r}")
    return group(func)
