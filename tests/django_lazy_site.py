"""Settings of a Django site whose views module sets a style when it is first imported, lazily.

``DJANGO_SETTINGS_MODULE=tests.django_lazy_site``: Django imports the URLconf,
and with it the views, inside the first request it serves.
"""

from __future__ import annotations

from tests.django_site import *  # noqa: F403

ROOT_URLCONF = "tests.django_lazy_urls"
