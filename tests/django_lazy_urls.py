"""URLs of the lazily imported Django site: its views module sets ``dark_background`` at import.

``/legacy/<seed>.png`` draws in the style of the views module; ``/restyle/<seed>.png``
changes the style in the request (undone after it); ``/async/<seed>/<sensitive>.png``
is an async view that awaits ``sync_to_async`` of the legacy drawing, with
``thread_sensitive`` 1 or 0; ``/stats`` as in the other test site.
"""

from __future__ import annotations

from django.urls import path

from tests import django_lazy_views as views
from tests.django_urls import stats

urlpatterns = [
    path("legacy/<int:seed>.png", views.legacy),
    path("restyle/<int:seed>.png", views.restyle),
    path("async/<int:seed>/<int:sensitive>.png", views.async_legacy),
    path("stats", stats),
]
