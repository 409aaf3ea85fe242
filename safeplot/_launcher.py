"""``safeplot-run``: safeplot in every Python process a command starts, with no code change.

    safeplot-run [--guard warn|raise] [--middleware] [--timeout S] COMMAND ARGS...

In the manner of ``opentelemetry-instrument``: the command runs with a
directory of safeplot's first on ``PYTHONPATH`` whose ``sitecustomize``
calls :func:`bootstrap` as each Python process starts (the command's own, and
every Python process it starts in turn: gunicorn's workers, Django's
autoreloader).  That imports safeplot, which forces Agg and reads
``SAFEPLOT_GUARD`` and ``SAFEPLOT_TIMEOUT``; with ``SAFEPLOT_MIDDLEWARE=1``
it also puts the request middleware into Flask apps, Django's request
handler and Starlette/FastAPI apps as they are created, unless they have it.
The flags set those variables; variables already in the environment apply
where no flag is given.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import os
import shutil
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

from ._lock import check_timeout

MIDDLEWARE_ENV = "SAFEPLOT_MIDDLEWARE"
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
DJANGO_MIDDLEWARE = "safeplot.django.SafeplotMiddleware"
ON = ("1", "true", "yes", "on")
OFF = ("", "0", "false", "no", "off")


def middleware_wanted(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether ``SAFEPLOT_MIDDLEWARE`` asks for the middleware; ValueError for a value it does not know."""
    value = environ.get(MIDDLEWARE_ENV, "").strip().lower()
    if value not in ON + OFF:
        known = ", ".join(ON + OFF[1:])
        raise ValueError(f"{MIDDLEWARE_ENV}={environ[MIDDLEWARE_ENV]!r}: expected one of {known} or empty")
    return value in ON


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safeplot-run",
        description="Run COMMAND so that every Python process it starts imports safeplot first.",
    )
    parser.add_argument("--guard", choices=("warn", "raise"), help="report pyplot used without the lock")
    parser.add_argument(
        "--middleware",
        action="store_true",
        help="put the request middleware into Flask, Django and Starlette/FastAPI apps",
    )
    parser.add_argument("--timeout", metavar="S", help="seconds to wait for the lock (none: no limit)")
    parser.add_argument(
        "command", metavar="COMMAND", help="the program to run: gunicorn, uvicorn, flask, python..."
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS", help="its arguments")
    return parser


def command_environment(options: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment the command runs with (``environ`` changed by the flags)."""
    env = dict(environ)
    if options.guard:
        env["SAFEPLOT_GUARD"] = options.guard
    if options.middleware:
        env[MIDDLEWARE_ENV] = "1"
    if options.timeout is not None:
        env["SAFEPLOT_TIMEOUT"] = options.timeout
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *paths])
    # A virtual environment's programs (its python, flask, gunicorn) come first, so that
    # `.venv/bin/safeplot-run flask ...` runs the venv's flask, which can import safeplot.
    search = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p]
    if sys.prefix != sys.base_prefix:
        tools = os.path.dirname(sys.executable)
        search = [tools, *(p for p in search if p != tools)]
    env["PATH"] = os.pathsep.join(search)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    """The ``safeplot-run`` command: replaces this process with COMMAND (never returns when it runs).

    Exits 2 with a usage message for bad flags or a bad ``--timeout``, and
    127 when COMMAND is not found.  A bad ``SAFEPLOT_GUARD`` or
    ``SAFEPLOT_TIMEOUT`` in the environment stops it with the ValueError
    ``import safeplot`` raises, and a bad ``SAFEPLOT_MIDDLEWARE`` with a
    ValueError naming it, before the command runs.
    """
    parser = _parser()
    options = parser.parse_args(argv)
    if options.timeout is not None and options.timeout.strip().lower() not in ("", "none"):
        try:
            check_timeout(float(options.timeout), name="--timeout")
        except ValueError as error:
            wording = f"--timeout must be seconds or none, not {options.timeout!r}"
            parser.error(str(error) if "--timeout" in str(error) else wording)
    env = command_environment(options, dict(os.environ))
    middleware_wanted(env)
    program = shutil.which(options.command, path=env["PATH"])
    if program is None:
        print(f"safeplot-run: {options.command}: command not found", file=sys.stderr)
        return 127
    sys.stdout.flush()
    os.execve(program, [options.command, *options.args], env)
    return 0  # pragma: no cover - execve does not return


# --- in each Python process the command starts ---------------------------------------------------


def bootstrap() -> None:
    """Import safeplot, and with ``SAFEPLOT_MIDDLEWARE=1`` put the middleware into apps as they are made.

    Called by the ``sitecustomize`` safeplot-run puts first on ``PYTHONPATH``.
    A bad ``SAFEPLOT_*`` variable raises ValueError here, which Python's
    ``site`` module prints ("Error in sitecustomize") before the process goes
    on without safeplot; safeplot-run itself imports safeplot first, so it
    refuses to start with them.
    """
    import safeplot  # noqa: F401  # forces Agg; reads SAFEPLOT_GUARD and SAFEPLOT_TIMEOUT

    if middleware_wanted(os.environ):
        install_after_import(
            {
                "flask.app": _add_to_flask,
                "django.core.handlers.base": _add_to_django,
                "starlette.applications": _add_to_starlette,
                "fastapi.applications": _add_to_fastapi,  # FastAPI.__init__ does not call Starlette's
            }
        )


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls ``patches[name](module)`` right after the module ``name`` is first executed."""

    def __init__(self, patches: dict[str, Callable[[types.ModuleType], None]]) -> None:
        self.patches = patches

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = self.patches.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if isinstance(finder, _AfterImport) or not hasattr(finder, "find_spec"):
                continue
            spec: importlib.machinery.ModuleSpec | None = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _PatchingLoader(spec.loader, patch)  # this spec's own: loaders may be shared
        return spec


class _PatchingLoader(importlib.abc.Loader):
    """A module's loader, then a patch of the module it executed; anything else goes to the loader."""

    def __init__(self, loader: Any, patch: Callable[[types.ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        module: types.ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def install_after_import(patches: dict[str, Callable[[types.ModuleType], None]]) -> None:
    """Apply each patch to its module now if it is imported already, else right after its import."""
    waiting = {}
    for name, patch in patches.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
        else:
            waiting[name] = patch
    if waiting:
        sys.meta_path.insert(0, _AfterImport(waiting))


def _add_to_flask(module: types.ModuleType) -> None:
    flask_class = module.Flask
    original_init = flask_class.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        from .wsgi import SafeplotMiddleware

        if not isinstance(self.wsgi_app, SafeplotMiddleware):
            self.wsgi_app = SafeplotMiddleware(self.wsgi_app)

    flask_class.__init__ = __init__


def _add_to_django(module: types.ModuleType) -> None:
    handler_class = module.BaseHandler
    original_load = handler_class.load_middleware

    def load_middleware(self: Any, *args: Any, **kwargs: Any) -> None:
        from django.conf import settings

        middleware = list(settings.MIDDLEWARE)
        if DJANGO_MIDDLEWARE not in middleware:
            settings.MIDDLEWARE = [DJANGO_MIDDLEWARE, *middleware]  # first: it covers those after it
        original_load(self, *args, **kwargs)

    handler_class.load_middleware = load_middleware


def _add_to_starlette(module: types.ModuleType) -> None:
    _add_to_asgi_app_class(module.Starlette)


def _add_to_fastapi(module: types.ModuleType) -> None:
    _add_to_asgi_app_class(module.FastAPI)


_ADDED = "_safeplot_run_middleware"  # the entry safeplot-run put into an app's user_middleware


def _add_to_asgi_app_class(app_class: Any) -> None:
    original_init = app_class.__init__
    original_add = app_class.add_middleware

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        from starlette.middleware import Middleware

        from .asgi import SafeplotMiddleware

        if not any(getattr(entry, "cls", None) is SafeplotMiddleware for entry in self.user_middleware):
            entry = Middleware(SafeplotMiddleware)
            self.user_middleware.insert(0, entry)
            setattr(self, _ADDED, entry)

    def add_middleware(self: Any, middleware_class: Any, *args: Any, **kwargs: Any) -> Any:
        from .asgi import SafeplotMiddleware

        added = getattr(self, _ADDED, None)
        if middleware_class is SafeplotMiddleware and added in self.user_middleware:
            self.user_middleware.remove(added)  # the app brings its own: one is enough
        return original_add(self, middleware_class, *args, **kwargs)

    app_class.__init__ = __init__
    app_class.add_middleware = add_middleware
