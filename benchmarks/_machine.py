"""The first line every benchmark prints: the machine, the versions, the date."""

from __future__ import annotations

import os
import platform
import time

import matplotlib


def header(details: str) -> str:
    return (
        f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, matplotlib {matplotlib.__version__}, "
        f"{details}, {time.strftime('%Y-%m-%d')}"
    )
