"""django-redis 7.0's cache methods on cachewise: semantics, key prefixing, failure policy."""

from __future__ import annotations

import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from redis.exceptions import LockNotOwnedError

from cachewise import get_redis_connection
from cachewise.backends.redis import RedisCache
from cachewise.embedded import free_port
from cachewise.exceptions import CacheUnavailableError
from cachewise.testing import RedisServerInfo, delete_prefixed

from .test_cluster import redis_cluster  # noqa: F401  (the 3-master cluster fixture)


def build(location: str, prefix: str | None = None, **options: Any) -> RedisCache:
    prefix = prefix or f"api{uuid.uuid4().hex[:8]}"
    return RedisCache(location, {"KEY_PREFIX": prefix, "OPTIONS": {"alias": f"a-{prefix}", **options}})


@pytest.fixture
def cache(redis_server: RedisServerInfo) -> Iterator[RedisCache]:
    backend = build(redis_server.url)
    yield backend
    delete_prefixed(redis_server.url, backend.key_prefix)


def test_delete_pattern_and_keys_stay_inside_the_prefix_even_when_it_is_a_glob(
    redis_server: RedisServerInfo,
) -> None:
    star = build(redis_server.url, prefix="*")
    other = build(redis_server.url, prefix=f"o{uuid.uuid4().hex[:6]}")
    star.set("foo-a", 1)
    star.set("foo-b", 2)
    other.set("foo-a", 3)
    assert sorted(star.keys("foo*")) == ["foo-a", "foo-b"]
    assert sorted(star.iter_keys("foo*", itersize=1)) == ["foo-a", "foo-b"]
    assert star.delete_pattern("foo-*") == 2
    assert star.keys("*") == []
    assert other.get("foo-a") == 3
    delete_prefixed(redis_server.url, other.key_prefix)


def test_ttl_pttl_expire_persist(cache: RedisCache) -> None:
    cache.set("k", "v", timeout=10)
    assert 9 <= (cache.ttl("k") or 0) <= 10
    assert 9000 < (cache.pttl("k") or 0) <= 10000
    assert cache.persist("k") is True
    assert cache.ttl("k") is None
    assert cache.ttl("missing") == 0
    assert cache.expire("k", 20) is True
    assert 19 <= (cache.ttl("k") or 0) <= 20
    assert cache.pexpire_at("k", int(time.time() * 1000) + 5000) is True
    assert (cache.pttl("k") or 0) <= 5000
    assert cache.expire("missing", 5) is False


def test_set_nx_and_xx(cache: RedisCache) -> None:
    assert cache.set("k", 1, nx=True) is True
    assert cache.set("k", 2, nx=True) is False
    assert cache.set("other", 1, xx=True) is False
    assert cache.get("other") is None
    assert cache.set("k", 3, xx=True) is True
    assert cache.get("k") == 3


def test_incr_ignore_key_check_creates_the_counter(cache: RedisCache) -> None:
    assert cache.incr("n", 5, ignore_key_check=True) == 5
    assert cache.incr("n", ignore_key_check=True) == 6
    with pytest.raises(ValueError, match="not found"):
        cache.incr("absent")


def test_incr_past_64_bits_returns_the_python_int_and_keeps_the_ttl(cache: RedisCache) -> None:
    cache.set("n", 2**63 - 1, timeout=100)
    assert cache.incr("n") == 2**63
    assert cache.incr("n", 2) == 2**63 + 2
    assert cache.get("n") == 2**63 + 2
    assert cache.decr("n", 3) == 2**63 - 1
    assert (cache.ttl("n") or 0) > 90


def test_wide_increments_from_threads_are_never_lost(cache: RedisCache) -> None:
    cache.set("n", 2**63 - 1, timeout=100)

    def worker() -> None:
        for _ in range(20):
            cache.incr("n")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("n") == 2**63 - 1 + 80


def test_delete_many_returns_the_count(cache: RedisCache) -> None:
    cache.set_many({"a": 1, "b": 2})
    assert cache.delete_many(["a", "b", "c"]) == 2
    assert cache.delete_many([]) == 0


def test_lock_release_is_token_safe(cache: RedisCache) -> None:
    first = cache.lock("job", timeout=0.2)
    assert first.acquire(blocking=False)
    time.sleep(0.3)  # the lease runs out
    second = cache.lock("job", timeout=5)
    assert second.acquire(blocking=False)
    with pytest.raises(LockNotOwnedError):
        first.release()  # must not free the lock the second holder took
    assert cache.has_key("job")
    second.release()
    assert not cache.has_key("job")


def test_lock_auto_renewal_outlives_its_timeout(cache: RedisCache) -> None:
    with cache.lock("job", timeout=0.3, auto_renewal=True) as held:
        time.sleep(0.8)
        assert held.owned()
        assert not cache.lock("job").acquire(blocking=False)
    assert not cache.has_key("job")


def test_lock_excludes_threads(cache: RedisCache) -> None:
    inside, overlaps = [0], []

    def worker() -> None:
        for _ in range(5):
            with cache.lock("mutex", timeout=5, sleep=0.01):
                inside[0] += 1
                overlaps.append(inside[0])
                time.sleep(0.005)
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == [1] * 20


def test_sets_sorted_sets_and_hashes_use_prefixed_keys_and_the_value_format(cache: RedisCache) -> None:
    assert cache.sadd("s", 1, "two", (3,)) == 3
    assert cache.smembers("s") == {1, "two", (3,)}
    assert cache.sismember("s", "two") is True
    assert cache.srem("s", "two") == 1
    cache.sadd("t", 1)
    assert cache.sinter("s", "t") == {1}
    assert cache.zadd("z", {"a": 1.0, "b": 2.0}) == 2
    assert cache.zrange("z", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.0)]
    assert cache.zpopmax("z") == ("b", 2.0)
    assert cache.hset("h", "f", {"x": 1}) == 1
    assert cache.hkeys("h") == ["f"]
    assert cache.hexists("h", "f") is True
    raw = cache.get_client()
    assert raw.type(cache.make_key("s")) == b"set"
    assert raw.type(cache.make_key("h")) == b"hash"


def test_a_forged_set_member_is_never_decoded(redis_server: RedisServerInfo) -> None:
    signed = build(redis_server.url, signing_key="k" * 32)
    signed.sadd("s", "good")
    signed.get_client().sadd(signed.make_key("s"), b"\x80\x05forged-pickle")
    assert signed.smembers("s") == {"good"}
    delete_prefixed(redis_server.url, signed.key_prefix)


def test_get_redis_connection_and_cache_client(cachewise_caches: dict[str, Any]) -> None:
    from django.core.cache import caches

    cache = cast(RedisCache, caches["default"])
    cache.set("k", 1)
    connection = get_redis_connection("default")
    assert isinstance(connection, redis.Redis)
    assert connection.get(cache.client.make_key("k")) == b"1"
    assert cache.client.get_client(True) is connection


def test_outages_follow_the_failure_policy() -> None:
    dead = build(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    assert dead.keys("*") == []
    assert dead.ttl("k") == 0
    assert dead.smembers("s") == set()
    assert dead.delete_pattern("*") == 0
    with pytest.raises(CacheUnavailableError):
        dead.lock("job").acquire(blocking=False)
    with pytest.raises(CacheUnavailableError):
        dead.incr("n", ignore_key_check=True)


def django_redis_cache(url: str, prefix: str) -> Any:
    from django_redis.cache import RedisCache as DjangoRedisCache

    return DjangoRedisCache(url, {"KEY_PREFIX": prefix})


def test_locks_exclude_django_redis_locks_during_a_rolling_deploy(cache: RedisCache) -> None:
    old = django_redis_cache(cache.options.servers[0].url, cache.key_prefix)
    theirs = old.lock("job", timeout=5)
    assert theirs.acquire(blocking=False)
    assert not cache.lock("job").acquire(blocking=False)
    theirs.release()
    ours = cache.lock("job", timeout=5)
    assert ours.acquire(blocking=False)
    assert not old.lock("job").acquire(blocking=False)
    ours.release()


def test_what_each_backend_reads_of_the_other(cache: RedisCache) -> None:
    old = django_redis_cache(cache.options.servers[0].url, cache.key_prefix)
    old.set("pickled", {"a": 1})
    old.set("count", 41)
    assert cache.get("pickled", "miss") == "miss"  # unsigned: a miss unless a window is open
    window = build(cache.options.servers[0].url, prefix=cache.key_prefix, legacy_reads="django-redis")
    assert window.get("pickled") == {"a": 1}
    assert cache.incr("count") == 42
    assert old.get("count") == 42
    cache.set("ours", {"b": 2})
    with pytest.raises(pickle.UnpicklingError):
        old.get("ours")  # why the deploy bumps VERSION: django-redis cannot read cachewise values


def test_key_methods_cover_every_node_of_a_cluster(redis_cluster: list[Any]) -> None:  # noqa: F811
    prefix = f"cl{uuid.uuid4().hex[:8]}"
    cache = RedisCache(f"redis+cluster://127.0.0.1:{redis_cluster[0].port}/0", {"KEY_PREFIX": prefix})
    names = [f"k{i}" for i in range(60)]
    cache.set_many(dict.fromkeys(names, 1), timeout=100)
    assert sorted(cache.keys("k*")) == sorted(names)
    assert sorted(cache.iter_keys("k*", itersize=7)) == sorted(names)
    assert 90 < (cache.ttl("k1") or 0) <= 100
    with cache.lock("job", timeout=5):
        assert not cache.lock("job").acquire(blocking=False)
    assert cache.delete_pattern("k*") == 60
    assert cache.keys("*") == []


def test_a_waiter_is_woken_by_the_release_not_by_its_poll(cache: RedisCache) -> None:
    holder = cache.lock("job", timeout=10, thread_local=False)
    assert holder.acquire()
    threading.Timer(0.3, holder.release).start()
    started = time.monotonic()
    assert cache.lock("job", timeout=10, sleep=5).acquire(blocking_timeout=8)
    assert time.monotonic() - started < 2.5  # polling alone would take 5 s


def test_keys_come_back_whole_under_a_prefix_with_colons(redis_server: RedisServerInfo) -> None:
    cache = build(redis_server.url, prefix=f"shop:{uuid.uuid4().hex[:6]}")
    cache.set("user:1", 1)
    assert cache.keys("user:*") == ["user:1"]
    assert list(cache.iter_keys("user:*")) == ["user:1"]
    delete_prefixed(redis_server.url, cache.key_prefix)


def test_sscan_match_globs_the_values_whatever_the_format(redis_server: RedisServerInfo) -> None:
    signed = build(redis_server.url, signing_key="k" * 32, compressor="zlib", compress_min_bytes=0)
    signed.sadd("s", "bar1", "barbecue", "zoo", 7)
    assert signed.sscan("s", match="bar*") == {"bar1", "barbecue"}  # lengths differ: bytes would not
    assert set(signed.sscan_iter("s", match="[z]o?", count=1)) == {"zoo"}
    assert signed.sscan("s") == {"bar1", "barbecue", "zoo", 7}
    delete_prefixed(redis_server.url, signed.key_prefix)


def test_get_redis_connection_refuses_a_cache_that_is_not_redis() -> None:
    from django.test import override_settings

    locmem = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=locmem), pytest.raises(NotImplementedError):
        get_redis_connection("default")


def test_key_methods_follow_the_generation_of_clear_generation(redis_server: RedisServerInfo) -> None:
    cache = build(redis_server.url, clear="generation")
    cache.set("a", 1)
    assert cache.keys("*") == ["a"]
    cache.clear()  # a new generation: "a" is no longer this cache's
    assert cache.keys("*") == []
    cache.set("b", 2)
    assert list(cache.iter_keys("*")) == ["b"]
    assert cache.delete_pattern("*") == 1
    delete_prefixed(redis_server.url, cache.key_prefix)
