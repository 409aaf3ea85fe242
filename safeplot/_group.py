"""Groups: pyplot calls that run alone and clean up after themselves; ``locked()``.

A group holds :data:`safeplot.lock` for its owner (:mod:`safeplot._owners`)
and keeps a :class:`Frame`: the state it puts back when it ends.  An
outermost group sets the figures of outside aside and puts back the whole
state of outside at its end; a nested one closes only what it opened and
undoes only its own changes.  Two kinds of groups use frames: ``locked()``
(:class:`Group`, entered and exited by one thread) and a request's group
(:func:`open_request_group`, begun by the request's first touch of shared
state in any of its threads and ended when the request ends).
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import Any, TypeVar, overload

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ._compat import PAUSED, first_imports
from ._guard import hooks
from ._lock import DEFAULT, RequestEnded, TimeoutOption, lock, resolve_timeout, timeout_option
from ._owners import JobOwner, Owner, RequestOwner, Runner, current, current_runner
from ._state import (
    Figures,
    PyplotState,
    close_figures_except,
    close_managers_of,
    current_figure,
    hide_figures,
    is_open,
)

F = TypeVar("F", bound=Callable[..., Any])


class Frame:
    """One open group: the state it found, which it puts back when it ends.

    For an outermost group that is the state of outside, whose figures it sets
    aside at the start (they are not closed) and brings back at the end; for a
    nested group, the figures it found stay open and only its own changes to
    ``rcParams`` and the registries are undone.
    """

    __slots__ = ("entry", "imports", "outermost")

    def __init__(self, *, outermost: bool, explicit: bool) -> None:
        self.outermost = outermost
        self.entry = PyplotState.capture()
        # The first imports under way as code opens it (an implicit group, begun by a first touch
        # that an import makes, is the request's or job's, not the module's).
        self.imports = first_imports(sys._getframe(2)) if explicit else ()
        if outermost:
            hide_figures()

    def close(self, others: Figures | None = None) -> None:
        """Close what the group opened and put back what it changed (the lock held).

        ``others``: figures of other threads of the same request, which a
        nested group leaves open.
        """
        kept = {} if self.outermost else {**self.entry.figures, **(others or {})}
        try:
            lock.count_figures_closed(close_figures_except(kept))
        finally:
            self.entry.apply(figures=self.outermost)

    def is_own(self, figure: Figure) -> bool:
        """Whether ``figure`` is a pyplot figure the group opened (not one it found)."""
        return not is_open(figure, self.entry.figures)


def _open(owner: Owner, runner: Runner | None) -> Frame:
    """Open a frame for ``owner``: a group ``runner`` entered, or (None) an implicit group."""
    frame = Frame(outermost=not owner.frames, explicit=runner is not None)
    owner.frames.append(frame)
    if runner is not None:
        runner.entries.append((owner, frame))
    return frame


def _close(owner: Owner, frame: Frame) -> None:
    others: Figures = {}
    if isinstance(owner, RequestOwner):  # what its other threads are drawing, set aside as their views
        for view in owner.views.values():
            others.update(view.figures)
    try:
        frame.close(others)
    finally:
        owner.frames.remove(frame)


def enter_group(owner: Owner, runner: Runner, timeout: float | None) -> None:
    """Begin a group of ``runner``'s for ``owner``: take the lock, open a frame.

    Raises :class:`safeplot.LockTimeout` (and RequestEnded) as
    :meth:`PlotLock.take` does, with nothing held.
    """
    lock.take(owner, runner, timeout)
    try:
        _open(owner, runner)
    except BaseException:
        lock.give_back(owner, runner)
        raise


def exit_group(runner: Runner) -> None:
    """End ``runner``'s innermost group: close its figures, undo its changes, give the lock back."""
    owner, frame = runner.entries.pop()
    try:
        _close(owner, frame)
    finally:
        lock.give_back(owner, runner)


def open_request_group(request: RequestOwner, runner: Runner, timeout: float | None) -> Frame | None:
    """Begin ``request``'s own group at its first touch of shared state, on ``runner``; return its frame.

    If the request holds the lock already (a group of another of its threads
    that is parked), ``runner`` joins that instead, and None is returned.
    Raises what :meth:`PlotLock.take` raises.
    """
    if not lock.take(request, runner, timeout, implicit=True):
        return None
    try:
        return _open(request, None)
    except BaseException:
        lock.end_implicit(request)
        raise


def close_request_group(request: RequestOwner, frame: Frame) -> None:
    """End ``request``'s own group (the one ``frame`` belongs to) as the request ends; never waits.

    If a thread of the request is inside a group or ``with safeplot.lock:``
    of the request's still, the group ends when that thread leaves it; if one
    is at work (code the request left running), once it is not.  If the
    group is set aside, its figures are closed where they are.
    """

    def end() -> None:
        try:
            _close(request, frame)
        finally:
            lock.end_implicit(request)

    if request.has_levels():
        request.defer_end(end)
    elif lock.end_request(request) and request.saved is not None:
        saved, request.saved = request.saved, None
        request.frames.remove(frame)
        request.views.clear()
        lock.count_figures_closed(close_managers_of(saved.figures, kept=frame.entry.figures))


def suspend(owner: Owner) -> None:
    """Set ``owner``'s groups aside (the lock held for it): their state kept, outside's put back."""
    owner.saved = PyplotState.capture()
    outside_state(owner).apply()


def resume(owner: Owner) -> None:
    """Put ``owner``'s groups back after :func:`suspend` (the lock held for it again).

    What is found meanwhile becomes the state of outside they put back at
    their end (a ``with safeplot.lock:`` block elsewhere may have changed it).
    """
    saved, owner.saved = owner.saved, None
    replace_outside(owner, PyplotState.capture())
    saved.apply()


class _Transitions:
    """What the groups do as the lock changes hands under an owner's code (see :class:`_lock.Transitions`)."""

    def suspend(self, owner: Owner) -> None:
        suspend(owner)

    def resume(self, owner: Owner) -> None:
        resume(owner)

    def end(self, owner: Owner) -> None:
        # A returned pool job's group, or an ended request's, ended by whoever takes the lock.
        if owner.frames:
            _close(owner, owner.frames[0])

    def switch_turn(self, request: RequestOwner, previous: Runner, doing: str, runner: Runner) -> None:
        # A thread paused mid-work keeps what it saw (its current figure, rcParams, registries)
        # until it has the turn again; one that is done has nothing to keep.
        if doing == PAUSED:
            request.views[previous] = PyplotState.capture()
        else:
            request.views.pop(previous, None)
        view = request.views.pop(runner, None)
        if view is not None:
            view.apply_view()


lock.on_transitions(_Transitions())


def open_job_group(job: JobOwner, timeout: float | None) -> None:
    """Begin the implicit group of a pool job of no request, at its first pyplot call.

    It ends when the job returns (:meth:`PlotLock.sweep`).  Raises
    :class:`safeplot.LockTimeout` as :meth:`PlotLock.take` does.
    """
    lock.take(job, job.runner, timeout, implicit=True)
    try:
        _open(job, None)
    except BaseException:
        lock.end_implicit(job)
        raise


def resume_job_group(job: JobOwner, timeout: float | None) -> None:
    """Take the lock back for a pool job whose group was set aside while it waited."""
    lock.take(job, job.runner, timeout, implicit=True)


def own_groups(runner: Runner) -> int:
    """How many of ``runner``'s entered groups are its own (not a request's)."""
    return sum(owner is runner for owner, _ in runner.entries)


def outside_state(owner: Owner) -> PyplotState:
    """The state of outside ``owner``'s groups: what its outermost group found."""
    return owner.frames[0].entry  # type: ignore[no-any-return]


def replace_outside(owner: Owner, state: PyplotState) -> None:
    """Make ``state`` what ``owner``'s outermost group puts back (outside changed meanwhile)."""
    owner.frames[0].entry = state


def figure_opened_in_group() -> Figure | None:
    """The current pyplot figure if the calling code's innermost group opened it, else None."""
    owner, _ = current()
    figure = current_figure()
    if figure is None or not owner.frames or not owner.frames[-1].is_own(figure):
        return None
    return figure


def _reset_after_fork(holder: Owner) -> None:
    # In a forked child, for a holder that was another thread of the parent:
    # its groups are gone with it; the child starts with the state outside them.
    if holder.frames:
        holder.frames[0].entry.apply()
        holder.frames.clear()


lock.on_fork_in_child(_reset_after_fork)


def keep_import_setup(before: PyplotState) -> None:
    """Keep a change a module's first import made inside the caller's groups: none of them undoes it.

    What the module's top-level code (and what it calls) does to ``rcParams``,
    the style, the units, colormap and color-sequence registries stays, as it
    would without safeplot: it becomes part of the state outside the groups
    that were open when the import began.  A group the module's code opens
    itself undoes what it changed, as any group does.
    """
    owner, _ = current()
    imports = first_imports(sys._getframe(1))
    if not owner.frames or not imports or any(imports[0] in frame.imports for frame in owner.frames):
        return  # no import under way, or a change inside a group the module opened itself
    after = PyplotState.capture()
    for frame in owner.frames:
        frame.entry.keep_changes(before, after)


hooks.on_import_setup(keep_import_setup)


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


class Group:
    """The object ``locked()`` returns: a context manager and a decorator.

    It keeps no per-entry state of its own (that lives with the runner), so
    one object may be shared by threads and entered recursively.
    """

    __slots__ = ("_timeout",)

    def __init__(self, timeout: TimeoutOption) -> None:
        self._timeout = timeout

    def __repr__(self) -> str:
        return (
            "safeplot.locked()" if self._timeout is DEFAULT else f"safeplot.locked(timeout={self._timeout!r})"
        )

    def __enter__(self) -> ModuleType:
        timeout = resolve_timeout(self._timeout)
        while True:
            owner, runner = current()
            try:
                enter_group(owner, runner, timeout)
                return plt
            except RequestEnded:
                continue  # its request ended while it waited: a group of the thread's own

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        exit_group(current_runner())

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
def locked(*, timeout: TimeoutOption = ...) -> Group: ...


def locked(func: Callable[..., Any] | None = None, /, *, timeout: TimeoutOption = DEFAULT) -> Any:
    """Run pyplot calls as one group, alone and cleaned up afterwards.

    Use as ``with safeplot.locked() as plt:`` (``plt`` is ``matplotlib.pyplot``),
    as a bare decorator ``@safeplot.locked``, or as ``@safeplot.locked(timeout=5)``.

    The group holds :data:`safeplot.lock`.  An outermost group starts with no
    pyplot figures visible (those of outside are set aside, not closed) and the
    ``rcParams`` of outside.  When it ends, normally or by an exception, every
    figure opened in it is closed, every ``rcParams``/``plt.style.use`` change
    is undone, so are changes to the units registry and the colormap and
    color-sequence registries, the figures of outside come back as they were,
    and the lock is released.  A nested group in the same thread (or in a
    thread of the same request, under a middleware) sees the outer group's
    figures, closes only those it opened and undoes only its own changes.

    ``timeout`` (seconds; None waits forever) defaults to the value set with
    :func:`safeplot.configure`.  Raises :class:`safeplot.LockTimeout` when the
    lock is not had in time, TypeError when decorating an ``async def`` or a
    generator function (the lock would be released before the body runs) or
    given something that is not a function or a timeout that is not a number,
    ValueError for a negative or NaN timeout.
    """
    group = Group(timeout_option(timeout))
    if func is None:
        return group
    if not callable(func):
        raise TypeError(f"safeplot.locked takes a function to decorate or timeout=...; got {func!r}")
    return group(func)
