"""The package's rooms: each imports only rooms below it, uses no other room's private names, and one
room alone swaps code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "safeplot"

# Data flows one way: a room may import only rooms of a lower level.
LEVELS = {
    "_compat": 0,
    "_errors": 0,
    "_patch": 1,
    "_owners": 1,
    "_lock": 2,
    "_backend": 2,
    "_state": 2,
    "_guard": 3,
    "_group": 4,
    "_encode": 5,
    "_render": 5,
    "_pool": 6,
    "_web": 6,
    "wsgi": 7,
    "django": 7,
    "asgi": 7,
    "celery": 7,
    "__init__": 8,
    "_launcher": 8,
}


def modules() -> dict[str, ast.Module]:
    return {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(PACKAGE.glob("*.py"))}


def own_imports(tree: ast.Module) -> list[ast.ImportFrom]:
    """``from .room import ...`` statements (the package's own rooms)."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level >= 1]


def test_every_room_has_a_level() -> None:
    assert set(modules()) == set(LEVELS)


@pytest.mark.parametrize("room", sorted(LEVELS))
def test_a_room_imports_only_rooms_below_it(room: str) -> None:
    tree = modules()[room]
    imported = set()
    for node in own_imports(tree):  # from .room import name, or from . import room
        imported.update([node.module] if node.module else [alias.name for alias in node.names])
    upward = [name for name in imported if LEVELS.get(name, -1) >= LEVELS[room]]
    assert upward == [], f"safeplot.{room} imports {upward}, which are not below it"


@pytest.mark.parametrize("room", sorted(LEVELS))
def test_no_room_uses_another_rooms_private_names(room: str) -> None:
    tree = modules()[room]
    imported_names: set[str] = set()
    violations = []
    for node in own_imports(tree):
        for alias in node.names:
            # A room is a private module (from . import _compat); its names must be public. The
            # package's __init__ keeps its own aliases private (from ._x import f as _f).
            if node.module and alias.name.startswith("_") and not (room == "__init__" and alias.asname):
                violations.append(f"from .{node.module} import {alias.name}")
            imported_names.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported_names
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and node.value.id != "_compat"  # its names are matplotlib's and Python's, behind functions
        ):
            violations.append(f"{node.value.id}.{node.attr} (line {node.lineno})")
    assert violations == [], f"safeplot.{room} uses private names of other rooms: {violations}"


def test_only_the_patch_room_swaps_code() -> None:
    swapping = sorted(
        room
        for room, tree in modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.Assign, ast.AugAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Attribute) and target.attr == "__code__"
    )
    assert set(swapping) == {"_patch"}
