"""The article view counter: increments in Redis, flushed to ``Article.views`` in batches."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from demo.blog.features import feature
from demo.blog.models import Article

__all__ = ["article_views", "flush_views"]

_Counter = feature("Counter")
#: None when this checkout has no cachewise.counters (the counter view then stays uncached).
article_views: Any = _Counter("article:views", ttl=86400) if _Counter is not None else None


def _apply(pk: Any, delta: int) -> None:
    Article.objects.filter(pk=int(pk)).update(views=F("views") + delta)


def flush_views() -> Any:
    """Drain the counter into the database; return what ``Counter.flush`` reports."""
    return article_views.flush(_apply)
