"""``get_store(alias)``: the store of a cache alias, chosen once and kept until ``CACHES`` changes.

The choice sits apart from both stores so that each of them depends only on the interface
(:mod:`.adapter`): :class:`~cachewise.store.redis.RedisStore` when the backend gives access to a
raw redis-py client and ``CACHEWISE_STORE`` is not ``"generic"``, else
:class:`~cachewise.store.adapter.GenericStore`.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.core.cache import caches
from django.core.signals import setting_changed

from cachewise.conf import conf

from .adapter import GenericStore, Store, codec_of
from .raw_client import redis_client_of
from .redis import RedisStore

__all__ = ["get_store"]

_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(alias: str = "default") -> Store:
    """The store adapter of ``alias``, chosen on first use and kept until CACHES changes."""
    store = _stores.get(alias)
    if store is not None:
        return store
    with _stores_lock:
        store = _stores.get(alias)
        if store is None:
            store = _make_store(alias)
            _stores[alias] = store
        return store


def _make_store(alias: str) -> Store:
    cache = caches[alias]
    client = redis_client_of(cache) if conf.get("STORE", "auto") != "generic" else None
    if client is None:
        return GenericStore(alias)
    return RedisStore(alias, cache, client, codec_of(cache))


def _reset_stores(*, setting: str, **kwargs: Any) -> None:
    if setting in ("CACHES", "CACHEWISE_STORE"):
        with _stores_lock:
            _stores.clear()


setting_changed.connect(_reset_stores, dispatch_uid="cachewise.store.reset")
if hasattr(os, "register_at_fork"):
    # A child forked while another thread held the lock would deadlock on its first get_store().
    os.register_at_fork(after_in_child=lambda: globals().__setitem__("_stores_lock", threading.Lock()))
