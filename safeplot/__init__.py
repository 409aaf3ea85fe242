"""Run matplotlib's pyplot safely from the threads of a web server.

Importing safeplot forces a non-interactive backend (Agg, or the one named in
``SAFEPLOT_BACKEND``).  Group pyplot calls with ``safeplot.locked()``.
"""

from ._backend import defer_savefig_redraw as _defer_savefig_redraw
from ._backend import force_backend as _force_backend

_force_backend()
_defer_savefig_redraw()

from ._encode import release_lock_while_encoding as _release_lock_while_encoding  # noqa: E402

_release_lock_while_encoding()

from ._compat import alias_renderer_agg_lock as _alias_renderer_agg_lock  # noqa: E402
from ._errors import LockTimeout, RenderTimeout, SafeplotWarning, UnlockedPyplotError, WorkerCrashed  # noqa: E402
from ._group import locked  # noqa: E402
from ._guard import guard  # noqa: E402
from ._guard import guard_from_env as _guard_from_env  # noqa: E402
from ._lock import DEFAULT, configure, lock, stats  # noqa: E402
from ._pool import RenderPool  # noqa: E402
from ._render import render, render_callback  # noqa: E402

_alias_renderer_agg_lock(lock)
_guard_from_env()

__version__ = "0.1.0"

__all__ = [
    "DEFAULT",
    "LockTimeout",
    "RenderPool",
    "RenderTimeout",
    "SafeplotWarning",
    "UnlockedPyplotError",
    "WorkerCrashed",
    "configure",
    "guard",
    "lock",
    "locked",
    "render",
    "render_callback",
    "stats",
]
