"""django-redis's and Django's ``RedisCache`` OPTIONS, translated into cachewise's own keys.

A project moving from django-redis changes ``BACKEND`` and nothing else, so every OPTIONS key of
django-redis 7.0 (and of Django's built-in backend: ``db``, ``pool_class``, ``parser_class``) is
either mapped to the cachewise option that makes the same promise, or refused with a
:class:`~cachewise.exceptions.ConfigurationError` that says what to use instead. Nothing is
dropped silently, and ``LOCATION`` keeps the meaning it had: a list is a primary and its replicas,
as under django-redis's ``DefaultClient``; under ``ShardClient`` (where it means shards) the
configuration is refused rather than misread. The table is in ``docs/migrating-from-django-redis.md``.

:func:`translate` runs before the options are validated (:mod:`cachewise.backends.options`), so
the rest of the backend only ever sees cachewise's own keys.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.module_loading import import_string

from cachewise.exceptions import ConfigurationError

from .connection import PASSTHROUGH_OPTIONS

__all__ = ["COMPRESSOR_FALLBACKS", "DJANGO_OPTIONS", "DJANGO_REDIS_OPTIONS", "translate"]

_DR = "django_redis"
_CLIENTS = {f"{_DR}.client.{name}" for name in ("DefaultClient", "HerdClient", "SentinelClient")}
_CLIENTS |= {f"{_DR}.client.default.DefaultClient", f"{_DR}.client.herd.HerdClient"}
_CLIENTS |= {f"{_DR}.client.sentinel.SentinelClient"}
_SHARD_CLIENTS = {f"{_DR}.client.ShardClient", f"{_DR}.client.sharded.ShardClient"}
_SERIALIZERS = {
    f"{_DR}.serializers.pickle.PickleSerializer": "pickle",
    f"{_DR}.serializers.json.JSONSerializer": "cachewise.backends.djredis_options.DjangoJSONSerializer",
    f"{_DR}.serializers.msgpack.MSGPackSerializer": "msgpack",
}
_COMPRESSORS: dict[str, str | None] = {
    f"{_DR}.compressors.identity.IdentityCompressor": None,
    f"{_DR}.compressors.zlib.ZlibCompressor": "zlib",
    f"{_DR}.compressors.lz4.Lz4Compressor": "lz4",
    f"{_DR}.compressors.zstd.ZStdCompressor": "zstd",
    f"{_DR}.compressors.gzip.GzipCompressor": "zlib",
    f"{_DR}.compressors.lzma.LzmaCompressor": "zlib",
}
#: django-redis compressors cachewise has no header id for: values are written with zlib instead
#: (system check cachewise.W052 says so).
COMPRESSOR_FALLBACKS = frozenset(
    {f"{_DR}.compressors.gzip.GzipCompressor", f"{_DR}.compressors.lzma.LzmaCompressor"}
)
_POOLS = {
    "redis.ConnectionPool",
    "redis.BlockingConnectionPool",
    "redis.connection.ConnectionPool",
    "redis.connection.BlockingConnectionPool",
}
_SENTINEL_POOLS = {"redis.sentinel.SentinelConnectionPool"}
_FACTORIES = {f"{_DR}.pool.ConnectionFactory"}
_SENTINEL_FACTORIES = {f"{_DR}.pool.SentinelConnectionFactory"}
_REDIS_CLIENTS = {"redis.Redis", "redis.client.Redis", "redis.StrictRedis", "redis.client.StrictRedis"}
_CLUSTER_CLIENTS = {"redis.cluster.RedisCluster", "redis.RedisCluster"}
#: Upper-case django-redis keys that are cachewise's lower-case ones under another name.
_RENAMED = {
    "SOCKET_TIMEOUT": "socket_timeout",
    "SOCKET_CONNECT_TIMEOUT": "socket_connect_timeout",
    "PASSWORD": "password",
    "USERNAME": "username",
}
#: Keys of a redis-py pool or client (CONNECTION_POOL_KWARGS, REDIS_CLIENT_KWARGS) with another
#: name in cachewise; the others must be connection options cachewise passes through.
_POOL_KWARGS = {"max_connections": "max_connections", "timeout": "pool_timeout"}

DJANGO_REDIS_OPTIONS: frozenset[str] = frozenset(
    {
        "CLIENT_CLASS",
        "IGNORE_EXCEPTIONS",
        "LOG_IGNORED_EXCEPTIONS",
        "CONNECTION_POOL_KWARGS",
        "CONNECTION_POOL_CLASS",
        "CONNECTION_FACTORY",
        "REDIS_CLIENT_CLASS",
        "REDIS_CLIENT_KWARGS",
        "PARSER_CLASS",
        "SERIALIZER",
        "PICKLE_VERSION",
        "COMPRESSOR",
        "SENTINELS",
        "SENTINEL_KWARGS",
        "CLOSE_CONNECTION",
        "REPLICA_READ_ONLY",
        *_RENAMED,
    }
)
#: Django's own RedisCache OPTIONS that cachewise maps (its other keys are redis-py's, passed through).
DJANGO_OPTIONS: frozenset[str] = frozenset({"pool_class", "parser_class"})


class DjangoJSONSerializer:
    """JSON written with Django's encoder (datetimes, decimals, UUIDs as strings), as django-redis does.

    Same wire format as cachewise's ``"json"`` (header id 2), so either reads the other's values.
    """

    format_id = 2

    def dumps(self, value: Any) -> bytes:

        return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False).encode()

    def loads(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))


def _path(value: Any) -> str:
    """The dotted path of a class given as a path or as the class itself."""
    if isinstance(value, str):
        return value
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"


def _refuse(key: str, value: Any, instead: str) -> ConfigurationError:
    return ConfigurationError(f"OPTIONS[{key!r}]={value!r} is not supported by cachewise: {instead}")


def _put(out: dict[str, Any], name: str, value: Any, source: str) -> None:
    """Set cachewise option ``name``, refusing a second, different value for it."""
    if name in out and out[name] != value:
        raise ConfigurationError(
            f"OPTIONS[{source!r}] sets {name}={value!r} but OPTIONS already has "
            f"{name}={out[name]!r}: keep one"
        )
    out[name] = value


def _client_class(value: Any, out: dict[str, Any], sentinel: bool) -> None:
    path = _path(value)
    if path in _SHARD_CLIENTS:
        raise _refuse(
            "CLIENT_CLASS",
            value,
            "cachewise does not shard keys across servers on the client, and a LOCATION list means a "
            "primary and its replicas here, so this configuration would write to one server and read "
            "another. Use Redis Cluster (OPTIONS={'cluster': True} or a redis+cluster:// LOCATION), or "
            "keep django_redis.cache.RedisCache for this alias",
        )
    if path == f"{_DR}.client.SentinelClient" and not sentinel:
        raise _refuse("CLIENT_CLASS", value, "SentinelClient needs OPTIONS['SENTINELS']")
    if path not in _CLIENTS:
        raise _refuse(
            "CLIENT_CLASS",
            value,
            "cachewise's backend is its own client; remove CLIENT_CLASS, or keep django-redis for this alias",
        )


def _ignore_exceptions(value: Any, out: dict[str, Any]) -> None:
    """True: reads and writes fail open (cachewise's default); False: they raise, as in django-redis."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"OPTIONS['IGNORE_EXCEPTIONS']={value!r}: expected True or False")
    action = "miss" if value else "raise"
    _put(out, "on_read_error", action, "IGNORE_EXCEPTIONS")
    _put(out, "on_write_error", action, "IGNORE_EXCEPTIONS")


def _pool_kwargs(key: str, value: Any, out: dict[str, Any]) -> None:
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"OPTIONS[{key!r}] must be a dict, got {type(value).__name__}")
    for name, item in value.items():
        if name in _POOL_KWARGS:
            _put(out, _POOL_KWARGS[name], item, key)
        elif name in PASSTHROUGH_OPTIONS:
            _put(out, name, item, key)
        elif name == "retry_on_timeout":
            if item:
                raise _refuse(
                    key, value, "cachewise never retries a command (the circuit breaker handles outages)"
                )
        else:
            raise ConfigurationError(
                f"OPTIONS[{key!r}] has {name!r}, which cachewise does not pass to redis-py: "
                f"it takes max_connections, timeout (as pool_timeout) and {sorted(PASSTHROUGH_OPTIONS)}"
            )


def _pool_class(key: str, value: Any, sentinel: bool) -> None:
    path = _path(value)
    if path in _POOLS or (sentinel and path in _SENTINEL_POOLS):
        return  # cachewise's pool is always bounded and waits for a free connection (pool_timeout)
    raise _refuse(
        key,
        value,
        "the pool is cachewise's bounded, waiting pool (size it with max_connections, wait with "
        "pool_timeout); only redis-py's ConnectionPool or BlockingConnectionPool may be named",
    )


def _parser_class(key: str, value: Any, out: dict[str, Any]) -> None:
    try:
        parser = import_string(value) if isinstance(value, str) else value
    except ImportError as exc:
        raise ConfigurationError(f"OPTIONS[{key!r}]={value!r} cannot be imported: {exc}") from exc
    _put(out, "parser_class", parser, key)


def _serializer(value: Any, out: dict[str, Any]) -> None:
    path = _path(value)
    if path not in _SERIALIZERS:
        raise _refuse(
            "SERIALIZER",
            value,
            "use OPTIONS['serializer'] with 'pickle', 'json', 'msgpack' or a class with "
            "format_id, dumps and loads",
        )
    _put(out, "serializer", _SERIALIZERS[path], "SERIALIZER")


def _compressor(value: Any, out: dict[str, Any]) -> None:
    path = _path(value)
    if path not in _COMPRESSORS:
        raise _refuse("COMPRESSOR", value, "use OPTIONS['compressor'] with 'zlib', 'zstd', 'lz4' or None")
    _put(out, "compressor", _COMPRESSORS[path], "COMPRESSOR")


def _pickle_version(value: Any, out: dict[str, Any]) -> None:
    if value not in (-1, pickle.HIGHEST_PROTOCOL):
        raise _refuse(
            "PICKLE_VERSION",
            value,
            f"cachewise pickles with pickle.HIGHEST_PROTOCOL ({pickle.HIGHEST_PROTOCOL}); remove the key",
        )


def _choice(allowed: set[str], instead: str) -> Callable[[str, Any, dict[str, Any]], None]:
    def check(key: str, value: Any, out: dict[str, Any]) -> None:
        if _path(value) not in allowed:
            raise _refuse(key, value, instead)

    return check


def _redis_client_class(key: str, value: Any, out: dict[str, Any]) -> None:
    path = _path(value)
    if path in _CLUSTER_CLIENTS:
        _put(out, "cluster", True, key)
    elif path not in _REDIS_CLIENTS:
        raise _refuse(key, value, "cachewise builds redis.Redis (or RedisCluster with OPTIONS['cluster'])")


def _flag(expected: Any, instead: str) -> Callable[[str, Any, dict[str, Any]], None]:
    def check(key: str, value: Any, out: dict[str, Any]) -> None:
        if not isinstance(value, bool):
            raise ConfigurationError(f"OPTIONS[{key!r}]={value!r}: expected True or False")
        if expected is not None and value is not expected:
            raise _refuse(key, value, instead)

    return check


_HANDLERS: dict[str, Callable[[str, Any, dict[str, Any]], None]] = {
    "IGNORE_EXCEPTIONS": lambda key, value, out: _ignore_exceptions(value, out),
    # cachewise always logs degraded calls, at most once per log_interval (cachewise.resilience logger).
    "LOG_IGNORED_EXCEPTIONS": _flag(None, ""),
    # Connections go back to the shared pool after each command; closing per request costs a handshake.
    "CLOSE_CONNECTION": _flag(None, ""),
    "REPLICA_READ_ONLY": _flag(True, "cachewise never sends a write to a replica; remove the key"),
    "CONNECTION_POOL_KWARGS": _pool_kwargs,
    "REDIS_CLIENT_KWARGS": _pool_kwargs,
    "PARSER_CLASS": _parser_class,
    "parser_class": _parser_class,
    "SERIALIZER": lambda key, value, out: _serializer(value, out),
    "COMPRESSOR": lambda key, value, out: _compressor(value, out),
    "PICKLE_VERSION": lambda key, value, out: _pickle_version(value, out),
    "REDIS_CLIENT_CLASS": _redis_client_class,
}


def _sentinel_location(location: str | list[str], options: Mapping[str, Any], out: dict[str, Any]) -> str:
    """django-redis's ``redis://<service>/<db>`` plus ``SENTINELS``, as one ``redis+sentinel://`` URL."""
    urls = [u.strip() for u in (location.split(",") if isinstance(location, str) else location) if u.strip()]
    sentinels = options["SENTINELS"]
    try:
        hosts = ",".join(f"[{h}]:{int(p)}" if ":" in str(h) else f"{h}:{int(p)}" for h, p in sentinels)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"OPTIONS['SENTINELS']={sentinels!r}: expected [(host, port), ...]") from exc
    if not urls or not hosts:
        raise ConfigurationError("OPTIONS['SENTINELS'] needs a LOCATION such as redis://<service>/<db>")
    parts = urlsplit(urls[0])
    query = parse_qs(parts.query)
    db = query.get("db", [parts.path.strip("/") or "0"])[0]
    userinfo = parts.netloc.rpartition("@")[0]
    replicas = [
        u for u in urls if parse_qs(urlsplit(u).query).get("is_master", ["1"])[0] in ("0", "false", "False")
    ]
    if replicas:
        _put(out, "replica_reads", True, "LOCATION")
    extra = options.get("SENTINEL_KWARGS") or {}
    for name, item in extra.items():
        if name != "password":
            raise _refuse(
                "SENTINEL_KWARGS", extra, "only 'password' (OPTIONS['sentinel_password']) is supported"
            )
        _put(out, "sentinel_password", item, "SENTINEL_KWARGS")
    return f"redis+sentinel://{userinfo + '@' if userinfo else ''}{hosts}/{parts.hostname}/{db}"


def translate(
    location: str | list[str], options: Mapping[str, Any]
) -> tuple[str | list[str], dict[str, Any]]:
    """Return ``(location, options)`` with every django-redis / Django key replaced by cachewise's.

    Keys cachewise already knows (lower-case) pass through untouched; two keys that set the same
    cachewise option to different values raise, so nothing is overridden silently.
    """
    if not (set(options) & (DJANGO_REDIS_OPTIONS | DJANGO_OPTIONS)) and "db" not in options:
        return location, dict(options)
    out = {key: value for key, value in options.items() if key not in DJANGO_REDIS_OPTIONS | DJANGO_OPTIONS}
    if isinstance(out.get("db"), str) and out["db"].isdigit():
        out["db"] = int(out["db"])  # Django's documented example writes "db": "10"
    sentinel = bool(options.get("SENTINELS"))
    for key, value in options.items():
        if key in _RENAMED:
            _put(out, _RENAMED[key], value, key)
        elif key in _HANDLERS:
            _HANDLERS[key](key, value, out)
    _client_class(options.get("CLIENT_CLASS", f"{_DR}.client.DefaultClient"), out, sentinel)
    for key in ("CONNECTION_POOL_CLASS", "pool_class"):
        if key in options:
            _pool_class(key, options[key], sentinel)
    factories = _FACTORIES | (_SENTINEL_FACTORIES if sentinel else set())
    if "CONNECTION_FACTORY" in options:
        _choice(factories, "cachewise builds its own connections; remove the key")(
            "CONNECTION_FACTORY", options["CONNECTION_FACTORY"], out
        )
    if "SENTINEL_KWARGS" in options and not sentinel:
        raise ConfigurationError("OPTIONS['SENTINEL_KWARGS'] needs OPTIONS['SENTINELS']")
    if sentinel:  # one URL: a string LOCATION would be split at the commas between sentinels
        location = [_sentinel_location(location, options, out)]
    return location, out
