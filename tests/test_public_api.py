"""The public API is what __all__ says, every name has a docstring, and the API reference lists it.

(That the reference names every public name, and that CI runs the README's test
command, is checked in tests/test_docs.py.)
"""

from __future__ import annotations

import importlib
import types

import pytest

import safeplot


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(safeplot).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(safeplot.__all__)


@pytest.mark.parametrize("module_name", ["safeplot", "safeplot.wsgi", "safeplot.django", "safeplot.asgi"])
def test_every_public_name_has_a_docstring(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__
    undocumented = [name for name in module.__all__ if not getattr(module, name).__doc__]
    assert undocumented == []


def test_every_public_name_of_the_celery_adapter_has_a_docstring() -> None:
    celery_adapter = importlib.import_module("safeplot.celery")
    assert celery_adapter.SafeplotTask.__doc__ and celery_adapter.SafeplotTask.safeplot_wait.__doc__
    assert celery_adapter.TIMEOUT_SETTING == "safeplot_timeout"  # a str: its doc is in docs/api.md
