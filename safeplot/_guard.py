"""Detection of pyplot use outside the lock.

pyplot's state (the figure registry, the current figure and axes, rcParams
through pyplot) is reached through a few functions: ``figure``, ``gcf``,
``gca``, ``close``, ``rc``...; every other pyplot function calls one of them.
While hooks are on, each of those functions, and setting an item of
``matplotlib.rcParams``, checks first whether the calling thread holds
:data:`safeplot.lock`.  The check is made inside the
function objects themselves (their code is swapped for a small trampoline),
so names imported with ``from matplotlib.pyplot import figure`` before the
hooks went on are caught too; turning them off puts the original code back.
(The one name the trampolines call, ``pyplot._safeplot_pyplot_call``, stays
once set: a thread may be about to call it while the hooks go off.)

Two users turn the hooks on: :func:`guard` (report the calls) and
``safeplot.wsgi.SafeplotMiddleware`` (take the lock on a request's first
pyplot call).
"""

from __future__ import annotations

import inspect
import os
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any, Literal

import matplotlib
import matplotlib.pyplot as plt
from matplotlib import RcParams

from . import _compat
from ._errors import SafeplotWarning, UnlockedPyplotError
from ._lock import call_site, lock

GUARD_ENV = "SAFEPLOT_GUARD"
MODES = ("warn", "raise", "off")
Mode = Literal["warn", "raise", "off"]
_DISPATCH = "_safeplot_pyplot_call"  # the name the trampolines call, in pyplot's globals


def _trampoline(*args: Any, **kwargs: Any) -> Any:
    return _safeplot_pyplot_call("__name__", args, kwargs)  # type: ignore[name-defined]  # noqa: F821


class _Hooks:
    """The swapped pyplot functions, installed while at least one user needs them."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._users = 0
        self._originals: dict[str, Callable[..., Any]] = {}  # name -> a copy running the original code
        self._saved: dict[str, tuple[types.CodeType, dict[str, Any]]] = {}
        self.original_rc_setitem: Callable[..., None] = RcParams.__setitem__

    @property
    def installed(self) -> bool:
        return bool(self._saved)

    def use(self) -> None:
        with self._mutex:
            self._users += 1
            if self._users == 1:
                self._install()

    def unuse(self) -> None:
        with self._mutex:
            self._users -= 1
            if self._users == 0:
                self._uninstall()

    def _install(self) -> None:
        plt.__dict__[_DISPATCH] = _dispatch  # left in place when off: a call mid-flight may need it
        self.original_rc_setitem = RcParams.__dict__["__setitem__"]
        RcParams.__setitem__ = _guarded_rc_setitem  # type: ignore[method-assign]
        template = _trampoline.__code__
        for name, func in _compat.pyplot_state_functions().items():
            original = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__)
            original.__kwdefaults__ = func.__kwdefaults__
            original.__annotations__ = func.__annotations__
            original.__qualname__ = func.__qualname__
            self._originals[name] = original
            self._saved[name] = (func.__code__, dict(func.__dict__))
            func.__signature__ = inspect.signature(func)  # type: ignore[attr-defined]  # before the swap
            consts = tuple(name if const == "__name__" else const for const in template.co_consts)
            func.__code__ = template.replace(co_consts=consts, co_name=func.__code__.co_name)

    def _uninstall(self) -> None:
        RcParams.__setitem__ = self.original_rc_setitem  # type: ignore[method-assign]
        functions = _compat.pyplot_state_functions()
        for name, (code, attributes) in self._saved.items():
            func = functions[name]
            func.__code__ = code
            func.__dict__.clear()
            func.__dict__.update(attributes)
        self._saved.clear()

    def original(self, name: str) -> Callable[..., Any]:
        return self._originals[name]


hooks = _Hooks()


class _ThreadState(threading.local):
    def __init__(self) -> None:
        # Called instead of reporting when this thread makes an unlocked pyplot
        # call; the middleware sets it to take the lock for its request.
        self.on_unlocked_call: Callable[[], None] | None = None


thread_state = _ThreadState()
_mode: Mode = "off"
_reported: set[tuple[str, int, str]] = set()
_reported_mutex = threading.Lock()


def _dispatch(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if lock._owner != threading.get_ident():
        _unlocked_call(name)
    return hooks.original(name)(*args, **kwargs)


def _guarded_rc_setitem(params: RcParams, key: str, value: Any) -> None:
    if lock._owner != threading.get_ident() and params is matplotlib.rcParams:
        _unlocked_call("", rc_key=key)
    hooks.original_rc_setitem(params, key, value)


def _unlocked_call(hooked: str, rc_key: str | None = None) -> None:
    handler = thread_state.on_unlocked_call
    if handler is not None:
        handler()
        return
    if _mode == "off":
        return
    filename, lineno, function = call_site(named=hooked)
    what = f"pyplot.{function}() called" if rc_key is None else f"rcParams[{rc_key!r}] set"
    message = f"{what} without safeplot.lock at {filename}:{lineno}; run it inside safeplot.locked()"
    if _mode == "raise":
        raise UnlockedPyplotError(message)
    with _reported_mutex:
        if (filename, lineno, what) in _reported:
            return
        _reported.add((filename, lineno, what))
    warnings.warn_explicit(message, SafeplotWarning, filename, lineno)


def guard(mode: Mode = "warn") -> None:
    """Report pyplot calls made by a thread that does not hold :data:`safeplot.lock`.

    ``"warn"``: a :class:`SafeplotWarning` naming the caller's ``file:line`` and
    the pyplot function, once per call site.  ``"raise"``: an
    :class:`UnlockedPyplotError` (a RuntimeError) at every such call, before
    pyplot runs.  ``"off"``: no reports, and pyplot's functions are exactly as
    they were (unless a ``SafeplotMiddleware`` request is in flight, which
    needs the hooks until it ends).  Calls inside ``safeplot.locked()``, under
    ``with safeplot.lock:`` or the legacy ``RendererAgg.lock`` are never
    reported.  Setting ``SAFEPLOT_GUARD=warn`` (or ``raise``) in the
    environment does ``guard(...)`` at import.  Raises ValueError for another
    mode.
    """
    global _mode
    if mode not in MODES:
        raise ValueError(f"guard mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
    with _reported_mutex:
        previous, _mode = _mode, mode
        _reported.clear()
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
