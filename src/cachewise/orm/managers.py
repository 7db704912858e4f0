"""A queryset mixin so writes that send no signals invalidate cached ORM data too.

``QuerySet.update()``, ``bulk_create()``, ``bulk_update()`` and ``QuerySet.delete()`` write
without ``post_save`` (and ``delete()`` may take a fast path without ``post_delete``). Give the
models whose data you cache this manager::

    class Article(models.Model):
        objects = CachewiseManager()
        # or: objects = MyQuerySet.as_manager() with class MyQuerySet(CachewiseQuerySetMixin, QuerySet)

Each of these writes invalidates every cached row and list of the model after the outermost
transaction commits (one round trip), and not at all if it rolls back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

from django.db import models

from .invalidation import schedule_coarse

__all__ = ["CachewiseManager", "CachewiseQuerySet", "CachewiseQuerySetMixin"]

if TYPE_CHECKING:  # pragma: no cover - the mixin is used on QuerySet subclasses
    _Base = models.QuerySet[Any]
else:
    _Base = object


class CachewiseQuerySetMixin(_Base):
    """Mix into a ``QuerySet`` subclass (before ``QuerySet``) to invalidate on bulk writes."""

    def update(self, **kwargs: Any) -> int:
        """``QuerySet.update()``, then invalidate the model's cached rows and lists."""
        count = super().update(**kwargs)
        schedule_coarse(self.model, self.db, "update")
        return count

    def delete(self) -> tuple[int, dict[str, int]]:
        """``QuerySet.delete()``, then invalidate the model and models it sets to NULL."""
        result = super().delete()
        schedule_coarse(self.model, self.db, "delete", delete=True)
        return result

    def bulk_create(
        self,
        objs: Iterable[Any],
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Collection[str] | None = None,
        unique_fields: Collection[str] | None = None,
    ) -> list[Any]:
        """``bulk_create()``, then invalidate the model (also remembered misses of new pks)."""
        created = super().bulk_create(
            objs,
            batch_size=batch_size,
            ignore_conflicts=ignore_conflicts,
            update_conflicts=update_conflicts,
            update_fields=update_fields,
            unique_fields=unique_fields,
        )
        schedule_coarse(self.model, self.db, "bulk_create")
        return created

    def bulk_update(self, objs: Iterable[Any], fields: Iterable[str], batch_size: int | None = None) -> int:
        """``bulk_update()``, then invalidate the model's cached rows and lists."""
        count = super().bulk_update(objs, fields, batch_size=batch_size)
        schedule_coarse(self.model, self.db, "bulk_update")
        return count


class CachewiseQuerySet(CachewiseQuerySetMixin, models.QuerySet[Any]):
    """A ``QuerySet`` whose bulk writes invalidate cached ORM data."""


class CachewiseManager(models.Manager.from_queryset(CachewiseQuerySet)):  # type: ignore[misc]
    """A manager over :class:`CachewiseQuerySet`."""
