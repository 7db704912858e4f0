"""The low-level API on Redis Cluster: every multi-key script touches keys of one hash slot."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from cachewise import Counter, Namespace, get_or_compute, make_key
from cachewise.compute.api import invalidate
from cachewise.embedded import EmbeddedRedis
from cachewise.store.choice import get_store
from tests.backends.test_cluster import cluster_url, redis_cluster  # noqa: F401 - fixture


@pytest.fixture
def on_cluster(redis_cluster: list[EmbeddedRedis]) -> Iterator[None]:  # noqa: F811 - fixture use
    from django.core.cache import caches

    prefix = f"c{uuid.uuid4().hex[:10]}"
    config = {
        "default": {
            "BACKEND": "cachewise.backends.redis.RedisCache",
            "LOCATION": cluster_url(redis_cluster),
            "KEY_PREFIX": prefix,
        }
    }
    with override_settings(CACHES=config):
        assert get_store().cluster  # type: ignore[attr-defined]
        yield
        caches["default"].clear()


def test_single_flight_and_fenced_fill_on_a_cluster(on_cluster: None) -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def compute() -> str:
        with lock:
            calls.append(1)
        time.sleep(0.2)
        return "value"

    key = make_key("cluster", "herd")
    values: list[Any] = []

    def ask() -> None:
        values.append(get_or_compute(key, compute, 60))

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert values == ["value"] * 10
    assert len(calls) == 1

    slow_key = make_key("cluster", "slow")
    started = threading.Event()

    def slow() -> str:
        started.set()
        time.sleep(0.3)
        return "stale"

    filler = threading.Thread(target=lambda: get_or_compute(slow_key, slow, 60))
    filler.start()
    assert started.wait(5)
    invalidate(slow_key)
    filler.join(timeout=5)
    assert get_or_compute(slow_key, lambda: "fresh", 60) == "fresh"


@pytest.mark.django_db  # the counter flush records its batch
def test_namespace_and_counter_on_a_cluster(on_cluster: None) -> None:
    from django.core.cache import cache

    users = Namespace("users")
    cache.set(users.key(1, "card"), "card")
    assert users.get(1, "card") == "card"
    users.bump(1)
    assert users.get(1, "card") is None

    views = Counter("cluster:views", ttl=60)
    views.incr(1)
    views.incr_many({1: 2, 2: 5})
    assert views.get_many([1, 2]) == {1: 3, 2: 5}
    assert views.flush(lambda pk, delta: None) == {1: 3, 2: 5}
