"""The Django cache contract, run against cachewise's RedisCache, Django's RedisCache and LocMem.

Every test in ``TestContract`` runs on all three backends, so "same semantics as Django's
backends" is checked, not claimed. Where cachewise deliberately differs, the difference has its
own test below the suite (and a line in docs/backend.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache.backends.base import BaseCache, CacheKeyWarning
from django.utils.module_loading import import_string

from cachewise.backends.redis import RedisCache
from cachewise.exceptions import CacheServerError
from cachewise.testing import RedisServerInfo, delete_prefixed

BACKENDS = {
    "cachewise": "cachewise.backends.redis.RedisCache",
    "django-redis-builtin": "django.core.cache.backends.redis.RedisCache",
    "locmem": "django.core.cache.backends.locmem.LocMemCache",
}
#: Django's built-in RedisCache clears with FLUSHDB: give it a database of its own.
BUILTIN_DB = 11


def build_cache(kind: str, server: RedisServerInfo, prefix: str, **options: Any) -> BaseCache:
    """A fresh backend instance of ``kind`` on the test server under ``prefix``."""
    params: dict[str, Any] = {"KEY_PREFIX": prefix, "TIMEOUT": 300, "OPTIONS": options}
    if kind == "locmem":
        location = prefix
    elif kind == "cachewise":
        location = server.url
    else:
        location = server.url_for(BUILTIN_DB)
    backend: BaseCache = import_string(BACKENDS[kind])(location, params)
    return backend


@pytest.fixture(params=sorted(BACKENDS))
def cache(request: pytest.FixtureRequest, redis_server: RedisServerInfo) -> Iterator[BaseCache]:
    kind = request.param
    prefix = f"c{uuid.uuid4().hex[:10]}"
    backend = build_cache(kind, redis_server, prefix)
    try:
        yield backend
    finally:
        backend.close()
        if kind == "cachewise":
            asyncio.run(_disconnect(backend))
            delete_prefixed(redis_server.url, prefix)
        elif kind != "locmem":
            delete_prefixed(redis_server.url_for(BUILTIN_DB), prefix)


async def _disconnect(backend: Any) -> None:
    await backend.adisconnect()


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


class TestContract:
    def test_get_missing_returns_default(self, cache: BaseCache) -> None:
        assert cache.get("missing") is None
        assert cache.get("missing", "fallback") == "fallback"

    @pytest.mark.parametrize(
        "value",
        ["text", b"\x00bytes", 3.5, [1, "two"], {"a": {"b": [1]}}, True, False, 2**70, -5, 0, ("t", 1)],
        ids=repr,
    )
    def test_set_then_get_round_trips(self, cache: BaseCache, value: Any) -> None:
        cache.set("key", value)
        got = cache.get("key")
        assert got == value
        assert type(got) is type(value)

    def test_none_is_a_cacheable_value(self, cache: BaseCache) -> None:
        cache.set("none", None)
        assert cache.get("none", "default") is None
        assert cache.has_key("none")

    def test_add_does_not_overwrite(self, cache: BaseCache) -> None:
        assert cache.add("key", "first") is True
        assert cache.add("key", "second") is False
        assert cache.get("key") == "first"

    def test_add_with_zero_timeout_reports_added_but_stores_nothing(self, cache: BaseCache) -> None:
        assert cache.add("key", "value", timeout=0) is True
        assert cache.get("key") is None

    def test_set_with_zero_or_negative_timeout_deletes(self, cache: BaseCache) -> None:
        cache.set("key", "value")
        cache.set("key", "other", timeout=0)
        assert cache.get("key") is None
        cache.set("key", "value")
        cache.set("key", "other", timeout=-1)
        assert cache.get("key") is None

    def test_timeout_expires_value(self, cache: BaseCache) -> None:
        cache.set("short", "value", timeout=1)
        cache.set("long", "value", timeout=None)
        assert cache.get("short") == "value"
        time.sleep(1.1)
        assert cache.get("short") is None
        assert cache.get("long") == "value"

    def test_touch(self, cache: BaseCache) -> None:
        cache.set("key", "value", timeout=1)
        assert cache.touch("key", timeout=30) is True
        assert cache.touch("missing") is False
        time.sleep(1.1)
        assert cache.get("key") == "value"
        assert cache.touch("key", timeout=0) is True
        assert cache.get("key") is None

    def test_delete_reports_whether_it_deleted(self, cache: BaseCache) -> None:
        cache.set("key", "value")
        assert cache.delete("key") is True
        assert cache.delete("key") is False
        assert cache.get("key") is None

    def test_get_many_returns_only_hits(self, cache: BaseCache) -> None:
        cache.set_many({"a": 1, "b": "two", "n": None})
        assert cache.get_many(["a", "b", "n", "missing"]) == {"a": 1, "b": "two", "n": None}
        assert cache.get_many([]) == {}

    def test_set_many_returns_no_failed_keys_and_honours_timeout(self, cache: BaseCache) -> None:
        assert cache.set_many({"a": 1, "b": 2}, timeout=1) == []
        assert cache.set_many({}) == []
        time.sleep(1.1)
        assert cache.get_many(["a", "b"]) == {}

    def test_delete_many(self, cache: BaseCache) -> None:
        cache.set_many({"a": 1, "b": 2, "c": 3})
        cache.delete_many(["a", "b", "missing"])
        cache.delete_many([])
        assert cache.get_many(["a", "b", "c"]) == {"c": 3}

    def test_has_key_and_contains(self, cache: BaseCache) -> None:
        cache.set("key", "value")
        assert cache.has_key("key")
        assert "key" in cache
        assert not cache.has_key("missing")

    def test_incr_and_decr(self, cache: BaseCache) -> None:
        cache.set("n", 10)
        assert cache.incr("n") == 11
        assert cache.incr("n", 5) == 16
        assert cache.decr("n") == 15
        assert cache.decr("n", 20) == -5
        assert cache.get("n") == -5

    def test_incr_missing_key_raises_value_error(self, cache: BaseCache) -> None:
        with pytest.raises(ValueError, match="not found"):
            cache.incr("missing")
        with pytest.raises(ValueError, match="not found"):
            cache.decr("missing")
        assert cache.get("missing") is None

    def test_get_or_set(self, cache: BaseCache) -> None:
        calls: list[int] = []

        def compute() -> str:
            calls.append(1)
            return "computed"

        assert cache.get_or_set("key", compute) == "computed"
        assert cache.get_or_set("key", compute) == "computed"
        assert calls == [1]
        assert cache.get_or_set("plain", "value") == "value"
        assert cache.get_or_set("zero", "value", timeout=0) == "value"
        assert cache.get("zero") is None

    def test_versions_are_separate_keys(self, cache: BaseCache) -> None:
        cache.set("key", "v1")
        cache.set("key", "v2", version=2)
        assert cache.get("key") == "v1"
        assert cache.get("key", version=2) == "v2"
        assert cache.get_many(["key"], version=2) == {"key": "v2"}

    def test_incr_version_moves_the_value(self, cache: BaseCache) -> None:
        cache.set("key", "value")
        assert cache.incr_version("key") == 2
        assert cache.get("key") is None
        assert cache.get("key", version=2) == "value"
        assert cache.decr_version("key", version=2) == 1
        assert cache.get("key") == "value"
        with pytest.raises(ValueError, match="not found"):
            cache.incr_version("missing")

    def test_clear_removes_this_caches_keys(self, cache: BaseCache) -> None:
        cache.set_many({"a": 1, "b": 2})
        cache.set("c", 3, version=7)
        cache.clear()
        assert cache.get_many(["a", "b"]) == {}
        assert cache.get("c", version=7) is None

    def test_unpicklable_value_raises_and_stores_nothing(self, cache: BaseCache) -> None:
        with pytest.raises((TypeError, Exception)):
            cache.set("key", Unpicklable())
        assert cache.get("key") is None

    @pytest.mark.parametrize(
        "bad_key", ["has space", "tab\there", "x" * 260], ids=["space", "control", "long"]
    )
    def test_unportable_keys_warn_like_django(self, cache: BaseCache, bad_key: str) -> None:
        with pytest.warns(CacheKeyWarning):
            cache.set(bad_key, 1)
        with pytest.warns(CacheKeyWarning):
            cache.get(bad_key)
        with pytest.warns(CacheKeyWarning):
            assert cache.get_many(["fine", bad_key]) == {bad_key: 1}

    def test_get_many_accepts_any_iterable_of_keys(self, cache: BaseCache) -> None:
        cache.set_many({"a": 1, "b": 2})
        assert cache.get_many(key for key in ("a", "b", "c")) == {"a": 1, "b": 2}
        assert cache.get_many(("a",)) == {"a": 1}

    def test_close_is_harmless(self, cache: BaseCache) -> None:
        cache.set("key", "value")
        cache.close()
        assert cache.get("key") == "value"

    def test_async_api(self, cache: BaseCache) -> None:
        async def scenario() -> None:
            await cache.aset("key", {"v": 1})
            assert await cache.aget("key") == {"v": 1}
            assert await cache.aadd("key", "other") is False
            assert await cache.ahas_key("key")
            await cache.aset_many({"a": 1, "b": 2})
            assert await cache.aget_many(["a", "b", "missing"]) == {"a": 1, "b": 2}
            assert await cache.aincr("a", 4) == 5
            assert await cache.adecr("a") == 4
            assert await cache.atouch("a", 60) is True
            assert await cache.aget_or_set("c", lambda: "computed") == "computed"
            await cache.adelete_many(["a", "b"])
            assert await cache.adelete("key") is True
            assert await cache.aget_many(["a", "b", "key"]) == {}
            await cache.aclear()
            assert await cache.aget("c") is None
            await cache.aclose()
            if hasattr(cache, "adisconnect"):
                await cache.adisconnect()

        asyncio.run(scenario())


# -- documented differences ------------------------------------------------------------------------


@pytest.fixture
def ours(redis_server: RedisServerInfo) -> Iterator[Any]:
    prefix = f"c{uuid.uuid4().hex[:10]}"
    backend = build_cache("cachewise", redis_server, prefix)
    yield backend
    delete_prefixed(redis_server.url, prefix)


@pytest.fixture
def builtin(redis_server: RedisServerInfo) -> Iterator[Any]:
    prefix = f"c{uuid.uuid4().hex[:10]}"
    yield build_cache("django-redis-builtin", redis_server, prefix)
    delete_prefixed(redis_server.url_for(BUILTIN_DB), prefix)


def test_touch_none_on_a_persistent_key_is_true_like_locmem_unlike_builtin(ours: Any, builtin: Any) -> None:
    locmem = build_cache("locmem", RedisServerInfo("", 0, 0, ""), uuid.uuid4().hex)
    for cache in (ours, builtin, locmem):
        cache.set("key", "value", timeout=None)
    assert ours.touch("key", None) is True
    assert locmem.touch("key", None) is True
    assert builtin.touch("key", None) is False  # PERSIST answers 0 when there was no TTL


def test_sub_second_timeout_is_kept_not_rounded_to_delete(ours: Any, builtin: Any) -> None:
    ours.set("key", "value", timeout=0.5)
    builtin.set("key", "value", timeout=0.5)
    assert ours.get("key") == "value"  # PX 500, like LocMem's float expiry
    assert builtin.get("key") is None  # int(0.5) == 0: deleted at once
    time.sleep(0.6)
    assert ours.get("key") is None


def test_incr_on_a_non_integer_raises_cache_server_error(ours: Any) -> None:
    ours.set("text", "abc")
    with pytest.raises(CacheServerError, match="not an integer"):
        ours.incr("text")


def _command_calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def _sent(client: redis.Redis, action: Any) -> dict[str, int]:
    """The commands the server executed while ``action`` ran (minus the INFO that measured it)."""
    before = _command_calls(client)
    action()
    after = _command_calls(client)
    delta = {name: calls - before.get(name, 0) for name, calls in after.items()}
    delta["info"] -= 1
    return {name: calls for name, calls in delta.items() if calls}


def test_incr_is_one_atomic_round_trip(ours: Any) -> None:
    ours.set("n", 0)
    ours.incr("n")  # the first call loads the script
    client = ours.get_client()
    # EXISTS and INCRBY run inside the script, on the server, atomically.
    assert _sent(client, lambda: ours.incr("n")) == {"evalsha": 1, "exists": 1, "incrby": 1}
    assert ours.get("n") == 2


def test_ints_are_stored_raw_so_redis_can_increment_them(ours: Any, builtin: Any) -> None:
    for cache in (ours, builtin):
        cache.set("n", 41)
        client = cache.get_client() if cache is ours else cache._cache.get_client(write=True)
        assert client.get(cache.make_and_validate_key("n")) == b"41"
        client.incr(cache.make_and_validate_key("n"))
        assert cache.get("n") == 42
    ours.set("flag", True)
    assert ours.get("flag") is True  # bool is not stored as an int


def test_clear_leaves_other_prefixes_unlike_builtin_flushdb(ours: Any, redis_server: RedisServerInfo) -> None:
    neighbour = build_cache("cachewise", redis_server, f"n{uuid.uuid4().hex[:10]}")
    tricky = build_cache("cachewise", redis_server, ours.key_prefix + "x")  # shares a string prefix
    try:
        ours.set("a", 1)
        neighbour.set("a", 2)
        tricky.set("a", 3)
        ours.clear()
        assert ours.get("a") is None
        assert neighbour.get("a") == 2
        assert tricky.get("a") == 3
    finally:
        neighbour.clear()
        tricky.clear()


def test_clear_escapes_glob_characters_in_the_prefix(redis_server: RedisServerInfo) -> None:
    token = uuid.uuid4().hex[:8]
    starry = build_cache("cachewise", redis_server, f"s{token}*")
    plain = build_cache("cachewise", redis_server, f"s{token}abc")
    plain.set("a", 1)
    starry.set("a", 2)
    starry.clear()
    assert plain.get("a") == 1
    assert starry.get("a") is None
    plain.clear()


def test_clear_works_in_batches_over_many_keys(ours: Any) -> None:
    ours.set_many({f"k{i}": i for i in range(1200)})
    ours.clear()
    client: redis.Redis = ours.get_client()
    assert list(client.scan_iter(match=f"{ours.key_prefix}:*")) == []


def test_multi_key_operations_are_one_round_trip(ours: Any) -> None:
    client = ours.get_client()
    keys = [f"k{i}" for i in range(50)]
    assert _sent(client, lambda: ours.set_many(dict.fromkeys(keys, 1))) == {"set": 50}  # one pipeline
    assert _sent(client, lambda: ours.get_many(keys)) == {"mget": 1}
    assert _sent(client, lambda: ours.delete_many(keys)) == {"unlink": 1}  # memory freed off-thread


def test_several_servers_write_to_the_first_and_read_from_the_others(redis_server: RedisServerInfo) -> None:
    prefix = f"c{uuid.uuid4().hex[:10]}"
    primary, replica = redis_server.url_for(13), redis_server.url_for(14)
    cache = RedisCache(f"{primary};{replica}", {"KEY_PREFIX": prefix})
    try:
        cache.set("key", "value")
        assert cache.get_client(write=True).get(cache.make_and_validate_key("key")) is not None
        assert cache.get("key") is None  # read from the "replica", which has not got it
        cache.get_client(write=False).set(cache.make_and_validate_key("key"), cache.encode("replicated"))
        assert cache.get("key") == "replicated"
    finally:
        delete_prefixed(primary, prefix)
        delete_prefixed(replica, prefix)


def reversed_key(key: str, key_prefix: str, version: int) -> str:
    return f"v{version}|{key}|{key_prefix}"


def hashed_key(key: str, key_prefix: str, version: int) -> str:
    import hashlib

    return hashlib.sha1(f"{key_prefix}{version}{key}".encode()).hexdigest()


def test_clear_with_a_custom_key_function_stays_scoped(redis_server: RedisServerInfo) -> None:
    token = uuid.uuid4().hex[:8]
    mine = RedisCache(redis_server.url, {"KEY_PREFIX": f"p{token}", "KEY_FUNCTION": reversed_key})
    longer = RedisCache(redis_server.url, {"KEY_PREFIX": f"p{token}x", "KEY_FUNCTION": reversed_key})
    mine.set("a", 1)
    longer.set("a", 2)
    mine.clear()
    assert mine.get("a") is None
    assert longer.get("a") == 2
    longer.clear()


def test_clear_refuses_when_it_cannot_be_scoped(redis_server: RedisServerInfo) -> None:
    from cachewise.exceptions import ConfigurationError

    hashed = RedisCache(redis_server.url, {"KEY_PREFIX": "h", "KEY_FUNCTION": hashed_key})
    with pytest.raises(ConfigurationError, match="flush_db"):
        hashed.clear()
