"""``increment_field``: the ``apply`` of a Counter that adds to a model's column.

A flush applied through a :class:`~cachewise.orm.CachewiseManager` ``update()`` invalidates
*every* cached row and list of the model (``update()`` does not say which rows it touched), so a
counter flushed every minute empties the model's row cache every minute (issue 11). This apply
updates through a plain queryset and invalidates only the rows it updated, plus the lists that
read the model (a list may show or order by the column)::

    article_views = Counter("article:views", apply=increment_field(Article, "views"))
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import models, router
from django.db.models import F

from cachewise.orm.invalidation import invalidate_rows

__all__ = ["increment_field"]


def increment_field(
    model: type[models.Model], field: str, *, using: str | None = None
) -> Callable[[Any, int], None]:
    """Return ``apply(pk, delta)``: ``UPDATE model SET field = field + delta WHERE pk = pk``,
    then invalidate that row's cached data (after the flush's transaction commits)."""
    model._meta.get_field(field)  # a misspelt column fails here, not at the first flush

    def apply(pk: Any, delta: int) -> None:
        db = using or router.db_for_write(model)
        models.QuerySet(model).using(db).filter(pk=pk).update(**{field: F(field) + delta})
        invalidate_rows(model, [pk], using=db)

    apply.__qualname__ = f"increment_field({model.__name__}, {field!r})"
    return apply
