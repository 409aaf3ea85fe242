"""Settings of the Django site the tests serve (``DJANGO_SETTINGS_MODULE=tests.django_site``)."""

from __future__ import annotations

import os
from typing import Any

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
SECRET_KEY = "a test site that keeps no secrets"
ROOT_URLCONF = "tests.django_urls"
MIDDLEWARE = ["safeplot.django.SafeplotMiddleware"]
SAFEPLOT_TIMEOUT = float(os.environ.get("SAFEPLOT_TIMEOUT", "30"))
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, Any] = {}
USE_TZ = True
