"""Every matplotlib-version-specific detail safeplot relies on, in one place.

Supported: matplotlib 3.5 and newer.  Each function here hides one difference
between versions; the rest of the package never tests a version itself.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import types
from collections.abc import Iterable
from typing import Any, cast

import matplotlib
from matplotlib import RcParams, rcsetup
from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import FigureManagerBase
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure

RcSnapshot = dict[str, Any]

# FigureCanvasAgg methods that hand out the pixels of its last draw
# (tostring_rgb was removed in matplotlib 3.10).
AGG_PIXEL_READERS = [
    name
    for name in ("buffer_rgba", "tostring_argb", "tostring_rgb", "copy_from_bbox", "restore_region")
    if hasattr(FigureCanvasAgg, name)
]


def _version_info(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


MPL_VERSION = _version_info(matplotlib.__version__)


def builtin_backends(*, interactive: bool) -> list[str]:
    """The lower-case names of matplotlib's own (non-)interactive backends."""
    if MPL_VERSION >= (3, 9):
        from matplotlib.backends.registry import BackendFilter, backend_registry

        wanted = BackendFilter.INTERACTIVE if interactive else BackendFilter.NON_INTERACTIVE
        names: list[str] = backend_registry.list_builtin(wanted)  # type: ignore[no-untyped-call]
    else:
        names = getattr(rcsetup, "interactive_bk" if interactive else "non_interactive_bk")
    return [name.lower() for name in names]


def configured_backend() -> str | None:
    """The backend named in ``rcParams`` without resolving it; None if still automatic."""
    name = dict.__getitem__(matplotlib.rcParams, "backend")
    if name is rcsetup._auto_backend_sentinel:
        return None
    return str(name)


def snapshot_rcparams() -> RcSnapshot:
    """A raw copy of ``rcParams`` (no validation, no deprecation warnings), less the backend.

    Like ``matplotlib.rc_context``, the backend is left out so that restoring
    never switches it back.
    """
    # dict.items() reads the stored values directly; dict.copy() would go
    # through RcParams.__getitem__ for each of ~300 keys, six times slower.
    snapshot: RcSnapshot = dict(dict.items(cast(RcSnapshot, matplotlib.rcParams)))
    del snapshot["backend"]
    return snapshot


def restore_rcparams(snapshot: RcSnapshot) -> None:
    """Put back a :func:`snapshot_rcparams` copy, as ``rc_context`` does on exit."""
    params = matplotlib.rcParams
    update_raw = getattr(params, "_update_raw", None)  # matplotlib >= 3.10
    if update_raw is not None:
        update_raw(snapshot)
    else:
        dict.update(cast(RcSnapshot, params), snapshot)


def close_managers(managers: Iterable[FigureManagerBase]) -> int:
    """Close pyplot figures as ``plt.close`` does; return how many were closed.

    ``Gcf.destroy`` of matplotlib < 3.6 also runs ``gc.collect(1)`` for every
    figure, a cost of milliseconds a figure; this does what newer versions do
    and leaves the cycles to the ordinary garbage collector.
    """
    closed = 0
    for manager in managers:
        num = cast(int, manager.num)
        if Gcf.figs.get(num) is manager:
            Gcf.figs.pop(num)
        cid = getattr(manager, "_cidgcf", None)
        if cid is not None:
            manager.canvas.mpl_disconnect(cid)
        manager.destroy()
        closed += 1
    return closed


# The pyplot functions through which every pyplot call reaches pyplot's
# global state: the figure registry, the current figure/axes, rcParams.
PYPLOT_STATE_FUNCTIONS = (
    "figure",
    "gcf",
    "gca",
    "gci",
    "sci",
    "sca",
    "close",
    "clf",
    "get_fignums",
    "get_figlabels",
    "fignum_exists",
    "get_current_fig_manager",
    "subplot",
    "subplots",
    "subplot_mosaic",
    "subplot2grid",
    "axes",
    "delaxes",
    "show",
    "draw",
    "pause",
    "ion",
    "ioff",
    "rc",
    "rcdefaults",
    "rc_context",
    "xkcd",
    "switch_backend",
    "new_figure_manager",
    "draw_if_interactive",
)


def is_matplotlibs_own(func: object) -> bool:
    """Whether ``func`` is a plain function defined in matplotlib's own source.

    A replacement an app put in its place (a lambda, a ``functools.partial``, a
    mock) is not; nor is a function with a closure (one wrapped by a decorator
    in some version), whose code cannot be swapped for one without it.
    """
    return (
        isinstance(func, types.FunctionType)
        and not func.__closure__
        and func.__code__.co_filename.startswith(_MATPLOTLIB_DIR)
    )


_MATPLOTLIB_DIR = os.path.join(os.path.dirname(os.path.abspath(matplotlib.__file__)), "")


def pyplot_state_functions() -> dict[str, types.FunctionType]:
    """Those of :data:`PYPLOT_STATE_FUNCTIONS` this pyplot has as matplotlib's own plain functions.

    The pyplot functions a left-out one calls are still in the list.
    """
    import matplotlib.pyplot as plt

    found = {name: getattr(plt, name, None) for name in PYPLOT_STATE_FUNCTIONS}
    return {name: cast(types.FunctionType, f) for name, f in found.items() if is_matplotlibs_own(f)}


def _unwrapped(func: Any) -> Any:
    """The generator function behind a ``contextlib.contextmanager`` (what it calls on entry)."""
    return getattr(func, "__wrapped__", func)


def shared_state_functions() -> dict[str, types.FunctionType]:
    """matplotlib's functions outside pyplot that change its process-wide state.

    Keys are the names the guard reports.  ``style.context`` and ``rc_context``
    are context managers: the function listed is the generator they call on
    entry, so a check there runs before any ``rcParams`` are copied.
    """
    import matplotlib.style

    candidates = {
        "matplotlib.style.use": matplotlib.style.use,
        "matplotlib.style.context": _unwrapped(matplotlib.style.context),
        "matplotlib.style.reload_library": matplotlib.style.reload_library,
        "matplotlib.rc_context": _unwrapped(matplotlib.rc_context),
        "matplotlib.rc": matplotlib.rc,
        "matplotlib.rcdefaults": matplotlib.rcdefaults,
        "matplotlib.rc_file": matplotlib.rc_file,
        "matplotlib.rc_file_defaults": matplotlib.rc_file_defaults,
        "matplotlib.colormaps.register": type(matplotlib.colormaps).register,
    }
    sequences = getattr(matplotlib, "color_sequences", None)  # matplotlib >= 3.6
    if sequences is not None:
        candidates["matplotlib.color_sequences.register"] = type(sequences).register
    return {name: cast(types.FunctionType, f) for name, f in candidates.items() if is_matplotlibs_own(f)}


def touch_functions() -> dict[str, types.FunctionType]:
    """matplotlib's functions whose call reads its process-wide state: making an artist, reading rcParams."""
    from matplotlib.artist import Artist

    candidates = {"Artist.__init__": Artist.__init__, "rcParams.__getitem__": RcParams.__getitem__}
    return {name: cast(types.FunctionType, f) for name, f in candidates.items() if is_matplotlibs_own(f)}


def rcparams_setitem() -> types.FunctionType:
    """``RcParams.__setitem__``, the one way ``rcParams[key] = value`` and ``update`` write."""
    return cast(types.FunctionType, RcParams.__setitem__)


# Output formats whose bytes PIL encodes (what the lock may be released for).
PIL_FORMATS = frozenset({"png", "jpg", "jpeg", "tif", "tiff", "webp", "gif", "avif"})


def pil_save_functions() -> dict[str, tuple[types.FunctionType, str]]:
    """matplotlib's functions that end by handing a finished image to PIL's ``Image.save``.

    Values are the function and the name of its file argument.  ``image.imsave``
    saves every raster format the Agg canvas writes, except in matplotlib 3.5,
    whose ``print_jpg`` and ``print_tif`` call PIL themselves.  In each, the
    call to ``Image.save`` is the last thing done.
    """
    import matplotlib.image

    found: dict[str, tuple[types.FunctionType, str]] = {}
    if is_matplotlibs_own(matplotlib.image.imsave):
        found["image.imsave"] = (cast(types.FunctionType, matplotlib.image.imsave), "fname")
    for name in ("print_jpg", "print_tif"):
        method = inspect.unwrap(FigureCanvasAgg.__dict__[name])
        if is_matplotlibs_own(method) and not {"imsave", "_print_pil"} & set(method.__code__.co_names):
            found[f"FigureCanvasAgg.{name}"] = (cast(types.FunctionType, method), "filename_or_obj")
    return found


# --- registries a group puts back as it found them ----------------------------

RegistrySnapshot = tuple[dict[Any, Any], ...]


def _registries() -> tuple[dict[Any, Any], ...]:
    """The dicts behind the units registry and the colormap and color-sequence registries."""
    import matplotlib.units

    found: list[dict[Any, Any]] = [matplotlib.units.registry, matplotlib.colormaps._cmaps]  # type: ignore[attr-defined]
    sequences = getattr(matplotlib, "color_sequences", None)  # matplotlib >= 3.6
    if sequences is not None:
        found.append(sequences._color_sequences)
    return tuple(found)


def watch_units_registry(setitem: Any) -> None:
    """Have ``matplotlib.units.registry[key] = value`` call ``setitem(registry, key, value)``.

    The registry is a dict (of matplotlib's ``Registry`` class), whose items
    an app sets directly: its class is made a subclass whose ``__setitem__``
    is ``setitem`` (which stores the item with ``dict.__setitem__``).
    Reading it, and safeplot putting it back, are unchanged.
    """
    import matplotlib.units

    registry = matplotlib.units.registry
    watched = type("WatchedRegistry", (type(registry),), {"__setitem__": setitem, "__slots__": ()})
    registry.__class__ = watched


def running_event_loop() -> bool:
    """Whether the calling thread runs an event loop now (asyncio's, or trio's as sniffio sees it)."""
    import asyncio

    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    try:
        import sniffio  # comes with anyio; knows trio's loop
    except ImportError:
        return False
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return True


_green_threading = [False]  # once a greenlet library has patched threading, it stays patched


def current_greenlet() -> Any | None:
    """The running greenlet where gevent or eventlet has patched ``threading``, else None.

    There each greenlet is a "thread" to the application (``threading.get_ident``
    names greenlets), whether safeplot was imported before the patching or after.
    """
    if not _green_threading[0]:
        monkey = sys.modules.get("gevent.monkey")
        patcher = sys.modules.get("eventlet.patcher")
        if not (
            (monkey is not None and monkey.is_module_patched("threading"))
            or (patcher is not None and patcher.is_monkey_patched("thread"))
        ):
            return None
        _green_threading[0] = True
    import greenlet  # comes with gevent and eventlet

    return greenlet.getcurrent()


def greenlet_name(glet: Any) -> str:
    """How a greenlet is named: gevent's ``Greenlet.name``, else the name its "thread" has."""
    name = getattr(glet, "name", None)
    if isinstance(name, str) and name:
        return name
    import threading

    thread = threading.current_thread()  # the patched one: a greenlet's own (eventlet's GreenThread-N)
    return thread.name if not thread.name.startswith("Dummy-") else f"greenlet {id(glet):#x}"


_LOAD_UNLOCKED = getattr(sys.modules.get("_frozen_importlib"), "_load_unlocked", None)


def first_imports(frame: types.FrameType | None) -> tuple[types.FrameType, ...]:
    """The first imports of modules under way on the stack of ``frame``, innermost first.

    Each is the frame of ``importlib._bootstrap._load_unlocked``, which runs a
    module's top-level code when it is imported for the first time (not for
    ``importlib.reload``, nor for code run with ``exec`` or ``runpy``).
    """
    load = getattr(_LOAD_UNLOCKED, "__code__", None)
    found = []
    while frame is not None:
        if frame.f_code is load:
            found.append(frame)
        frame = frame.f_back
    return tuple(found)


_BACKEND_SWITCHES = frozenset({("matplotlib", "use"), ("matplotlib.pyplot", "switch_backend")})


def in_backend_switch(frame: types.FrameType | None) -> bool:
    """Whether ``frame`` runs inside ``matplotlib.use`` or ``pyplot.switch_backend`` (which calls
    ``close("all")``, and on matplotlib < 3.6 is not itself one of the hooked functions)."""
    while frame is not None:
        if (frame.f_globals.get("__name__"), frame.f_code.co_name) in _BACKEND_SWITCHES:
            return True
        frame = frame.f_back
    return False


def in_first_import(frame: types.FrameType | None) -> bool:
    """Whether ``frame`` runs (or is called by) a module's top-level code during its first import."""
    return bool(first_imports(frame))


def snapshot_registries() -> RegistrySnapshot:
    """Shallow copies of the registries (the converters and colormaps themselves are shared)."""
    return tuple(dict(registry) for registry in _registries())


def restore_registries(snapshot: RegistrySnapshot) -> None:
    """Put back a :func:`snapshot_registries` copy, touching only the entries that changed.

    Entries are compared by identity (a colormap's ``==`` compares its whole
    lookup table), and the dicts are never cleared, so a thread reading a
    registry without the lock never finds it empty.
    """
    for registry, saved in zip(_registries(), snapshot):
        if len(registry) == len(saved) and all(registry.get(k, _MISSING) is v for k, v in saved.items()):
            continue
        for key in [key for key in registry if key not in saved]:
            del registry[key]
        for key, value in saved.items():
            if registry.get(key, _MISSING) is not value:
                dict.__setitem__(registry, key, value)


_MISSING = object()


def has_layout_engine(fig: Figure) -> bool:
    """Whether the figure lays itself out at every draw (tight or constrained layout).

    Such a layout depends on the draws before it, so a skipped draw could
    change what later saves give.
    """
    if MPL_VERSION >= (3, 6):
        return fig.get_layout_engine() is not None
    return bool(fig.get_tight_layout() or fig.get_constrained_layout())


def alias_renderer_agg_lock(lock: object) -> None:
    """Make ``RendererAgg.lock`` the given lock.

    matplotlib < 3.8 had a class-level ``threading.RLock`` there, which its own
    ``FigureCanvasAgg.draw`` takes and which old code and docs used as "the
    plotting lock"; 3.8 removed it, so such code fails with AttributeError.
    Replacing (or restoring) it with safeplot's lock makes both kinds of code
    share one lock.
    """
    RendererAgg.lock = lock  # type: ignore[attr-defined]


# --- code swaps ----------------------------------------------------------------


def renamed_code(code: types.CodeType, *, like: types.CodeType) -> types.CodeType:
    """``code`` named and filed as ``like`` (its name, qualified name since Python 3.11, file name)."""
    names: dict[str, Any] = {"co_name": like.co_name, "co_filename": like.co_filename}
    if sys.version_info >= (3, 11):
        names["co_qualname"] = like.co_qualname
    return code.replace(**names)


# --- matplotlib's own locks ------------------------------------------------------


def _drawing_lock_holders() -> list[tuple[Any, str]]:
    """(object, attribute) of each lock matplotlib takes while it draws.

    matplotlib >= 3.8 takes ``Figure._render_lock``, one class-level RLock,
    through every ``Figure.draw`` (its font and mathtext caches are not
    thread-safe).  Older versions take ``RendererAgg.lock`` in
    ``FigureCanvasAgg.draw``, which safeplot makes its own lock.
    """
    return [(Figure, "_render_lock")] if isinstance(Figure.__dict__.get("_render_lock"), _RLOCK_TYPES) else []


_RLOCK_TYPES = (type(threading.RLock()), threading._PyRLock)  # type: ignore[attr-defined]


def holds_drawing_lock() -> bool:
    """Whether the calling thread holds a lock matplotlib takes while it draws (it is inside a draw)."""
    return any(getattr(owner, name)._is_owned() for owner, name in _drawing_lock_holders())


def in_logging_handler(frame: types.FrameType | None) -> bool:
    """Whether ``frame`` runs inside a logging handler (which holds the handler's lock meanwhile)."""
    import logging

    handle = logging.Handler.handle.__code__
    while frame is not None:
        if frame.f_code is handle:
            return True
        frame = frame.f_back
    return False


def reset_drawing_locks_after_fork() -> None:
    """In a forked child: replace a drawing lock that a thread of the parent held (it is gone).

    Without this, the child's first draw would wait for ever for a thread
    that does not exist in it.  A lock the forking thread itself holds is kept.
    """
    for owner, name in _drawing_lock_holders():
        drawing_lock = getattr(owner, name)
        if drawing_lock._is_owned():
            continue
        if drawing_lock.acquire(blocking=False):
            drawing_lock.release()
        else:
            setattr(owner, name, threading.RLock())


# --- where a thread waits: for work (parked), or inside its job -------------------
# Code objects, looked up by module and qualified name where the module is
# imported already (anyio and asgiref may come after safeplot).

_WAITING = (  # waiting primitives: the frame that called one says what the thread waits for
    ("threading", "Condition.wait"),
    ("threading", "Event.wait"),
    ("threading", "Semaphore.acquire"),
    ("threading", "Thread._wait_for_tstate_lock"),  # Python <= 3.12
    ("queue", "Queue.get"),
    ("selectors", "SelectSelector.select"),
    ("selectors", "_PollLikeSelector.select"),
    ("selectors", "EpollSelector.select"),
    ("selectors", "KqueueSelector.select"),
)
_WORK_LOOPS = (  # a thread pool's loop: what it calls is one job; waiting in it, the thread is idle
    ("concurrent.futures.thread", "_worker"),
    ("anyio._backends._asyncio", "WorkerThread.run"),
)
_WORK_ITEMS = (  # what a pool's loop calls to run one job: the job's own frame is the next one in
    ("concurrent.futures.thread", "_WorkItem.run"),
    ("concurrent.futures.thread", "WorkerContext.run"),  # Python >= 3.14
    ("asgiref.current_thread_executor", "_WorkItem.run"),
)
_WAITS_FOR_OTHERS = (  # waiting here, a thread runs none of its own code: it waits for another's
    ("threading", "Thread.join"),
    ("concurrent.futures._base", "Future.result"),
    ("concurrent.futures._base", "wait"),
    ("concurrent.futures._base", "as_completed"),
    ("asyncio.base_events", "BaseEventLoop._run_once"),  # an event loop with nothing to run
    # async_to_sync's calling thread, until the coroutine it waits for is done (it runs the
    # coroutine's sync_to_async calls meanwhile, as jobs)
    ("asgiref.current_thread_executor", "CurrentThreadExecutor.run_until_future"),
)


def _codes(names: tuple[tuple[str, str], ...]) -> frozenset[types.CodeType]:
    found = set()
    for module_name, qualname in names:
        target: Any = sys.modules.get(module_name)
        for part in qualname.split("."):
            target = getattr(target, part, None)
        code = getattr(target, "__code__", None)
        if isinstance(code, types.CodeType):
            found.add(code)
    return frozenset(found)


_code_cache: dict[tuple[bool, ...], tuple[frozenset[types.CodeType], ...]] = {}
_MODULES = tuple(sorted({module for module, _ in _WAITING + _WORK_LOOPS + _WORK_ITEMS + _WAITS_FOR_OTHERS}))


def _thread_codes() -> tuple[frozenset[types.CodeType], ...]:
    """(waiting, work loops, parking, work items) code objects, for the modules imported now."""
    present = tuple(name in sys.modules for name in _MODULES)
    codes = _code_cache.get(present)
    if codes is None:
        loops = _codes(_WORK_LOOPS)
        codes = (_codes(_WAITING), loops, _codes(_WAITS_FOR_OTHERS), _codes(_WORK_ITEMS))
        _code_cache[present] = codes
    return codes


BUSY, PAUSED, DONE = "busy", "paused", "done"


def activity(frame: types.FrameType | None, done_in: frozenset[types.CodeType] = frozenset()) -> str:
    """What a thread whose innermost frame is ``frame`` is doing: :data:`BUSY`, :data:`PAUSED`, :data:`DONE`.

    DONE: it has ended (no frame), waits in a thread pool for its next job
    (or hands back the result of its last one), or is in one of the
    functions ``done_in``.  PAUSED: its code waits in a
    waiting primitive (``Event.wait``, ``Queue.get``, a ``Condition``, a
    semaphore), for another thread (``Thread.join``, ``Future.result``,
    asgiref's ``async_to_sync``), or is an event loop with nothing to run.
    BUSY: anything else; a thread blocked in C (``time.sleep``, a socket, a
    plain lock) counts as busy, since its wait cannot be told from work.
    """
    if frame is None or frame.f_code in done_in:
        return DONE
    waiting, loops, others, _ = _thread_codes()
    machinery: types.FrameType | None = frame  # idle in its pool, or handing back a job's result
    while machinery is not None and machinery.f_code not in loops and _is_pool_machinery(machinery):
        machinery = machinery.f_back
    if machinery is None or machinery.f_code in loops:
        return DONE
    innermost = frame
    while frame is not None and frame.f_code in waiting:
        frame = frame.f_back
    if frame is None:
        return DONE
    if frame is not innermost or frame.f_code in others:
        return PAUSED
    return BUSY


_POOL_MACHINERY = ("threading", "queue", "selectors", "asyncio", "concurrent", "anyio")


def _is_pool_machinery(frame: types.FrameType) -> bool:
    """Whether ``frame`` is of the modules a thread pool runs its jobs and hands back results with."""
    return str(frame.f_globals.get("__name__", "")).partition(".")[0] in _POOL_MACHINERY


def pool_job_frame(frame: types.FrameType | None) -> types.FrameType | None:
    """The frame of the thread-pool job that ``frame`` runs in, or None outside a known pool.

    That is the frame of the function a pool (concurrent.futures', hence
    asyncio's default executor; anyio's worker threads; asgiref's) called for
    the job, past the pool's own wrapper of it: it has returned before the
    job's result is handed back.
    """
    _, loops, _, items = _thread_codes()
    chain: list[types.FrameType] = []
    while frame is not None:
        if frame.f_code in loops:
            while chain and chain[-1].f_code in items:
                chain.pop()
            return chain[-1] if chain else None
        chain.append(frame)
        frame = frame.f_back
    return None


def frame_is_running(target: types.FrameType, innermost: types.FrameType | None) -> bool:
    """Whether ``target`` is on the stack whose innermost frame is ``innermost``."""
    while innermost is not None:
        if innermost is target:
            return True
        innermost = innermost.f_back
    return False
