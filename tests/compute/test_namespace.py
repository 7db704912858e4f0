"""Namespace: versioned keys, atomic bumps, counters that never restart into old versions."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.core.cache import cache

from cachewise import Namespace
from cachewise.store.choice import get_store


def test_key_carries_the_current_version(backend: str) -> None:
    category = Namespace("category")
    version = category.version(7)
    assert category.key(7, "articles", 2) == f"category:v{version}:7:articles:2"
    assert category.version(7) == version, "reading must not change the version"


def test_bump_makes_every_old_key_unreachable(backend: str) -> None:
    category = Namespace("category")
    old_key = category.key(7, "articles")
    cache.set(old_key, ["old"])
    other_scope_key = category.key(8, "articles")
    cache.set(other_scope_key, ["other"])

    new_version = category.bump(7)

    assert new_version > int(old_key.split(":")[1][1:])
    assert category.key(7, "articles") != old_key
    assert cache.get(category.key(7, "articles")) is None
    assert category.get(7, "articles") is None
    assert category.get(8, "articles") == ["other"], "bumping one scope leaves the others alone"


def test_get_reads_the_value_under_the_current_version(backend: str) -> None:
    users = Namespace("users")
    cache.set(users.key("u1", "profile"), {"name": "Ada"})
    assert users.get("u1", "profile") == {"name": "Ada"}
    cache.set(users.key("u1", "none"), None)
    assert users.get("u1", "none", default="absent") is None, "None is a value, not a miss"
    assert users.get("u1", "missing", default="absent") == "absent"


def test_concurrent_bumps_are_atomic(backend: str) -> None:
    tags = Namespace("tags")
    start = tags.version("t")
    results: list[int] = []
    lock = threading.Lock()

    def bump_many() -> None:
        mine = [tags.bump("t") for _ in range(25)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=bump_many) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 200
    assert len(set(results)) == 200, "two bumps returned the same version"
    assert min(results) > start
    assert tags.version("t") == max(results)


def test_evicted_counter_never_restarts_at_an_old_version(backend: str) -> None:
    article = Namespace("article")
    seen = [article.version(1)] + [article.bump(1) for _ in range(5)]
    stale_key = article.key(1, "body")
    cache.set(stale_key, "stale body")

    cache.delete("article:v0:1")  # what eviction or a Redis restart does to the counter

    restarted = article.version(1)
    assert restarted > max(seen)
    assert article.key(1, "body") != stale_key
    assert article.get(1, "body") is None
    later = [article.bump(1) for _ in range(5)]
    assert min(later) > max(seen), "bumps after a restart must not walk into old versions"


def test_redis_get_is_one_round_trip(cachewise_caches: dict[str, Any]) -> None:
    users = Namespace("users")
    cache.set(users.key(5, "card"), "card-5")
    client = get_store().client  # type: ignore[attr-defined]
    calls: list[tuple[Any, ...]] = []
    real = client.execute_command

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[:1])
        return real(*args, **kwargs)

    client.execute_command = spy
    try:
        assert users.get(5, "card") == "card-5"
    finally:
        del client.execute_command
    assert calls == [("EVALSHA",)]


def test_version_counter_readable_by_plain_cache_get(cachewise_caches: dict[str, Any]) -> None:
    version = Namespace("shop").version("eu")
    assert cache.get("shop:v0:eu") == version


def test_long_keys_still_read_in_one_call(backend: str) -> None:
    search = Namespace("search")
    long_part = "x" * 300
    cache.set(search.key("q", long_part), "hit")
    assert search.get("q", long_part) == "hit"
    search.bump("q")
    assert search.get("q", long_part) is None


def test_namespace_name_is_validated() -> None:
    with pytest.raises(ValueError, match="namespace"):
        Namespace("bad name")


def test_get_or_compute_under_a_namespace_is_fenced_by_the_version(backend: str) -> None:
    category = Namespace("category")
    assert category.get_or_compute(3, "top", compute=lambda: ["a"], ttl=60) == ["a"]
    assert category.get_or_compute(3, "top", compute=lambda: ["b"], ttl=60) == ["a"]

    started, release = threading.Event(), threading.Event()
    results: list[Any] = []

    def slow() -> list[str]:
        started.set()
        release.wait(5)
        return ["read before the write"]

    category.bump(3)
    filler = threading.Thread(
        target=lambda: results.append(category.get_or_compute(3, "top", compute=slow, ttl=60))
    )
    filler.start()
    assert started.wait(5)
    category.bump(3)  # the write lands while the fill runs
    release.set()
    filler.join(5)
    assert results == [["read before the write"]]
    assert category.get_or_compute(3, "top", compute=lambda: ["fresh"], ttl=60) == ["fresh"]
