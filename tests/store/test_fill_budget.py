"""A fill under an entry budget (cachewise.store.fill_budget): counted, compared and stored at once."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.cache import caches

from cachewise.keys import make_key
from cachewise.store.adapter import NO_FENCE, Entry
from cachewise.store.choice import get_store
from cachewise.store.fill_budget import FillBudget
from cachewise.testing import RedisServerInfo
from tests._backends import configured

KINDS = ["cachewise", "django-redis-builtin", "locmem"]


def _fallback(key: str, limit: int, window: int = 60) -> Any:
    """The counting other stores do: add then incr, as the page cache's admit() does."""

    def admit() -> bool:
        cache = caches["default"]
        cache.add(key, 0, timeout=window)
        return int(cache.incr(key)) <= limit

    return admit


def _fill(key: str, budget: FillBudget) -> bool:
    store = get_store()
    token, read = store.acquire_read(key, 5)
    assert token is not None
    assert read is not None
    fence = read.fence if read.fence != NO_FENCE else store.settle_fence(key)  # as the fill does
    now = time.time()
    return store.fill(key, Entry(key, now, now + 60, 0.0), 60, token=token, fence=fence, budget=budget)


@pytest.mark.parametrize("kind", KINDS)
def test_fills_beyond_the_budget_are_refused_and_store_nothing(
    kind: str, redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    with configured(kind, redis_server, cachewise_caches):
        counter = make_key("budget", kind)
        outcomes = []
        for i in range(5):
            budget = FillBudget(counter, 1, 60, 3, _fallback(counter, 3))
            outcomes.append((_fill(make_key("page", kind, i), budget), budget.refused))
        assert outcomes == [(True, False)] * 3 + [(False, True)] * 2
        store = get_store()
        stored = [isinstance(store.read(make_key("page", kind, i)).entry, Entry) for i in range(5)]
        assert stored == [True, True, True, False, False]
        # The refused fills released their lock: the next caller takes it at once.
        assert store.acquire(make_key("page", kind, 4), 5) is not None


def test_the_window_opens_with_its_first_count_and_expires(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any], redis_client: Any
) -> None:
    counter = make_key("budget", "window")
    assert _fill(make_key("page", "w1"), FillBudget(counter, 2, 1, 5, _fallback(counter, 5)))
    full = caches["default"].make_and_validate_key(counter)
    assert int(redis_client.get(full)) == 2
    assert 0 < redis_client.pttl(full) <= 1000


def test_an_invalidated_fill_is_not_counted(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any], redis_client: Any
) -> None:
    store = get_store()
    key, counter = make_key("page", "inv"), make_key("budget", "inv")
    token, read = store.acquire_read(key, 5)
    assert token is not None
    assert read is not None
    store.invalidate(key)  # a write while the page rendered
    now = time.time()
    budget = FillBudget(counter, 1, 60, 5, _fallback(counter, 5))
    assert not store.fill(
        key, Entry("old", now, now + 60, 0.0), 60, token=token, fence=read.fence, budget=budget
    )
    assert not budget.refused
    assert redis_client.get(caches["default"].make_and_validate_key(counter)) is None
