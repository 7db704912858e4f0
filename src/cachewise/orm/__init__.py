"""ORM caching: rows by primary key and querysets as plain dicts, invalidated after commit.

``CachedRows`` caches a model's rows by primary key, ``cached_list`` a queryset's result; both
are stamped with version counters read before the query, so a fill racing a committed write is
never served. Writes invalidate through ``post_save``/``post_delete``/``m2m_changed`` (connected
in ``CachewiseConfig.ready()``) and, for bulk writes, through :class:`CachewiseQuerySetMixin`;
:func:`invalidate_model` covers raw SQL. See ``docs/orm.md``.
"""

from __future__ import annotations

from . import app_check as _app_check  # noqa: F401  (registers cachewise.E005: the app may be missing)
from . import outage as _outage  # noqa: F401  (registers the ORM's part of outage recovery)
from .invalidation import invalidate_model
from .lists import acached_list, cached_list
from .managers import CachewiseManager, CachewiseQuerySet, CachewiseQuerySetMixin
from .rows import CachedRows, RowCache

__all__ = [
    "CachedRows",
    "CachewiseManager",
    "CachewiseQuerySet",
    "CachewiseQuerySetMixin",
    "RowCache",
    "acached_list",
    "cached_list",
    "invalidate_model",
]
