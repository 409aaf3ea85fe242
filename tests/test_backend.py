"""import safeplot forces a non-interactive backend, whatever came before it."""

from __future__ import annotations

import re

import pytest

from safeplot._backend import backend_from_env
from tests.conftest import run_python

REPORT = "import matplotlib; print(matplotlib.get_backend().lower())"


@pytest.mark.parametrize("gui", ["TkAgg", "QtAgg", "GTK3Agg", "MacOSX"])
def test_interactive_mplbackend_is_overridden(gui: str) -> None:
    result = run_python(
        "import warnings; warnings.filterwarnings('error', message='safeplot')\n"
        "import safeplot, matplotlib.pyplot as plt\n"
        "plt.figure(); plt.plot([1, 2]); plt.savefig(__import__('io').BytesIO())\n" + REPORT,
        env={"MPLBACKEND": gui},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "agg"


def test_pyplot_imported_first_with_gui_backend_is_switched_with_a_warning() -> None:
    # On a machine without a display pyplot itself drops MPLBACKEND=TkAgg at
    # import; setting it afterwards is what a desktop session ends up with.
    result = run_python(
        "import warnings, matplotlib, matplotlib.pyplot as plt\n"
        "matplotlib.rcParams['backend'] = 'TkAgg'\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import safeplot\n"
        "print([(w.category.__name__, str(w.message)) for w in caught])\n" + REPORT,
    )
    assert result.returncode == 0, result.stderr
    warned, backend = result.stdout.strip().splitlines()
    assert backend == "agg"
    assert "SafeplotWarning" in warned and "'TkAgg' to 'agg'" in warned and "interactive" in warned


def test_pyplot_imported_first_with_another_headless_backend_is_switched_too() -> None:
    result = run_python(
        "import warnings, matplotlib; matplotlib.use('svg'); import matplotlib.pyplot\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import safeplot\n"
        "print(len(caught), 'SAFEPLOT_BACKEND' in str(caught[0].message))\n" + REPORT,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True", "agg"]


def test_pyplot_imported_first_without_a_choice_is_switched_silently() -> None:
    result = run_python(
        "import warnings; warnings.filterwarnings('error', message='safeplot')\n"
        "import matplotlib.pyplot, safeplot\n" + REPORT
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "agg"


@pytest.mark.parametrize("name", ["svg", "PDF", "agg"])
def test_non_interactive_backend_named_in_safeplot_backend_is_kept(name: str) -> None:
    result = run_python("import safeplot\n" + REPORT, env={"SAFEPLOT_BACKEND": name, "MPLBACKEND": "TkAgg"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name.lower()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("TkAgg", "SAFEPLOT_BACKEND='TkAgg' is an interactive backend"),
        ("qtagg", "SAFEPLOT_BACKEND='qtagg' is an interactive backend"),
        ("nonsense", "SAFEPLOT_BACKEND='nonsense' is not a matplotlib backend"),
        ("module://no.such.module", "SAFEPLOT_BACKEND='module://no.such.module' cannot be imported"),
    ],
)
def test_bad_safeplot_backend_is_a_value_error_naming_the_variable(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        backend_from_env(name)  # what import safeplot reads SAFEPLOT_BACKEND with


def test_bad_safeplot_backend_fails_the_import() -> None:
    result = run_python("import safeplot", env={"SAFEPLOT_BACKEND": "TkAgg"})
    assert result.returncode != 0
    assert "ValueError: SAFEPLOT_BACKEND='TkAgg' is an interactive backend" in result.stderr
