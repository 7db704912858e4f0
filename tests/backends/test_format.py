"""The value format: serializers, compression, signing, format switches, and clear() scoping."""

from __future__ import annotations

import pickle
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import caches
from django.http import HttpResponse
from django.test import override_settings

from cachewise.backends.format import ValueFormat, derive_signing_key
from cachewise.backends.options import ALLOWED_OPTIONS
from cachewise.backends.redis import RedisCache
from cachewise.caches_url import DEFAULT_OPTIONS
from cachewise.exceptions import ConfigurationError, SerializationError, SignatureError
from cachewise.monitoring.metrics import metrics
from cachewise.testing import RedisServerInfo, delete_prefixed

#: Set by Detonator's unpickling: proves whether a payload was ever unpickled.
DETONATIONS: list[str] = []


def _detonate(tag: str) -> str:
    DETONATIONS.append(tag)
    return tag


class Detonator:
    """A value whose unpickling has a visible side effect."""

    def __reduce__(self) -> Any:
        return (_detonate, ("boom",))


@pytest.fixture
def prefix(redis_server: RedisServerInfo) -> Iterator[str]:
    value = f"f{uuid.uuid4().hex[:10]}"
    yield value
    delete_prefixed(redis_server.url, value)


def make(server: RedisServerInfo, prefix: str, **options: Any) -> RedisCache:
    return RedisCache(server.url, {"KEY_PREFIX": prefix, "OPTIONS": {"alias": "format-tests", **options}})


def raw_of(cache: RedisCache, key: str) -> bytes:
    stored = cache.get_client().get(cache.make_and_validate_key(key))
    assert isinstance(stored, bytes)
    return stored


def errors(alias: str = "format-tests") -> float:
    return metrics.snapshot().get(("error", alias, "-"), 0.0)


@pytest.mark.parametrize("serializer", ["pickle", "json", "msgpack"])
def test_serializers_round_trip(redis_server: RedisServerInfo, prefix: str, serializer: str) -> None:
    cache = make(redis_server, prefix, serializer=serializer)
    value = {"name": "café", "items": [1, 2.5, None, True], "nested": {"k": "v"}}
    cache.set("key", value)
    assert cache.get("key") == value
    # Signed by default: 0x20 is the signed bit, and a 32-byte MAC follows the header.
    assert raw_of(cache, "key")[0] == 0xC0 | 0x20 | {"pickle": 1, "json": 2, "msgpack": 3}[serializer]
    cache.set("n", 7)
    assert raw_of(cache, "n") == b"7"
    assert cache.incr("n") == 8


def test_pickle_round_trips_http_responses(redis_server: RedisServerInfo, prefix: str) -> None:
    cache = make(redis_server, prefix)
    response = HttpResponse("<p>hello</p>", headers={"X-Thing": "1"}, status=201)
    cache.set("page", response)
    got = cache.get("page")
    assert isinstance(got, HttpResponse)
    assert (got.content, got.status_code, got["X-Thing"]) == (b"<p>hello</p>", 201, "1")


def test_sessions_round_trip_on_the_sessions_alias(cachewise_caches: dict[str, Any]) -> None:
    with override_settings(SESSION_CACHE_ALIAS="sessions"):
        session = SessionStore()
        session["cart"] = [1, 2, 3]
        session.save()
        loaded = SessionStore(session_key=session.session_key)
        assert loaded["cart"] == [1, 2, 3]


@pytest.mark.parametrize(("compressor", "format_id"), [("zstd", 2), ("lz4", 3), ("zlib", 1)])
def test_compression_applies_above_the_threshold(
    redis_server: RedisServerInfo, prefix: str, compressor: str, format_id: int
) -> None:
    cache = make(redis_server, prefix, compressor=compressor, compress_min_bytes=2048)
    small, big = "x" * 100, "y" * 50_000
    cache.set("small", small)
    cache.set("big", big)
    assert (raw_of(cache, "small")[0] >> 3) & 0x3 == 0
    assert (raw_of(cache, "big")[0] >> 3) & 0x3 == format_id
    assert len(raw_of(cache, "big")) < 5_000
    assert cache.get("small") == small
    assert cache.get("big") == big


def test_compressor_switch_needs_no_flush(redis_server: RedisServerInfo, prefix: str) -> None:
    writers = {
        "plain": make(redis_server, prefix, serializer="json"),
        "zstd": make(redis_server, prefix, serializer="json", compressor="zstd", compress_min_bytes=10),
        "lz4": make(redis_server, prefix, serializer="json", compressor="lz4", compress_min_bytes=10),
        "zlib": make(redis_server, prefix, serializer="json", compressor="zlib", compress_min_bytes=10),
    }
    value = {"list": [1, 2, 3], "text": "z" * 200}
    for name, writer in writers.items():
        writer.set(name, value)
    reader = make(redis_server, prefix, serializer="json")  # no compressor configured: reads them all
    assert reader.get_many(list(writers)) == dict.fromkeys(writers, value)


def test_a_serializer_switch_makes_old_values_misses(redis_server: RedisServerInfo, prefix: str) -> None:
    """The configured serializer is the only decoder: a pickle written before is never unpickled."""
    make(redis_server, prefix, serializer="pickle").set("old", {"a": 1})
    make(redis_server, prefix, serializer="msgpack").set("other", {"a": 1})
    reader = make(redis_server, prefix, serializer="json")
    before = errors()
    assert reader.get_many(["old", "other"]) == {}
    assert reader.get("old", "miss") == "miss"
    assert errors() - before == 3
    reader.set("old", {"a": 2})  # recomputed and rewritten in the new format
    assert reader.get("old") == {"a": 2}


def test_values_written_by_djangos_builtin_backend_are_misses_by_default(
    redis_server: RedisServerInfo, prefix: str
) -> None:
    from django.core.cache.backends.redis import RedisCache as DjangoRedisCache

    django_cache = DjangoRedisCache(redis_server.url, {"KEY_PREFIX": prefix})
    django_cache.set("legacy", {"a": 1})
    django_cache.set("count", 5)
    cache = make(redis_server, prefix)
    assert cache.get("legacy", "miss") == "miss"
    assert cache.incr("count") == 6  # raw ints are the shared format: counters carry over
    migrating = make(redis_server, prefix, legacy_reads="django")
    assert migrating.get("legacy") == {"a": 1}


def test_signed_values_round_trip_and_carry_a_mac(redis_server: RedisServerInfo, prefix: str) -> None:
    cache = make(redis_server, prefix, signing_key="secret")
    cache.set("key", {"a": 1})
    raw = raw_of(cache, "key")
    assert raw[0] & 0x20
    assert len(raw) == 1 + 32 + len(pickle.dumps({"a": 1}, pickle.HIGHEST_PROTOCOL))
    assert cache.get("key") == {"a": 1}


def test_sign_true_uses_secret_key(redis_server: RedisServerInfo, prefix: str) -> None:
    cache = make(redis_server, prefix, sign=True)
    cache.set("key", "value")
    assert cache.get("key") == "value"
    other_key = make(redis_server, prefix, signing_key="not-the-secret-key")
    assert other_key.get("key", "miss") == "miss"


def _forge(cache: RedisCache, key: str, payload: bytes) -> None:
    cache.get_client().set(cache.make_and_validate_key(key), payload)


def test_tampered_and_unsigned_payloads_are_misses_and_never_unpickled(
    redis_server: RedisServerInfo, prefix: str
) -> None:
    cache = make(redis_server, prefix, signing_key="secret")
    bomb = pickle.dumps(Detonator(), pickle.HIGHEST_PROTOCOL)
    cache.set("good", "value")
    good = raw_of(cache, "good")
    header = bytes((good[0],))
    forged = {
        "legacy": bomb,  # a plain pickle, as Django's backend would write
        "unsigned": bytes((0xC1,)) + bomb,  # a cachewise header without the signed bit
        "bad_mac": header + b"\x00" * 32 + bomb,  # signed bit, wrong MAC
        "spliced": good[:33] + bomb,  # a valid MAC from another value
        "truncated": header + b"\x01\x02",
        "garbage": b"\xff\xfe",
        "empty": b"",
    }
    for key, payload in forged.items():
        _forge(cache, key, payload)
    DETONATIONS.clear()
    before = errors()
    for key in forged:
        assert cache.get(key, "miss") == "miss", key
    assert cache.get_many(list(forged)) == {}
    assert DETONATIONS == []
    assert errors() - before == 2 * len(forged)
    assert cache.get("good") == "value"


def test_unsigned_reader_would_have_unpickled_the_bomb(redis_server: RedisServerInfo, prefix: str) -> None:
    """The control for the test above: with signing explicitly off, the same payload does run code."""
    cache = make(redis_server, prefix, sign=False)
    _forge(cache, "unsigned", bytes((0xC1,)) + pickle.dumps(Detonator()))
    DETONATIONS.clear()
    assert cache.get("unsigned") == "boom"
    assert DETONATIONS == ["boom"]


def test_decode_hook_raises_typed_errors() -> None:
    signed = ValueFormat(signing_key=derive_signing_key("k"))
    with pytest.raises(SignatureError):
        signed.decode(bytes((0xC1,)) + pickle.dumps(1))
    with pytest.raises(SerializationError):
        ValueFormat().decode(b"")
    with pytest.raises(SerializationError):
        ValueFormat().decode(b"12ab")
    assert ValueFormat().decode(ValueFormat().encode([1])) == [1]  # type: ignore[arg-type]
    assert signed.decode(signed.encode([1])) == [1]  # type: ignore[arg-type]


def test_unknown_options_are_rejected(redis_server: RedisServerInfo) -> None:
    with pytest.raises(ConfigurationError, match="socket_timout"):
        RedisCache(redis_server.url, {"OPTIONS": {"socket_timout": 1}}).get("key")
    with pytest.raises(ConfigurationError, match="never retries"):
        RedisCache(redis_server.url, {"OPTIONS": {"retry_on_timeout": True}}).get("key")
    with pytest.raises(ConfigurationError, match="serializer"):
        RedisCache(redis_server.url, {"OPTIONS": {"serializer": "yaml"}}).get("key")
    with pytest.raises(ConfigurationError, match="on_read_error"):
        RedisCache(redis_server.url, {"OPTIONS": {"on_read_error": "ignore"}}).get("key")
    assert set(DEFAULT_OPTIONS) <= ALLOWED_OPTIONS


def test_clear_leaves_other_prefixes_and_the_sessions_db_intact(
    redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> None:
    default, sessions = caches["default"], caches["sessions"]
    neighbour = make(redis_server, f"{default.key_prefix}-other")
    try:
        default.set("page", "cached")
        sessions.set("session", "logged-in")
        neighbour.set("page", "theirs")
        default.clear()
        assert default.get("page") is None
        assert sessions.get("session") == "logged-in"
        assert neighbour.get("page") == "theirs"
    finally:
        neighbour.clear()


def test_flush_db_empties_only_its_own_database(disposable_redis: Any) -> None:
    cache = RedisCache(disposable_redis.url_for(0), {"KEY_PREFIX": "a", "OPTIONS": {"alias": "flush-test"}})
    other_db = RedisCache(
        disposable_redis.url_for(1), {"KEY_PREFIX": "a", "OPTIONS": {"alias": "flush-test"}}
    )
    cache.get_client().set("not-ours", "x")
    cache.set("k", 1)
    other_db.set("k", 2)
    cache.flush_db()
    assert cache.get_client().dbsize() == 0
    assert other_db.get("k") == 2


def test_corrupt_payloads_are_misses_not_exceptions(redis_server: RedisServerInfo, prefix: str) -> None:
    import asyncio

    cache = make(redis_server, prefix, sign=False)  # unsigned, pickle: the inlined hit path
    cache.set("good", [1, 2])
    _forge(cache, "corrupt", bytes((0xC1,)) + b"not a pickle")
    _forge(cache, "truncated", raw_of(cache, "good")[:-3])
    before = errors()
    assert cache.get("corrupt", "miss") == "miss"
    assert cache.get("truncated", "miss") == "miss"
    assert cache.get_many(["good", "corrupt", "truncated"]) == {"good": [1, 2]}

    async def read() -> Any:
        value = await cache.aget("corrupt", "miss")
        await cache.adisconnect()
        return value

    assert asyncio.run(read()) == "miss"
    assert errors() - before == 5
