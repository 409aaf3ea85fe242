"""Sphinx configuration: narrative pages in Markdown (MyST), the API reference from the docstrings."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # autodoc imports this checkout's safeplot, and its examples

import safeplot  # noqa: E402

project = "safeplot"
author = "the safeplot authors"
copyright = "2026, the safeplot authors"
release = version = safeplot.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3  # README-style links to "#section" work

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"show-inheritance": True}

html_theme = "furo"
html_title = f"safeplot {release}"
