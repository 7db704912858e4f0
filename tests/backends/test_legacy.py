"""Values written by real django-redis: read correctly in an opted-in migration window, else misses.

"Correct" means what django-redis itself reads back from the same bytes; the one thing never
allowed is a different object (a HerdClient tuple, a JSON string for a pickle, ...).
"""

from __future__ import annotations

import datetime
import pickle
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import zstandard
from django_redis.cache import RedisCache as DjangoRedisCache
from django_redis.client.herd import Marker
from django_redis.compressors.base import BaseCompressor
from django_redis.exceptions import CompressorError

from cachewise.backends.redis import RedisCache
from cachewise.exceptions import ConfigurationError
from cachewise.testing import RedisServerInfo, delete_prefixed

SERIALIZERS = {
    "pickle": "django_redis.serializers.pickle.PickleSerializer",
    "json": "django_redis.serializers.json.JSONSerializer",
    "msgpack": "django_redis.serializers.msgpack.MSGPackSerializer",
}
COMPRESSORS = {
    None: "django_redis.compressors.identity.IdentityCompressor",
    "zlib": "django_redis.compressors.zlib.ZlibCompressor",
    "gzip": "django_redis.compressors.gzip.GzipCompressor",
    "lzma": "django_redis.compressors.lzma.LzmaCompressor",
    "lz4": "django_redis.compressors.lz4.Lz4Compressor",
    # django-redis's own ZStdCompressor needs pyzstd, which the pinned toolchain does not ship; this
    # one is the same class with the same zstd frames (RFC 8878), written through zstandard.
    "zstd": "tests.backends.test_legacy.ZstdLikeDjangoRedis",
}
VALUES: dict[str, Any] = {
    "dict": {"name": "café", "items": [1, 2.5, None, True]},
    "text": "short",
    "long_text": "lorem ipsum " * 200,  # above every compressor's threshold
    "float": 1.5,
    "negative_float": -2.25,
    "bool": True,
    "none": None,
    "list": ["a", "b"],
    "int": 42,
    "big_int": 2**70,
    "when": datetime.datetime(2026, 5, 1, 10, 0, tzinfo=datetime.timezone.utc),
}


class ZstdLikeDjangoRedis(BaseCompressor):  # type: ignore[misc]  # django_redis has no types
    """django_redis.compressors.zstd.ZStdCompressor with zstandard in place of pyzstd."""

    min_length = 15

    def compress(self, value: bytes) -> bytes:
        return zstandard.ZstdCompressor().compress(value) if len(value) > self.min_length else value

    def decompress(self, value: bytes) -> bytes:
        try:
            return zstandard.ZstdDecompressor().decompressobj().decompress(value)
        except zstandard.ZstdError as exc:
            raise CompressorError from exc


@pytest.fixture
def prefix(redis_server: RedisServerInfo) -> Iterator[str]:
    value = f"l{uuid.uuid4().hex[:10]}"
    yield value
    delete_prefixed(redis_server.url, value)


def django_redis(server: RedisServerInfo, prefix: str, **options: Any) -> DjangoRedisCache:
    return DjangoRedisCache(server.url, {"KEY_PREFIX": prefix, "OPTIONS": options})


def cachewise(server: RedisServerInfo, prefix: str, **options: Any) -> RedisCache:
    return RedisCache(server.url, {"KEY_PREFIX": prefix, "OPTIONS": {"alias": "legacy-tests", **options}})


MISS = object()


@pytest.mark.parametrize("compressor", list(COMPRESSORS))
@pytest.mark.parametrize("serializer", list(SERIALIZERS))
def test_django_redis_values_read_correctly_in_the_window_and_miss_outside(
    redis_server: RedisServerInfo, prefix: str, serializer: str, compressor: str | None
) -> None:
    writer = django_redis(
        redis_server, prefix, SERIALIZER=SERIALIZERS[serializer], COMPRESSOR=COMPRESSORS[compressor]
    )
    values = dict(VALUES)
    if serializer == "msgpack":  # django-redis cannot store a datetime with msgpack either
        del values["when"]
    for name, value in values.items():
        writer.set(name, value)
    expected = {name: writer.get(name) for name in values}  # what django-redis itself reads back
    window = cachewise(
        redis_server,
        prefix,
        serializer=serializer,
        legacy_reads={"serializer": SERIALIZERS[serializer], "compressor": compressor},
    )
    assert {name: window.get(name, MISS) for name in values} == expected
    assert window.get_many(list(values)) == expected

    closed = cachewise(redis_server, prefix, serializer=serializer)
    for name, value in values.items():
        got = closed.get(name, MISS)
        # Only raw ints are shared (they carry no code and counters must carry over).
        assert got is MISS or (type(value) is int and got == value), name


@pytest.mark.parametrize("declared", ["json", "msgpack"])
def test_a_window_declared_with_the_wrong_serializer_gives_misses_not_wrong_objects(
    redis_server: RedisServerInfo, prefix: str, declared: str
) -> None:
    actual = "json" if declared == "msgpack" else "msgpack"
    writer = django_redis(redis_server, prefix, SERIALIZER=SERIALIZERS[actual])
    writer.set("dict", {"a": [1, 2]})
    writer.set("text", "hello")
    reader = cachewise(redis_server, prefix, serializer=declared, legacy_reads={"serializer": declared})
    for name, value in {"dict": {"a": [1, 2]}, "text": "hello"}.items():
        got = reader.get(name, MISS)
        assert got is MISS or got == value


def test_herd_client_values_are_unwrapped_never_returned_as_the_tuple(
    redis_server: RedisServerInfo, prefix: str
) -> None:
    writer = django_redis(redis_server, prefix, CLIENT_CLASS="django_redis.client.HerdClient")
    writer.set("answer", 42)
    writer.set("article", {"title": "herded"})
    assert writer.get("article") == {"title": "herded"}
    window = cachewise(redis_server, prefix, legacy_reads="django-redis")
    assert window.get("answer") == 42
    assert window.get("article") == {"title": "herded"}
    assert window.get_many(["answer", "article"]) == {"answer": 42, "article": {"title": "herded"}}
    # Past its soft expiry, HerdClient asks one caller to recompute: a miss here.
    window.get_client().set(
        window.make_and_validate_key("stale"), pickle.dumps((Marker(), "old", int(time.time()) - 5))
    )
    assert window.get("stale", MISS) is MISS
    assert cachewise(redis_server, prefix).get("article", MISS) is MISS  # no window: a miss


def test_djangos_builtin_backend_values_in_the_window(redis_server: RedisServerInfo, prefix: str) -> None:
    from django.core.cache.backends.redis import RedisCache as DjangoRedisCacheBuiltin

    DjangoRedisCacheBuiltin(redis_server.url, {"KEY_PREFIX": prefix}).set("k", {"a": 1})
    assert cachewise(redis_server, prefix, legacy_reads="django").get("k") == {"a": 1}
    assert cachewise(redis_server, prefix).get("k", MISS) is MISS


def test_invalid_windows_are_refused_on_first_use(redis_server: RedisServerInfo) -> None:
    """Refused, never guessed (the E004 system check reports the same message at start-up)."""
    for option in ("redis-py", {"serializer": "yaml"}, {"compressor": "brotli"}, {"serialiser": "json"}, 1):
        with pytest.raises(ConfigurationError, match="legacy_reads"):
            RedisCache(redis_server.url, {"OPTIONS": {"legacy_reads": option}}).get("k")
    with pytest.raises(ConfigurationError, match="cannot be told apart"):
        RedisCache(
            redis_server.url,
            {"OPTIONS": {"serializer": "msgpack", "sign": False, "legacy_reads": {"serializer": "msgpack"}}},
        ).get("k")
