"""What a module does while it is first imported stays, inside a group too; a group undoes only its own."""

from __future__ import annotations

import decimal
import importlib
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import matplotlib.units
import pytest

import safeplot

SETUP = """
import matplotlib
import matplotlib.pyplot as plt
import matplotlib.units
from matplotlib.colors import ListedColormap
{imports}
plt.style.use("dark_background")
matplotlib.rcParams["lines.linewidth"] = 7
matplotlib.colormaps.register(ListedColormap(["red", "blue"], name="{name}_cmap"))
{color_sequences}

class {name}Converter(matplotlib.units.ConversionInterface):
    @staticmethod
    def convert(value, unit, axis):
        return float(value)

matplotlib.units.registry[{key}] = {name}Converter()
{tail}
"""


class Modules:
    """Modules written to a folder on sys.path, each with a fresh name (so each import is a first one)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.names: list[str] = []

    def write(self, *, key: str = "decimal.Decimal", imports: str = "", tail: str = "") -> str:
        name = f"setup_{uuid.uuid4().hex[:8]}"
        sequences = (
            f'matplotlib.color_sequences.register("{name}_colors", ["red", "green"])'
            if hasattr(matplotlib, "color_sequences")
            else ""
        )
        source = SETUP.format(
            name=name, key=key, imports=imports or "import decimal", color_sequences=sequences, tail=tail
        )
        (self.folder / f"{name}.py").write_text(textwrap.dedent(source))
        self.names.append(name)
        return name


@pytest.fixture
def modules(tmp_path: Path) -> Iterator[Modules]:
    sys.path.insert(0, str(tmp_path))
    importlib.invalidate_caches()
    saved_units = dict(matplotlib.units.registry)
    written = Modules(tmp_path)
    try:
        yield written
    finally:
        sys.path.remove(str(tmp_path))
        with safeplot.lock:  # put the process back as the tests found it
            plt.style.use("default")
            for name in written.names:
                sys.modules.pop(name, None)
                unregister_colormap(f"{name}_cmap")
                sequences = getattr(matplotlib, "color_sequences", None)
                if sequences is not None and f"{name}_colors" in sequences:
                    sequences.unregister(f"{name}_colors")
            matplotlib.units.registry.clear()
            matplotlib.units.registry.update(saved_units)


def unregister_colormap(name: str) -> None:
    registry = matplotlib.colormaps
    if hasattr(registry, "unregister"):
        registry.unregister(name)
    else:  # matplotlib 3.5
        matplotlib.cm.unregister_cmap(name)


def state(name: str) -> dict[str, object]:
    sequences = getattr(matplotlib, "color_sequences", None)
    return {
        "facecolor": str(dict.__getitem__(matplotlib.rcParams, "axes.facecolor")),
        "linewidth": dict.__getitem__(matplotlib.rcParams, "lines.linewidth"),
        "cmap": f"{name}_cmap" in matplotlib.colormaps,
        "colors": sequences is None or f"{name}_colors" in sequences,
        "converter": type(matplotlib.units.registry.get(decimal.Decimal)).__name__,
    }


def kept(name: str) -> dict[str, object]:
    return {
        "facecolor": "black",
        "linewidth": 7,
        "cmap": True,
        "colors": True,
        "converter": f"{name}Converter",
    }


def test_what_a_first_import_inside_a_group_sets_up_stays_and_the_groups_own_changes_go(
    modules: Modules,
) -> None:
    name = modules.write()
    with safeplot.locked():
        plt.rcParams["font.size"] = 20  # the group's own, before the import
        importlib.import_module(name)
        plt.rcParams["axes.titlesize"] = 30  # and after it
        plt.rcParams["lines.linewidth"] = 2  # a change of the group's own, of what the import set
    assert state(name) == kept(name)
    assert matplotlib.rcParams["font.size"] == 10 and matplotlib.rcParams["axes.titlesize"] == "large"
    with safeplot.locked():  # a later group starts with it, as without safeplot
        assert state(name) == kept(name)


def test_nested_imports_and_an_import_that_fails_half_way_keep_what_they_did(modules: Modules) -> None:
    inner = modules.write(key="fractions.Fraction", imports="import fractions")
    outer = modules.write(imports=f"import decimal\nimport {inner}")
    failing = modules.write(key="float", tail='raise RuntimeError("half way")')
    with safeplot.locked():
        importlib.import_module(outer)
        with pytest.raises(RuntimeError, match="half way"):
            importlib.import_module(failing)  # its setup ran before it failed: it stays, as it would
    import fractions

    assert type(matplotlib.units.registry[fractions.Fraction]).__name__ == f"{inner}Converter"
    assert type(matplotlib.units.registry[float]).__name__ == f"{failing}Converter"
    assert all(f"{name}_cmap" in matplotlib.colormaps for name in (inner, outer, failing))


def test_setup_a_module_does_when_imported_again_is_undone_like_any_group_code(modules: Modules) -> None:
    name = modules.write()
    module = importlib.import_module(name)  # a first import outside any group
    with safeplot.lock:
        plt.style.use("default")
        unregister_colormap(f"{name}_cmap")
    with safeplot.locked():
        importlib.reload(module)  # not a first import: the group's own doing
    assert state(name)["facecolor"] == "white" and state(name)["linewidth"] == 1.5
    assert not state(name)["cmap"]


def test_a_module_first_imported_by_one_of_many_groups_sets_up_every_later_one(modules: Modules) -> None:
    name = modules.write()
    seen: list[dict[str, object]] = []
    start = threading.Barrier(8)

    def job() -> None:
        start.wait()
        with safeplot.locked(timeout=30):
            importlib.import_module(name)  # only the first of them imports it
            seen.append(state(name))

    threads = [threading.Thread(target=job) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert seen == [kept(name)] * 8


def test_units_registry_items_set_without_the_lock_are_reported(recwarn: pytest.WarningsRecorder) -> None:
    safeplot.guard("warn")
    saved = dict(matplotlib.units.registry)
    try:
        matplotlib.units.registry[complex] = matplotlib.units.ConversionInterface()  # unlocked
    finally:
        with safeplot.lock:
            matplotlib.units.registry.clear()
            matplotlib.units.registry.update(saved)
    messages = [str(w.message) for w in recwarn if issubclass(w.category, safeplot.SafeplotWarning)]
    assert len(messages) == 1
    assert messages[0].startswith(
        f"matplotlib.units.registry[{complex!r}] set without safeplot.lock at {__file__}:"
    )


def test_a_group_a_module_opens_at_import_undoes_its_own_changes(modules: Modules) -> None:
    name = modules.write(
        tail='import safeplot\nwith safeplot.locked():\n    matplotlib.rcParams["font.size"] = 30'
    )
    with safeplot.locked():
        importlib.import_module(name)
    assert state(name) == kept(name)  # its setup stays...
    assert matplotlib.rcParams["font.size"] == 10  # ...but not what its own group changed
