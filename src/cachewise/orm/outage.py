"""The ORM's part of outage recovery (:mod:`cachewise.recovery`), registered when the ORM loads.

Two things only the ORM knows: how to apply an ``"orm"`` record (bump the versions it names),
and what a Redis that went back in time costs it (its entries' stamps match again), answered by
moving the global ORM epoch past every value given out before. :mod:`cachewise.recovery` sits
below the ORM and runs both through the hooks it offers.
"""

from __future__ import annotations

import logging

from cachewise import recovery
from cachewise.exceptions import CacheServerError, CacheUnavailableError
from cachewise.keys import make_key
from cachewise.store.choice import get_store

from . import generations
from .invalidation import counter_ttl, orm_alias

__all__ = ["check_incarnation"]

logger = logging.getLogger("cachewise.recovery")


def _apply(alias: str, keys: list[str], ttl: float | None) -> None:
    generations.bump(alias, keys, counter_ttl())


def check_incarnation() -> bool:
    """Move the global epoch if the ORM's Redis is a new server process; False: ask again later."""
    alias = orm_alias()
    try:
        moved = get_store(alias).check_incarnation(
            make_key("cachewise", "incarnation"), generations.GLOBAL_EPOCH, counter_ttl()
        )
    except CacheUnavailableError:  # the cache did not answer: check again at the next read
        return False
    except CacheServerError as exc:  # reported, and checked again (this check must not fail a read)
        logger.error("cachewise could not check the Redis of cache %r for a restart: %s", alias, exc)
        return False
    if moved is None:  # not a single Redis server: no server incarnation to compare
        return True
    if moved:
        logger.warning(
            "cachewise: the Redis of cache %r is a new server process (restarted, possibly from an "
            "older snapshot, or a promoted replica); every cached ORM entry was invalidated",
            alias,
        )
    return True


recovery.on_undelivered("orm", _apply)
recovery.on_restart_check(check_incarnation)
