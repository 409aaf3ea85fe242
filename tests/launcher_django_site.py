"""Settings of the Django test site without safeplot's middleware: safeplot-run --middleware adds it."""

from __future__ import annotations

from tests.django_site import *  # noqa: F403

MIDDLEWARE: list[str] = []
