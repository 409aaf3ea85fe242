"""safeplot.celery in-process: SafeplotTask run eagerly (Celery's own tracer, no broker), and the
LockTimeout through Celery's result serialisation.  Real workers: tests/test_celery_workers.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf

import safeplot
from tests.conftest import held_by_another_thread, run_python
from tests.gate import Gate
from tests.plots import draw, draw_and_save

celery = pytest.importorskip("celery")
from celery import Celery, signals  # noqa: E402

from safeplot.celery import SafeplotTask  # noqa: E402


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("safeplot_tests", task_cls="safeplot.celery:SafeplotTask", set_as_current=False)
    app.conf.update(task_always_eager=True, task_eager_propagates=True, result_backend="cache+memory://")
    yield app
    app.close()


def serial(kind: str, seed: int) -> bytes:
    with safeplot.locked():
        return draw_and_save(kind, seed, "png")


def test_task_cls_makes_every_task_a_group_and_nothing_leaks_into_the_next(app: Celery) -> None:
    @app.task
    def go_dark() -> None:
        plt.style.use("dark_background")  # for good, as far as the task knows
        plt.rcParams["lines.linewidth"] = 7
        draw("line", 1)  # and its figure left open
        matplotlib.colormaps.register(matplotlib.colors.ListedColormap(["red", "blue"], name="task_map"))

    @app.task
    def plot(kind: str, seed: int) -> bytes:
        return draw_and_save(kind, seed, "png")  # never closes its figure

    assert isinstance(go_dark, SafeplotTask)
    go_dark.delay().get()
    assert Gcf.figs == {} and plt.rcParams["axes.facecolor"] == "white" and "task_map" not in plt.colormaps()
    outputs = [plot.delay(kind, seed).get() for kind in ("line", "styled", "heatmap") for seed in range(2)]
    assert outputs == [serial(kind, seed) for kind in ("line", "styled", "heatmap") for seed in range(2)]
    assert Gcf.figs == {}


def test_a_task_that_never_plots_never_takes_the_lock(app: Celery) -> None:
    @app.task
    def add(a: int, b: int) -> int:
        return a + b

    with held_by_another_thread():  # it would wait for ever if it tried
        before = safeplot.stats()["acquisitions"]
        assert add.delay(2, 3).get() == 5
        assert safeplot.stats()["acquisitions"] == before


def test_a_task_that_cannot_get_the_lock_fails_with_lock_timeout(app: Celery) -> None:
    app.conf.safeplot_timeout = 30  # the task's own option goes first

    @app.task(safeplot_timeout=0.1)
    def impatient() -> bytes:
        return draw_and_save("line", 1, "png")

    with held_by_another_thread(), pytest.raises(safeplot.LockTimeout) as raised:
        impatient.delay().get()
    assert raised.value.timeout == 0.1 and raised.value.holder == "holder"
    assert Gcf.figs == {}


def test_the_apps_setting_bounds_the_wait(app: Celery) -> None:
    app.conf.safeplot_timeout = 0.1

    @app.task
    def plot() -> bytes:
        return draw_and_save("line", 1, "png")

    with held_by_another_thread(), pytest.raises(safeplot.LockTimeout):
        plot.delay().get()


@pytest.mark.parametrize(("where", "value", "error"), [("task", -1, ValueError), ("app", "soon", TypeError)])
def test_a_bad_timeout_fails_the_run_naming_where_it_was_set(
    app: Celery, where: str, value: Any, error: type[Exception]
) -> None:
    options = {"safeplot_timeout": value} if where == "task" else {}
    if where == "app":
        app.conf.safeplot_timeout = value

    @app.task(**options)
    def plot() -> None:
        plt.figure()

    named = "safeplot_timeout of task" if where == "task" else "app.conf.safeplot_timeout"
    with pytest.raises(error, match=named):
        plot.delay().get()


def test_autoretry_for_lock_timeout_retries_until_the_lock_is_had(app: Celery) -> None:
    release = threading.Event()
    held = threading.Event()
    let_go = threading.Event()

    def hold() -> None:
        with safeplot.lock:
            held.set()
            release.wait(30)
        let_go.set()

    app.conf.task_eager_propagates = False  # Celery's eager apply() then runs the retry itself

    @app.task(bind=True, safeplot_timeout=0.1, autoretry_for=(safeplot.LockTimeout,), max_retries=3)
    def plot(self: Any) -> tuple[int, bytes]:
        if self.request.retries:  # the first run timed out: let the retry have the lock
            release.set()  # (before the run's first touch of matplotlib, where its group begins)
            assert let_go.wait(30)
        return self.request.retries, draw_and_save("line", 1, "png")

    holder = threading.Thread(target=hold, name="holder")
    holder.start()
    try:
        assert held.wait(30)
        retries, png = plot.delay().get()
    finally:
        release.set()
        holder.join(30)
    assert retries == 1 and png == serial("line", 1)


def test_lock_timeout_comes_back_whole_through_celerys_result_serialisation(app: Celery) -> None:
    from celery.backends.base import Backend

    for serializer in ("json", "pickle"):
        app.conf.result_serializer = serializer
        app.conf.result_accept_content = ["json", "pickle"]
        backend = Backend(app=app)
        stored = backend.prepare_exception(safeplot.LockTimeout(0.5, "GET /plot", "request"), serializer)
        rebuilt = backend.exception_to_python(stored)
        assert type(rebuilt) is safeplot.LockTimeout, serializer
        assert (rebuilt.timeout, rebuilt.holder, rebuilt.holder_kind) == (0.5, "GET /plot", "request")
        assert str(rebuilt) == "safeplot.lock not acquired within 0.5 s; held by request 'GET /plot'"


def test_a_task_run_is_named_as_the_holder(app: Celery) -> None:
    errors: list[safeplot.LockTimeout] = []
    started = threading.Event()
    asked = Gate()  # waited for at work: the task's hold stays held meanwhile

    @app.task
    def plot_and_ask() -> None:
        plt.figure()
        asker = threading.Thread(target=ask)
        asker.start()
        started.set()
        assert asked.wait(30)
        asker.join(30)

    def ask() -> None:
        assert started.wait(30)  # the task is past Thread.start (a wait for this thread: paused)
        try:
            with safeplot.locked(timeout=0.1):
                pass
        except safeplot.LockTimeout as error:
            errors.append(error)
        finally:
            asked.open()

    result = plot_and_ask.delay()
    result.get()
    assert len(errors) == 1 and errors[0].holder_kind == "task"
    assert errors[0].holder == f"{plot_and_ask.name}[{result.id}]"


def test_import_without_celery_explains_the_extra() -> None:
    result = run_python("import sys; sys.modules['celery'] = None\nimport safeplot.celery")
    assert result.returncode != 0
    assert (
        "ImportError: safeplot.celery needs Celery >= 5.3; install it with: pip install 'safeplot[celery]'"
        in result.stderr
    )


def test_a_task_run_inside_a_hold_or_another_run_nests_in_it(app: Celery) -> None:
    app.conf.safeplot_timeout = 5  # a run that waited for its caller would fail after this

    @app.task
    def inner(seed: int) -> bytes:
        return draw_and_save("line", seed, "png")

    @app.task
    def outer() -> list[bytes]:
        plt.figure()
        return [inner(1), inner.delay(2).get(disable_sync_subtasks=False)]  # direct, and eager

    assert outer.delay().get() == [serial("line", 1), serial("line", 2)]
    with safeplot.locked():
        assert inner.delay(3).get() == serial("line", 3)
    assert Gcf.figs == {}


def test_base_and_an_apps_own_subclass_make_one_task_safe_and_the_group_ends_before_success(
    app: Celery,
) -> None:
    plain = Celery("plain_tasks", set_as_current=False)
    plain.conf.update(task_always_eager=True, task_eager_propagates=True)

    class AppTask(SafeplotTask):  # an app's own base class
        pass

    seen_at_success: list[tuple[str | None, int]] = []

    def on_success(**_: Any) -> None:  # Celery sends it once the run is done and its result stored
        seen_at_success.append((safeplot.lock.holder, len(Gcf.figs)))

    @plain.task(base=SafeplotTask)
    def one(seed: int) -> bytes:
        return draw_and_save("bar", seed, "png")

    @plain.task(base=AppTask)
    def other(seed: int) -> bytes:
        return draw_and_save("hist", seed, "png")

    signals.task_success.connect(on_success)
    try:
        outputs = [one.delay(1).get(), other.delay(2).get()]
    finally:
        signals.task_success.disconnect(on_success)
        plain.close()
    assert outputs == [serial("bar", 1), serial("hist", 2)]
    assert seen_at_success == [(None, 0), (None, 0)]  # the group had ended: lock free, figure closed
