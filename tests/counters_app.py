"""Counters declared with an apply function, for the flush-counters command tests."""

from __future__ import annotations

from django.db.models import F

from cachewise import Counter
from tests.testapp.models import PageViews


def add_views(page: int, delta: int) -> None:
    """Apply a drained count to the page's row."""
    PageViews.objects.filter(page=page).update(views=F("views") + delta)


page_views = Counter("cmd:views", ttl=3600, apply=add_views)
not_a_counter = 42
no_apply = Counter("cmd:noapply")
