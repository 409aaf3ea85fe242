"""Detection of use of matplotlib's shared state outside the lock: the hooks.

pyplot's state (the figure registry, the current figure and axes) is reached
through a few functions: ``figure``, ``gcf``, ``gca``, ``close``, ``rc``...;
every other pyplot function calls one of them.  Beside those, the hooks check
the functions that change matplotlib's other process-wide state (``style.use``
and ``style.context``, ``rc_context``, ``rc``, the colormap registries),
setting and reading an item of ``matplotlib.rcParams``, and making an artist.

While hooks are on, each of those functions first checks whether the calling
thread holds :data:`safeplot.lock`.  The check is made inside matplotlib's
function objects themselves (their code is swapped for a small trampoline),
so names imported with ``from matplotlib.pyplot import figure`` before the
hooks went on are caught too; turning them off puts the original code back.
Only the function objects found when safeplot is imported are swapped: a
replacement an app binds to the same name is never touched.  (The one name
the trampolines call, ``_safeplot_hooked`` in those modules' globals, stays
once set: a thread may be about to call it while the hooks go off.)

Two users turn the hooks on: :func:`guard` (report unlocked pyplot calls and
changes of shared state; reads are not reported) and the middlewares of
``safeplot.wsgi`` (take the lock at a request's first touch of shared state).
"""

from __future__ import annotations

import contextvars
import inspect
import os
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any, Literal

import matplotlib

from . import _compat
from ._errors import SafeplotWarning, UnlockedPyplotError
from ._lock import call_site, context_owner, lock

GUARD_ENV = "SAFEPLOT_GUARD"
MODES = ("warn", "raise", "off")
Mode = Literal["warn", "raise", "off"]
# The name the trampolines call, put in the globals of each module whose functions are hooked.
_DISPATCH = "_safeplot_hooked"


def _trampoline(*args: Any, **kwargs: Any) -> Any:
    # Runs as the hooked function itself, with its module's globals and its
    # file name; the check returns before the original runs, so a warning
    # matplotlib raises inside the original still points at the caller's line
    # (matplotlib skips its own frames by module name before Python 3.12, by
    # file name since).
    return _safeplot_hooked("__key__", args)(*args, **kwargs)  # type: ignore[name-defined]  # noqa: F821


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
    """One of matplotlib's functions that the hooks check, and how to put it back."""

    __slots__ = ("function", "kind", "original", "saved", "signature")

    def __init__(self, function: types.FunctionType, kind: str) -> None:
        self.function = function
        self.kind = kind
        # A copy that runs the original code: what the trampoline calls.
        self.original = types.FunctionType(
            function.__code__, function.__globals__, function.__name__, function.__defaults__
        )
        self.original.__kwdefaults__ = function.__kwdefaults__
        self.original.__qualname__ = function.__qualname__
        self.signature: inspect.Signature | None = None
        self.saved: tuple[types.CodeType, dict[str, Any]] | None = None


def _find_targets() -> dict[str, _Target]:
    """matplotlib's own functions to hook, found once at import, before an app can replace them."""
    targets = {f"pyplot.{name}": _Target(f, PYPLOT) for name, f in _compat.pyplot_state_functions().items()}
    targets.update({name: _Target(f, STATE) for name, f in _compat.shared_state_functions().items()})
    targets.update({name: _Target(f, TOUCH) for name, f in _compat.touch_functions().items()})
    targets["rcParams.__setitem__"] = _Target(_compat.rcparams_setitem(), RC_SET)
    return targets


class _Hooks:
    """The swapped functions, installed while at least one user needs them.

    Only the function objects found at import are ever changed, never what an
    app later binds to the same names (``plt.show = lambda *a, **k: None``).
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._users = 0
        self.targets = _find_targets()

    @property
    def installed(self) -> bool:
        return self._users > 0

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
        for key, target in self.targets.items():
            func = target.function
            generator = bool(func.__code__.co_flags & inspect.CO_GENERATOR)
            template = (_generator_trampoline if generator else _trampoline).__code__
            func.__globals__[_DISPATCH] = _dispatch  # left in place when off: a call mid-flight may need it
            if target.signature is None:
                target.signature = inspect.signature(func)
            target.saved = (func.__code__, dict(func.__dict__))
            func.__signature__ = target.signature  # type: ignore[attr-defined]  # as it was before the swap
            consts = tuple(key if const == "__key__" else const for const in template.co_consts)
            func.__code__ = template.replace(
                co_consts=consts, co_name=func.__code__.co_name, co_filename=func.__code__.co_filename
            )

    def _uninstall(self) -> None:
        for target in self.targets.values():
            if target.saved is None:
                continue
            code, attributes = target.saved
            target.function.__code__ = code
            target.function.__dict__.clear()
            target.function.__dict__.update(attributes)
            target.saved = None


class _ThreadState(threading.local):
    def __init__(self) -> None:
        # Called instead of reporting when this thread makes an unlocked call;
        # the middleware sets it to take the lock for its request.
        self.on_unlocked_call: Callable[[], None] | None = None


thread_state = _ThreadState()
# The same for every thread that runs a context (an ASGI request's code, in a thread pool).
context_handler: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "safeplot_context_handler", default=None
)
_mode: Mode = "off"
_reported: set[tuple[str, int, str]] = set()
_reported_mutex = threading.Lock()


def _dispatch(key: str, args: tuple[Any, ...]) -> Callable[..., Any]:
    target = hooks.targets[key]
    held_for = lock._context_owner  # an ASGI request's hold: held in every thread running its context
    if held_for is None:
        unlocked = lock._owner != threading.get_ident()
    else:
        unlocked = held_for is not context_owner.get()
    if unlocked:
        _unlocked_call(key, target.kind, args)
    return target.original


def _unlocked_call(key: str, kind: str, args: tuple[Any, ...]) -> None:
    if key.startswith("rcParams.") and (not args or args[0] is not matplotlib.rcParams):
        return  # another RcParams object (a copy, the defaults): not shared state
    handler = thread_state.on_unlocked_call or context_handler.get()
    if handler is not None:
        handler()
        return
    if _mode == "off" or kind == TOUCH:
        return
    if kind == RC_SET:
        filename, lineno, _ = call_site()
        what = f"rcParams[{args[1]!r}] set"
    elif kind == PYPLOT:
        filename, lineno, function = call_site(named=key.partition(".")[2])
        what = f"pyplot.{function}() called"
    else:
        filename, lineno, _ = call_site()
        what = f"{key}() called"
    message = f"{what} without safeplot.lock at {filename}:{lineno}; run it inside safeplot.locked()"
    if _mode == "raise":
        raise UnlockedPyplotError(message)
    with _reported_mutex:
        if (filename, lineno, what) in _reported:
            return
        _reported.add((filename, lineno, what))
    warnings.warn_explicit(message, SafeplotWarning, filename, lineno)


hooks = _Hooks()


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
