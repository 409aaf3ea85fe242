"""safeplot.guard(): unlocked pyplot calls reported per call site, for both import styles."""

from __future__ import annotations

import ast
import functools
import inspect
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import matplotlib.pyplot as plt
import pytest
from matplotlib._pylab_helpers import Gcf
from matplotlib.backends.backend_agg import RendererAgg

import safeplot
from safeplot._guard import hooks
from safeplot.wsgi import SafeplotMiddleware
from tests.conftest import ROOT, run_python

# Imported before any guard is on, as old modules do at their top.
from matplotlib.pyplot import figure, gcf, plot  # isort: skip


def line_of(marker: str) -> int:
    source, start = inspect.getsourcelines(test_warns_once_per_call_site_for_both_import_styles)
    return start + next(i for i, line in enumerate(source) if marker in line)


def pyplot_snapshot() -> dict[str, Any]:
    return {
        name: (value, getattr(value, "__code__", None), dict(getattr(value, "__dict__", {})))
        for name, value in vars(plt).items()
        if callable(value) and name != "_safeplot_hooked"
    }


@pytest.fixture
def recorded() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    with safeplot.lock:
        plt.close("all")


def test_warns_once_per_call_site_for_both_import_styles(recorded: list[warnings.WarningMessage]) -> None:
    safeplot.guard("warn")
    for _ in range(3):
        figure(), plot([1, 2])  # site A: two pyplot functions on one line
        plt.title("t")  # site B
    gcf()  # site C
    found = sorted((w.filename, w.lineno, str(w.message).split("(")[0]) for w in recorded)
    assert all(w.category is safeplot.SafeplotWarning for w in recorded)
    assert found == sorted(
        [
            (__file__, line_of("site A"), "pyplot.figure"),
            (__file__, line_of("site A"), "pyplot.plot"),
            (__file__, line_of("site B"), "pyplot.title"),
            (__file__, line_of("site C"), "pyplot.gcf"),
        ]
    )
    assert f"called without safeplot.lock at {__file__}:{line_of('site B')}" in str(recorded[2].message)


def test_raise_mode_raises_at_every_call_before_pyplot_runs() -> None:
    safeplot.guard("raise")
    for _ in range(2):
        with pytest.raises(
            safeplot.UnlockedPyplotError, match=r"pyplot\.figure\(\) called without safeplot\.lock"
        ):
            figure()
        with pytest.raises(RuntimeError, match=r"pyplot\.subplots\(\)"):
            plt.subplots()
    assert Gcf.figs == {}


def test_calls_holding_the_lock_are_never_reported() -> None:
    safeplot.guard("raise")
    with safeplot.locked():
        figure()
        plot([1])
        plt.title("in a group")
    with safeplot.lock:
        plt.figure()
        plt.close("all")
    with RendererAgg.lock:  # type: ignore[attr-defined]
        gcf()
        plt.close("all")

    @safeplot.locked
    def decorated() -> None:
        plt.plot([1, 2])

    decorated()


def test_the_check_is_per_thread() -> None:
    safeplot.guard("raise")
    errors: list[BaseException] = []

    def unlocked() -> None:
        try:
            plt.gcf()
        except BaseException as exc:
            errors.append(exc)

    with safeplot.locked():  # the main thread holds the lock; the other thread does not
        thread = threading.Thread(target=unlocked)
        thread.start()
        thread.join(30)
    assert len(errors) == 1 and isinstance(errors[0], safeplot.UnlockedPyplotError)


def test_off_leaves_pyplot_exactly_as_it_was() -> None:
    before = pyplot_snapshot()
    signatures = {name: inspect.signature(value[0]) for name, value in before.items() if value[1] is not None}
    safeplot.guard("warn")
    during = pyplot_snapshot()
    swapped = [key.partition(".")[2] for key, target in hooks.targets.items() if target.kind == "pyplot"]
    assert "gcf" in swapped and "gca" in swapped
    for name in swapped:  # the same function objects, with new code
        assert during[name][0] is before[name][0] and during[name][1] is not before[name][1], name
    assert plt.gcf is gcf
    assert {
        name: inspect.signature(value[0]) for name, value in during.items() if value[1] is not None
    } == signatures
    safeplot.guard("raise")
    safeplot.guard("off")
    after = pyplot_snapshot()
    assert after.keys() == before.keys()
    for name, (value, code, attributes) in before.items():
        assert after[name][0] is value, name
        assert after[name][1] is code, name
        assert after[name][2] == attributes, name


def test_bad_mode_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="guard mode must be one of 'warn', 'raise', 'off', not 'loud'"):
        safeplot.guard("loud")  # type: ignore[arg-type]


@pytest.mark.slow(seconds=2)
def test_guard_from_environment() -> None:
    code = "import matplotlib.pyplot as plt, safeplot\nplt.figure()  # unlocked\n"
    warned = run_python(code, env={"SAFEPLOT_GUARD": "warn"})
    assert warned.returncode == 0
    assert "<string>:2: SafeplotWarning: pyplot.figure() called without safeplot.lock" in warned.stderr
    raised = run_python(code, env={"SAFEPLOT_GUARD": "raise"})
    assert "safeplot._errors.UnlockedPyplotError: pyplot.figure() called" in raised.stderr
    bad = run_python(code, env={"SAFEPLOT_GUARD": "loud"})
    assert "ValueError: SAFEPLOT_GUARD='loud': expected one of warn, raise, off" in bad.stderr


def test_setting_rcparams_without_the_lock_is_reported(recorded: list[warnings.WarningMessage]) -> None:
    safeplot.guard("warn")
    try:
        plt.rcParams["lines.linewidth"] = 3  # unlocked
        plt.style.use("ggplot")  # reported once: the rcParams it sets are not reported one by one
        with safeplot.locked():
            plt.rcParams["lines.linewidth"] = 5
    finally:
        with safeplot.lock:
            plt.rcdefaults()
    messages = [str(w.message) for w in recorded]
    assert messages[0].startswith(f"rcParams['lines.linewidth'] set without safeplot.lock at {__file__}:")
    assert messages[1].startswith(f"matplotlib.style.use() called without safeplot.lock at {__file__}:")
    assert len(messages) == 2


def app_show_lambda() -> Any:
    return lambda *args, **kwargs: "shown"


def app_show_partial() -> Any:
    return functools.partial(str, "shown")


def app_show_mock() -> Any:
    return mock.Mock(return_value="shown")


@pytest.mark.parametrize("make_replacement", [app_show_lambda, app_show_partial, app_show_mock])
@pytest.mark.parametrize("user", ["guard", "middleware"])
def test_a_pyplot_function_the_app_replaced_keeps_working_and_is_never_modified(
    make_replacement: Callable[[], Any], user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    replacement = make_replacement()
    code = getattr(replacement, "__code__", None)
    monkeypatch.setattr(plt, "show", replacement)  # as web apps do: plt.show = lambda *a, **k: None
    later = make_replacement()

    def call_show_every_way() -> list[Any]:
        return [plt.show(), replacement()]

    if user == "guard":
        safeplot.guard("warn")
        with safeplot.locked():
            results = call_show_every_way()
        monkeypatch.setattr(plt, "show", later)  # replaced again while the hooks are on
        safeplot.guard("off")
    else:

        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            plt.figure()
            start_response("200 OK", [])
            return [repr(call_show_every_way()).encode()]

        iterable = SafeplotMiddleware(app)({"REQUEST_METHOD": "GET"}, lambda *args: None)
        results = eval(b"".join(iterable))
        iterable.close()  # type: ignore[attr-defined]
    assert results == ["shown", "shown"]
    assert getattr(replacement, "__code__", None) is code
    assert plt.show() == "shown" and replacement() == "shown" and later() == "shown"


def test_a_replacement_made_before_import_is_left_alone() -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.show = lambda *a, **k: 'app'\n"
        "import safeplot\n"
        "safeplot.guard('raise')\n"
        "with safeplot.locked():\n"
        "    print(plt.show(), plt.show.__code__.co_filename)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "app <string>\n"


def test_an_apps_import_time_backend_selection_is_not_reported(tmp_path: Path) -> None:
    (tmp_path / "legacy_settings.py").write_text(
        'import matplotlib\nmatplotlib.use("Agg")\nmatplotlib.rcParams["backend"] = "Agg"\n'
        'import matplotlib.pyplot as plt\nplt.switch_backend("agg")\n'
    )
    code = (
        "import warnings, safeplot, matplotlib\n"
        "warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    import legacy_settings\n"
        "    matplotlib.use('Agg')  # later, at run time: it closes every figure, so it is reported\n"
        "print(repr([str(w.message) for w in caught if isinstance(w.message, safeplot.SafeplotWarning)]))\n"
    )
    result = run_python(
        code, env={"SAFEPLOT_GUARD": "warn", "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    )
    assert result.returncode == 0, result.stderr
    reports = ast.literal_eval(result.stdout.strip())
    assert len(reports) == 1 and " at <string>:5;" in reports[0], reports  # only the run-time call
