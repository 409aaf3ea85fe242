"""The one place that swaps the code of one of matplotlib's functions, and puts it back.

safeplot changes what a few of matplotlib's functions do by giving each the
code of a small *template* (a trampoline), never by rebinding a name: so
``from matplotlib.pyplot import figure`` done before the swap sees it too, and
a function an app bound to the same name later is never touched.

A template runs *as* the swapped function: with that function's globals, name
and file name.  matplotlib skips its own frames when it points a warning at
the caller (by module name before Python 3.12, by file name since), so a
warning raised while the template runs still points at the caller's line.  A
template reaches safeplot through one name it calls, put into the function's
globals; the string constant ``"__key__"`` in it is replaced by the swap's key,
so one template serves many functions.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

from . import _compat

KEY_PLACEHOLDER = "__key__"


class Swap:
    """One function whose code runs a template: what to call for the original, and how to undo it.

    :attr:`original` is a copy of the function running its original code
    (with its globals, defaults, name and qualified name), for the template's
    dispatcher to call.  The swap stays in force until :meth:`restore`.
    """

    __slots__ = ("_saved", "_signature", "function", "key", "original")

    def __init__(self, function: types.FunctionType, key: str) -> None:
        self.function = function
        self.key = key
        self.original = types.FunctionType(
            function.__code__, function.__globals__, function.__name__, function.__defaults__
        )
        self.original.__kwdefaults__ = function.__kwdefaults__
        self.original.__qualname__ = function.__qualname__
        self._saved: tuple[types.CodeType, dict[str, Any]] | None = None
        self._signature = inspect.signature(function)

    @property
    def active(self) -> bool:
        """Whether the function runs the template now."""
        return self._saved is not None

    def apply(self, template: Callable[..., Any], names: dict[str, Any]) -> None:
        """Give the function the template's code, with ``names`` added to its globals.

        The names stay in the globals after :meth:`restore`: a thread may be
        just about to call one while the swap is undone.  Raises RuntimeError
        if the swap is in force already, TypeError when the function is a
        generator function and the template is not (or the other way round).
        """
        if self._saved is not None:
            raise RuntimeError(f"{self.key} is swapped already")
        function = self.function
        generator = bool(function.__code__.co_flags & inspect.CO_GENERATOR)
        template_code = template.__code__
        if generator != bool(template_code.co_flags & inspect.CO_GENERATOR):
            raise TypeError(f"{self.key}: the template must be a generator function exactly when it is")
        self._saved = (function.__code__, dict(function.__dict__))
        function.__globals__.update(names)
        function.__signature__ = self._signature  # type: ignore[attr-defined]  # as it was before the swap
        consts = tuple(self.key if const == KEY_PLACEHOLDER else const for const in template_code.co_consts)
        function.__code__ = _compat.renamed_code(
            template_code.replace(co_consts=consts), like=function.__code__
        )

    def restore(self) -> None:
        """Put the original code and attributes back; does nothing if the swap is not in force."""
        if self._saved is None:
            return
        code, attributes = self._saved
        self._saved = None
        self.function.__code__ = code
        self.function.__dict__.clear()
        self.function.__dict__.update(attributes)
