"""Change rate per table: committed writes, counted where the ORM bumps its versions.

:func:`count_committed` is called by :mod:`cachewise.orm.invalidation` (registered below when
this module is imported; the app imports it) once a write batch's version bump succeeded, that is
after the outermost transaction committed (a rolled-back write is never counted). One batch
counts one write per model it touched, however many rows: a transaction that saves 100 articles
changes the data a page shows once, and invalidates it once.
Writes the ORM does not see (raw SQL without ``invalidate_model``, another program) are not
counted, exactly as they invalidate nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from cachewise.orm.invalidation import on_committed_write

from . import store
from .recorder import recorder
from .settings import advisor_settings

__all__ = ["count_committed"]

logger = logging.getLogger("cachewise.monitoring")


def count_committed(labels: Iterable[str]) -> None:
    """Count one committed write of each model in ``labels`` when the advisor records."""
    try:
        if not advisor_settings.RECORD:
            return
        store.start()
    except Exception:  # never fail a write's after-commit hook over statistics
        logger.debug("cachewise advisor could not count writes", exc_info=True)
        return
    recorder.count_writes(dict.fromkeys(labels))


on_committed_write(count_committed)
