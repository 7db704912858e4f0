"""A django-redis CACHES entry with only BACKEND changed: each OPTIONS key mapped or refused."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import pytest
import redis
from django.test import override_settings

from cachewise.backends.djredis_options import translate
from cachewise.backends.redis import RedisCache
from cachewise.checks.djredis import (
    check_django_redis_globals,
    check_herd_client,
    check_lossy_compressor,
)
from cachewise.checks.project import check_backend_configuration
from cachewise.embedded import free_port
from cachewise.exceptions import CacheUnavailableError, ConfigurationError
from cachewise.testing import RedisServerInfo, delete_prefixed

BACKEND = "cachewise.backends.redis.RedisCache"
DR = "django_redis"


def build(location: Any, **options: Any) -> RedisCache:
    prefix = f"dr{uuid.uuid4().hex[:10]}"
    return RedisCache(location, {"KEY_PREFIX": prefix, "OPTIONS": {"alias": prefix, **options}})


def test_a_typical_django_redis_entry_works_with_only_backend_changed(redis_server: RedisServerInfo) -> None:
    cache = build(
        redis_server.url,
        CLIENT_CLASS=f"{DR}.client.DefaultClient",
        SOCKET_CONNECT_TIMEOUT=0.25,
        SOCKET_TIMEOUT=0.4,
        IGNORE_EXCEPTIONS=True,
        LOG_IGNORED_EXCEPTIONS=True,
        CONNECTION_POOL_KWARGS={"max_connections": 7, "timeout": 2},
        SERIALIZER=f"{DR}.serializers.pickle.PickleSerializer",
        COMPRESSOR=f"{DR}.compressors.zlib.ZlibCompressor",
    )
    cache.set("k", {"a": 1})
    assert cache.get("k") == {"a": 1}
    server = cache.options.servers[0]
    assert (server.max_connections, server.pool_timeout) == (7, 2)
    assert server.kwargs["socket_timeout"] == 0.4
    assert server.kwargs["socket_connect_timeout"] == 0.25
    assert cache.options.format.compressor is not None
    delete_prefixed(redis_server.url, cache.key_prefix)


def test_shard_client_is_refused_never_read_as_replicas(redis_server: RedisServerInfo) -> None:
    locations = [redis_server.url_for(9), redis_server.url_for(10)]
    with pytest.raises(ConfigurationError, match="does not shard keys"):
        build(locations, CLIENT_CLASS=f"{DR}.client.ShardClient").get("k")
    caches = {
        "default": {
            "BACKEND": BACKEND,
            "LOCATION": locations,
            "OPTIONS": {"CLIENT_CLASS": f"{DR}.client.ShardClient"},
        }
    }
    with override_settings(CACHES=caches):
        assert [m.id for m in check_backend_configuration()] == ["cachewise.E004"]


def test_ignore_exceptions_false_raises_on_an_outage_as_django_redis_does() -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    strict = build(dead, IGNORE_EXCEPTIONS=False, SOCKET_CONNECT_TIMEOUT=0.2)
    with pytest.raises(CacheUnavailableError):
        strict.get("k")
    lenient = build(dead, IGNORE_EXCEPTIONS=True, SOCKET_CONNECT_TIMEOUT=0.2)
    assert lenient.get("k", "default") == "default"


def test_djangos_documented_options_work(redis_server: RedisServerInfo) -> None:
    cache = build(
        redis_server.url.rsplit("/", 1)[0],
        db="10",
        pool_class="redis.BlockingConnectionPool",
        parser_class="redis.connection._RESP2Parser",  # the pure-Python parser
    )
    cache.set("k", "v")
    raw = redis.Redis.from_url(redis_server.url_for(10))
    assert raw.exists(cache.make_key("k")) == 1
    assert cache.get("k") == "v"
    raw.delete(cache.make_key("k"))
    raw.close()


def test_django_redis_json_serializer_keeps_djangos_encoder(redis_server: RedisServerInfo) -> None:
    cache = build(redis_server.url, SERIALIZER=f"{DR}.serializers.json.JSONSerializer")
    when = datetime.datetime(2024, 5, 1, 12, 30)
    cache.set("k", {"when": when})
    assert cache.get("k") == {"when": when.isoformat()}
    delete_prefixed(redis_server.url, cache.key_prefix)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"CLIENT_CLASS": "myapp.Client"}, "its own client"),
        ({"SERIALIZER": "myapp.Serializer"}, "OPTIONS\\['serializer'\\]"),
        ({"COMPRESSOR": "myapp.Compressor"}, "OPTIONS\\['compressor'\\]"),
        ({"CONNECTION_POOL_CLASS": "myapp.Pool"}, "bounded, waiting pool"),
        ({"CONNECTION_POOL_KWARGS": {"frobnicate": 1}}, "does not pass to redis-py"),
        ({"REPLICA_READ_ONLY": False}, "never sends a write to a replica"),
        ({"PICKLE_VERSION": 2}, "HIGHEST_PROTOCOL"),
        ({"CONNECTION_POOL_KWARGS": {"retry_on_timeout": True}}, "never retries"),
        ({"REDIS_CLIENT_CLASS": "myapp.Redis"}, "builds redis.Redis"),
        ({"CONNECTION_FACTORY": "myapp.Factory"}, "builds its own connections"),
        ({"SOCKET_TIMEOUT": 1, "socket_timeout": 2}, "keep one"),
        ({"socket_timout": 1}, "unknown OPTIONS"),
    ],
)
def test_options_that_cannot_keep_their_meaning_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build("redis://127.0.0.1:6379/0", **options).get("k")


def test_redis_cluster_client_class_means_the_cluster_option() -> None:
    options = {
        "REDIS_CLIENT_CLASS": "redis.cluster.RedisCluster",
        "REDIS_CLIENT_KWARGS": {"max_connections": 9},
    }
    assert translate("redis://127.0.0.1:7000/0", options)[1] == {"cluster": True, "max_connections": 9}


def test_sentinels_become_one_sentinel_location() -> None:
    location, options = translate(
        ["redis://:pw@mymaster/3", "redis://:pw@mymaster/3?is_master=0"],
        {"SENTINELS": [("127.0.0.1", 26379), ("::1", 26380)], "SENTINEL_KWARGS": {"password": "s"}},
    )
    assert location == ["redis+sentinel://:pw@127.0.0.1:26379,[::1]:26380/mymaster/3"]
    assert options == {"replica_reads": True, "sentinel_password": "s"}


def test_warnings_for_what_cachewise_does_differently() -> None:
    options = {
        "CLIENT_CLASS": f"{DR}.client.HerdClient",
        "COMPRESSOR": f"{DR}.compressors.lzma.LzmaCompressor",
    }
    caches = {"default": {"BACKEND": BACKEND, "LOCATION": "redis://127.0.0.1:6379/0", "OPTIONS": options}}
    with override_settings(CACHES=caches, DJANGO_REDIS_IGNORE_EXCEPTIONS=True):
        assert [m.id for m in check_herd_client()] == ["cachewise.W051"]
        assert [m.id for m in check_lossy_compressor()] == ["cachewise.W052"]
        assert [m.id for m in check_django_redis_globals()] == ["cachewise.W050"]
        assert check_backend_configuration() == []
    assert translate("redis://h/0", options)[1] == {"compressor": "zlib"}
