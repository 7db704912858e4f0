"""The article view counter: increments in Redis, flushed to ``Article.views`` in batches.

``CACHEWISE_COUNTERS`` in the demo's settings lists ``article_views``, so
``manage.py cachewise flush-counters`` (from cron, say) drains it with ``apply_views``.
"""

from __future__ import annotations

import io
from typing import Any

from django.db.models import F

from demo.blog.features import feature
from demo.blog.models import Article

__all__ = ["apply_views", "article_views", "flush_views"]


def apply_views(pk: Any, delta: int) -> None:
    """Add ``delta`` drained views to article ``pk`` in one UPDATE."""
    Article.objects.filter(pk=int(pk)).update(views=F("views") + delta)


_Counter = feature("Counter")
#: None when this checkout has no cachewise.counters.counter (the counter view then stays uncached).
article_views: Any = _Counter("article:views", apply=apply_views) if _Counter is not None else None


def flush_views() -> str:
    """Run ``manage.py cachewise flush-counters`` as cron would; return its output."""
    from django.core.management import call_command

    output = io.StringIO()
    call_command("cachewise", "flush-counters", stdout=output, stderr=output)
    return output.getvalue().strip()
