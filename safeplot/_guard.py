"""The hooks: a first touch of matplotlib's shared state, and reports of unlocked use.

pyplot's state (the figure registry, the current figure and axes) is reached
through a few functions: ``figure``, ``gcf``, ``gca``, ``close``, ``rc``...;
every other pyplot function calls one of them.  Beside those, the hooks check
the functions that change matplotlib's other process-wide state (``style.use``
and ``style.context``, ``rc_context``, ``rc``, the colormap registries),
setting and reading an item of ``matplotlib.rcParams``, and making an artist.

While hooks are on, each of those functions first asks whether the calling
code may use shared state now (:meth:`safeplot._lock.PlotLock.held_by_caller`).
The check is made inside matplotlib's function objects themselves (their code
is swapped by :mod:`safeplot._patch`), so names imported with ``from
matplotlib.pyplot import figure`` before the hooks went on are caught too;
turning them off puts the original code back.  Only the function objects found
when safeplot is imported are swapped: a replacement an app binds to the same
name is never touched.

When the caller may not, the first of these applies:

* its code runs for a request under a middleware (:mod:`safeplot._owners`):
  the request's ``begin_group`` takes the lock for the request (or its turn);
* a middleware is serving requests and the call is a pyplot call or a change
  of shared state: it is reported once per call site (a SafeplotWarning), as
  code that belongs to no request and runs unlocked;
* the guard is on: the call is reported (``"warn"``: once per call site;
  ``"raise"``: an UnlockedPyplotError at every call).

Reads (an ``rcParams`` item, making an artist) are never reported: object-
oriented code does them without the lock, safely.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, Literal

import matplotlib

from . import _compat
from ._errors import SafeplotWarning, UnlockedPyplotError
from ._lock import call_site, lock
from ._owners import current_request, current_runner
from ._patch import Swap
from ._state import PyplotState

GUARD_ENV = "SAFEPLOT_GUARD"
MODES = ("warn", "raise", "off")
Mode = Literal["warn", "raise", "off"]
_DISPATCH = "_safeplot_hooked"  # the names the trampolines call, in the globals of each hooked module
_DISPATCH_CHANGE = "_safeplot_changing"
# Changes of shared state a module's first import may make for good: their functions stay swapped
# from import on (so that a group keeps what such an import does, with no guard or middleware on).
CHANGES = ("rcParams.__setitem__", "matplotlib.colormaps.register", "matplotlib.color_sequences.register")
UNITS_SET = "matplotlib.units.registry"  # setting an item of the units registry (a dict, watched)


def _trampoline(*args: Any, **kwargs: Any) -> Any:
    # Runs as the hooked function itself (see _patch); the check returns the
    # original before it runs, so a warning matplotlib raises inside the
    # original still points at the caller's line.
    return _safeplot_hooked("__key__", args)(*args, **kwargs)  # type: ignore[name-defined]  # noqa: F821


def _change_trampoline(*args: Any, **kwargs: Any) -> Any:
    # The same for a function that changes shared state a module's first
    # import may change for good: after the original, ``done`` keeps the change.
    function, done = _safeplot_changing("__key__", args)  # type: ignore[name-defined]  # noqa: F821
    if done is None:
        return function(*args, **kwargs)
    result = function(*args, **kwargs)
    done()
    return result


def _generator_trampoline(*args: Any, **kwargs: Any) -> Any:
    # The same for a generator function (what style.context and rc_context
    # call on entry): Python 3.13 deprecates giving one the code of a plain
    # function. The check runs at the first next(), before the original's body.
    return (yield from _safeplot_hooked("__key__", args)(*args, **kwargs))  # type: ignore[name-defined]  # noqa: F821


# What a hooked function is, for the report of an unlocked call:
PYPLOT = "pyplot"  # a pyplot function: reported
STATE = "state"  # a function changing matplotlib's shared state: reported
RC_SET = "rc_set"  # setting an item of rcParams: reported
TOUCH = "touch"  # reading shared state (making an artist, reading rcParams): not reported


class _Target:
    """One of matplotlib's functions that the hooks check."""

    __slots__ = ("kind", "swap")

    def __init__(self, swap: Swap, kind: str) -> None:
        self.swap = swap
        self.kind = kind


def _find_targets() -> dict[str, _Target]:
    """matplotlib's own functions to hook, found once at import, before an app can replace them."""
    found = {f"pyplot.{name}": (f, PYPLOT) for name, f in _compat.pyplot_state_functions().items()}
    found.update({name: (f, STATE) for name, f in _compat.shared_state_functions().items()})
    found.update({name: (f, TOUCH) for name, f in _compat.touch_functions().items()})
    found["rcParams.__setitem__"] = (_compat.rcparams_setitem(), RC_SET)
    return {key: _Target(Swap(function, key), kind) for key, (function, kind) in found.items()}


class Hooks:
    """The swapped functions, installed while at least one user needs them.

    Users: the guard, and each request in flight under a middleware (which
    also makes unlocked calls by code of no request reported).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._users = 0
        self._requests = 0
        self.targets = _find_targets()
        self._unowned: Callable[[str, bool], bool] | None = None
        self._import_setup: Callable[[PyplotState], None] | None = None
        for key in CHANGES:
            if key in self.targets:
                self.targets[key].swap.apply(_change_trampoline, {_DISPATCH_CHANGE: _dispatch_change})
        _compat.watch_units_registry(_set_units_item)

    def on_import_setup(self, keep: Callable[[PyplotState], None]) -> None:
        """What a change of shared state made by a module's first import inside a group does:
        ``keep(before)``, with the state from before the change, is called after it."""
        self._import_setup = keep

    def import_setup_keeper(self) -> Callable[[PyplotState], None] | None:
        return self._import_setup

    def on_unowned_touch(self, handler: Callable[[str, bool], bool]) -> None:
        """What a touch by code of no request does: ``handler(kind, serving)`` is True if it
        runs locked now (in a group of its own); ``serving``: a middleware request is in flight."""
        self._unowned = handler

    def unowned_touch(self, kind: str) -> bool:
        handler = self._unowned
        return handler is not None and handler(kind, self._requests > 0)

    @property
    def installed(self) -> bool:
        """Whether matplotlib's functions run the hooks now."""
        return self._users > 0

    @property
    def serving(self) -> bool:
        """Whether a middleware's request is in flight (then unlocked calls of no request are reported)."""
        return self._requests > 0

    def use(self, *, request: bool = False) -> None:
        """One more user; the first installs the hooks."""
        with self._mutex:
            self._users += 1
            self._requests += request
            if self._users == 1:
                for key, target in self.targets.items():
                    if key not in CHANGES:
                        template = _generator_trampoline if _is_generator(target) else _trampoline
                        target.swap.apply(template, {_DISPATCH: _dispatch})

    def unuse(self, *, request: bool = False) -> None:
        """One user fewer; the last puts every function back as it was."""
        with self._mutex:
            self._users -= 1
            self._requests -= request
            if self._users == 0:
                for key, target in self.targets.items():
                    if key not in CHANGES:
                        target.swap.restore()

    def kinds(self) -> dict[str, str]:
        """Each hooked function's key (``pyplot.figure``, ``matplotlib.style.use``...) and its kind."""
        return {key: target.kind for key, target in self.targets.items()}


def _is_generator(target: _Target) -> bool:
    return bool(target.swap.function.__code__.co_flags & inspect.CO_GENERATOR)


_mode: Mode = "off"
_reported: set[tuple[str, int, str]] = set()  # (file, line, what): each reported once
_reported_sites: set[tuple[str, int]] = set()
_reported_mutex = threading.Lock()


def _dispatch(key: str, args: tuple[Any, ...]) -> Callable[..., Any]:
    target = hooks.targets[key]
    if not lock.held_by_caller():
        _unlocked_call(key, target.kind, args)
    return target.swap.original


def _dispatch_change(key: str, args: tuple[Any, ...]) -> tuple[Callable[..., Any], Callable[[], None] | None]:
    target = hooks.targets[key]
    held = lock.held_by_caller()
    if not held and hooks.installed:
        _unlocked_call(key, target.kind, args)
        held = lock.held_by_caller()  # a request's first touch has just taken it
        if not held:
            return target.swap.original, _hold_while_imported_on_a_loop()
    return target.swap.original, _import_setup_keeper() if held else None


def _hold_while_imported_on_a_loop() -> Callable[[], None] | None:
    """A change a module's first import makes on a request's event loop, which must never wait:
    made under the lock if it is free (it stays: no group undoes it), else as without safeplot."""
    request = current_request()
    if request is None or not request.on_its_event_loop() or not _compat.in_first_import(sys._getframe(2)):
        return None
    runner = current_runner()
    if not lock.try_take_for_runner(runner):
        return None
    return functools.partial(lock.give_back, runner, runner)


def _import_setup_keeper() -> Callable[[], None] | None:
    """Inside a group, during a module's first import: what keeps the change the caller makes."""
    keep = hooks.import_setup_keeper()
    if keep is None or not _compat.in_first_import(sys._getframe(2)):
        return None
    before = PyplotState.capture()
    return functools.partial(keep, before)


def _set_units_item(registry: dict[Any, Any], key: Any, value: Any) -> None:
    # matplotlib.units.registry[key] = value: a change of shared state like the others.
    held = lock.held_by_caller()
    if not held and hooks.installed:
        _unlocked_call(UNITS_SET, STATE, (registry, key, value))
        held = lock.held_by_caller()
    done = _import_setup_keeper() if held else None
    dict.__setitem__(registry, key, value)
    if done is not None:
        done()


def _unlocked_call(key: str, kind: str, args: tuple[Any, ...]) -> None:
    if key.startswith("rcParams.") and (not args or args[0] is not matplotlib.rcParams):
        return  # another RcParams object (a copy, the defaults): not shared state
    request = current_request()
    if request is not None and request.begin_group is not None:
        if request.on_its_event_loop() and _compat.in_first_import(sys._getframe(2)):
            return  # a module first imported on the event loop sets itself up (see _dispatch_change)
        begin = request.begin_group()
        if begin is None:  # the middleware's request is gone: it has ended
            raise UnlockedPyplotError(request.ended_message())
        begin()  # takes the lock for the request (UnlockedPyplotError once it has ended)
        return
    if hooks.unowned_touch(kind):  # a pool job of no request, in a group of its own
        if kind != TOUCH:
            _report(key, kind, args, remedy=_JOB_REMEDY, once=True)
        return
    if kind == TOUCH:
        return
    caller = sys._getframe(2)
    if (_selects_the_backend(key, args) or _compat.in_backend_switch(caller)) and _compat.in_first_import(
        caller
    ):
        return  # an app's import-time matplotlib.use("Agg"): set-up, not a plot drawn unlocked
    if hooks.serving and _mode != "raise":
        _report(key, kind, args, remedy=_NO_REQUEST_REMEDY, once=True)
    elif _mode != "off":
        _report(key, kind, args, remedy=_GUARD_REMEDY, once=_mode == "warn")


_BACKEND_KEYS = frozenset({"backend", "backend_fallback"})


def _selects_the_backend(key: str, args: tuple[Any, ...]) -> bool:
    """Whether a reported call chooses the backend (``matplotlib.use``, ``switch_backend``, its rcParams)."""
    if key == "pyplot.switch_backend":
        return True
    return key.startswith("rcParams.") and len(args) > 1 and args[1] in _BACKEND_KEYS


_GUARD_REMEDY = "run it inside safeplot.locked()"
_NO_REQUEST_REMEDY = (
    "it belongs to no request in flight (a thread the request did not hand its context, or code "
    "it left running) and runs unlocked: run it inside safeplot.locked(), or hand it the "
    "request's context (asyncio.to_thread, contextvars.copy_context().run)"
)
_JOB_REMEDY = (
    "it belongs to no request in flight (a thread-pool job the request did not hand its context) "
    "and runs as a group of its own until its job returns: run it inside safeplot.locked(), or hand "
    "it the request's context (asyncio.to_thread, contextvars.copy_context().run)"
)


def _report(key: str, kind: str, args: tuple[Any, ...], *, remedy: str, once: bool) -> None:
    if kind == RC_SET:
        filename, lineno, _ = call_site()
        what = f"rcParams[{args[1]!r}] set"
    elif kind == PYPLOT:
        filename, lineno, function = call_site(named=key.partition(".")[2])
        what = f"pyplot.{function}() called"
    elif key == UNITS_SET:
        filename, lineno, _ = call_site()
        what = f"{key}[{args[1]!r}] set"
    else:
        filename, lineno, _ = call_site()
        what = f"{key}() called"
    message = f"{what} without safeplot.lock at {filename}:{lineno}; {remedy}"
    if not once:
        raise UnlockedPyplotError(message)
    with _reported_mutex:
        # rcParams set inside a reported call (style.use, rc) are reported with it, not one by one.
        if (filename, lineno, what) in _reported or (
            kind == RC_SET and (filename, lineno) in _reported_sites
        ):
            return
        _reported.add((filename, lineno, what))
        _reported_sites.add((filename, lineno))
    warnings.warn_explicit(message, SafeplotWarning, filename, lineno)


hooks = Hooks()


def guard(mode: Mode = "warn") -> None:
    """Report pyplot calls made by code that does not hold :data:`safeplot.lock`.

    ``"warn"``: a :class:`SafeplotWarning` naming the caller's ``file:line`` and
    the pyplot function, once per call site.  ``"raise"``: an
    :class:`UnlockedPyplotError` (a RuntimeError) at every such call, before
    pyplot runs.  ``"off"``: no reports, and pyplot's functions are exactly as
    they were (unless a middleware request is in flight, which needs the hooks
    until it ends).  Calls inside ``safeplot.locked()``, under ``with
    safeplot.lock:`` or the legacy ``RendererAgg.lock``, and those of a request
    under a middleware are never reported.  Setting ``SAFEPLOT_GUARD=warn``
    (or ``raise``) in the environment does ``guard(...)`` at import.  Raises
    ValueError for another mode.
    """
    global _mode
    if mode not in MODES:
        raise ValueError(f"guard mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
    with _reported_mutex:
        previous, _mode = _mode, mode
        _reported.clear()
        _reported_sites.clear()
    if previous == "off" and mode != "off":
        hooks.use()
    elif previous != "off" and mode == "off":
        hooks.unuse()


def guard_from_env() -> None:
    """Apply ``SAFEPLOT_GUARD`` if set; ValueError naming the variable for a bad value."""
    raw = os.environ.get(GUARD_ENV, "").strip()
    if not raw:
        return
    if raw.lower() not in MODES:
        raise ValueError(f"{GUARD_ENV}={raw!r}: expected one of {', '.join(MODES)}")
    guard(raw.lower())  # type: ignore[arg-type]
