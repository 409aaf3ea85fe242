"""The public API is what __all__ says, and the README documents all of it."""

from __future__ import annotations

import importlib
import re
import types

import pytest

import safeplot
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(safeplot).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(safeplot.__all__)


def test_every_public_name_is_documented_in_the_readme_and_has_a_docstring() -> None:
    for name in safeplot.__all__:
        assert f"`safeplot.{name}" in README, f"safeplot.{name} is not in the README"
        assert getattr(safeplot, name).__doc__, f"safeplot.{name} has no docstring"


@pytest.mark.parametrize("adapter", ["wsgi", "django", "asgi"])
def test_every_adapter_name_is_documented_in_the_readme(adapter: str) -> None:
    module = importlib.import_module(f"safeplot.{adapter}")
    for name in module.__all__:
        assert f"`safeplot.{adapter}.{name}(" in README
        assert getattr(module, name).__doc__


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.+?)\n```", README)
    test_command = next(c for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
