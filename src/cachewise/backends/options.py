"""``CACHES[alias]["OPTIONS"]`` of the cachewise backend: the accepted keys, defaults and validation.

Unknown keys and bad values raise :class:`ConfigurationError` (at the cache's first operation; the
system checks E002/E004 report them before), because a misspelt ``socket_timout`` silently
falling back to a 5 s timeout is how a Redis outage becomes a site outage.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cachewise.caches_url import SENTINEL_SCHEME, parse_sentinel_url, split_location
from cachewise.exceptions import ConfigurationError
from cachewise.resilience import FailurePolicy

from .connection import PASSTHROUGH_OPTIONS, ConnectionSettings
from .djredis_options import DJANGO_OPTIONS, DJANGO_REDIS_OPTIONS, translate
from .format import ValueFormat
from .legacy import legacy_reader_from_option
from .near import NearCacheRefused, NearSettings
from .signing import signer_from_options

__all__ = ["ALLOWED_OPTIONS", "DEFAULTS", "BackendOptions"]

#: Defaults for keys a hand-written CACHES entry leaves out (the same as ``caches_from_url``'s).
DEFAULTS: dict[str, Any] = {
    "socket_timeout": 0.5,
    "socket_connect_timeout": 0.3,
    "max_connections": 50,
    "pool_timeout": 1.0,
    "serializer": "pickle",
    "compressor": None,
    "compress_min_bytes": 1024,
    "signing_key": None,
    "sign": True,
    "legacy_reads": None,
    "failure_threshold": 5,
    "timeout_threshold": 2,
    "failure_window": 10.0,
    "cooldown": 5.0,
    "log_interval": 10.0,
    "on_read_error": "miss",
    "on_write_error": "miss",
    "on_add_error": "raise",
    "on_incr_error": "raise",
    "alias": None,
    "cluster": False,
    "replica_reads": False,
    "sentinel_password": None,
    "clear": "scan",
    "near_cache": False,
}
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}

#: Connection options passed to redis-py: PASSTHROUGH_OPTIONS plus a parser class (Django's option).
_CONNECTION_OPTIONS = PASSTHROUGH_OPTIONS | {"parser_class"}

#: cachewise's keys, django-redis's (translated, see :mod:`cachewise.backends.djredis_options`) and
#: Django's RedisCache ones (``pool_class``, ``parser_class``).
ALLOWED_OPTIONS: frozenset[str] = (
    frozenset(DEFAULTS) | _CONNECTION_OPTIONS | DJANGO_REDIS_OPTIONS | DJANGO_OPTIONS
)

_REJECTED_HINTS = {
    "retry_on_timeout": "cachewise never retries a failed command; the circuit breaker handles outages",
}


def _positive(options: Mapping[str, Any], name: str, kind: type[float] | type[int]) -> Any:
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigurationError(f"OPTIONS[{name!r}]={value!r}: expected a positive number")
    return kind(value)


def _sentinel_servers(
    urls: list[str], merged: dict[str, Any], max_connections: int, pool_timeout: float, kwargs: dict[str, Any]
) -> list[ConnectionSettings]:
    """The master (and, with ``replica_reads``, a replica) of a ``redis+sentinel://`` LOCATION."""
    if len(urls) != 1 or not urls[0].startswith(f"{SENTINEL_SCHEME}://"):
        raise ConfigurationError(
            "OPTIONS['replica_reads'] and OPTIONS['sentinel_password'] need a Sentinel LOCATION, and a "
            "Sentinel LOCATION is one URL: redis+sentinel://host1:26379,host2:26379/<service>/<db> "
            "(for a plain server, list its replicas after the primary in LOCATION instead)"
        )
    if merged["cluster"]:
        raise ConfigurationError("OPTIONS['cluster'] cannot be combined with a redis+sentinel:// LOCATION")
    if not isinstance(merged["replica_reads"], bool):
        raise ConfigurationError(
            f"OPTIONS['replica_reads']={merged['replica_reads']!r}: expected True or False"
        )
    parse_sentinel_url(urls[0])  # a malformed URL fails now, not on the first request
    sentinel_kwargs = {**kwargs, "sentinel_password": merged["sentinel_password"]}
    roles = ["master", "replica"] if merged["replica_reads"] else ["master"]
    return [
        ConnectionSettings(urls[0], max_connections, pool_timeout, sentinel_kwargs, sentinel_role=role)
        for role in roles
    ]


def _check_legacy(value_format: ValueFormat, legacy: Any) -> None:
    """Refuse a migration window that would break the format's rules (see .legacy)."""
    legacy.pickle_ok = value_format.serializer.format_id == 1
    if legacy.unpickles and value_format.serializer.format_id != 1:
        raise ConfigurationError(
            f"OPTIONS['legacy_reads'] reads pickles ({legacy.source}), but this cache's serializer is "
            "not pickle, and a JSON or msgpack cache never unpickles: drop legacy_reads (old values "
            "are then misses) or name the serializer the old writer used"
        )
    if legacy.serializer == "msgpack" and not value_format.signed:
        raise ConfigurationError(
            "OPTIONS['legacy_reads'] with a msgpack source needs signing on: an unsigned cachewise "
            "value and a msgpack value can start with the same byte, so they cannot be told apart"
        )


def _check_near(servers: list[ConnectionSettings], merged: dict[str, Any]) -> None:
    """Refuse the near cache where its invalidations could miss writes (cachewise.E060)."""
    if servers[0].cluster:
        where = "Redis Cluster (tracking is per node and a resharding moves keys between nodes)"
    elif servers[0].sentinel_role or merged["replica_reads"]:
        where = "Sentinel or replica reads (a failover or a lagging replica can hide writes from tracking)"
    else:
        return
    raise NearCacheRefused(
        f"OPTIONS['near_cache'] cannot be kept consistent on {where}: remove near_cache for this "
        "alias, or point it at a single Redis server (cachewise.E060, docs/near-cache.md)"
    )


class BackendOptions:
    """Validated OPTIONS, split into what each part of the backend needs."""

    def __init__(self, location: str | list[str], options: Mapping[str, Any] | None) -> None:
        location, given = translate(location, options or {})
        unknown = sorted(set(given) - ALLOWED_OPTIONS)
        if unknown:
            hints = "; ".join(
                f"{name}: {_REJECTED_HINTS[name]}" for name in unknown if name in _REJECTED_HINTS
            )
            raise ConfigurationError(
                f"unknown OPTIONS {unknown} for cachewise.backends.redis.RedisCache"
                + (f" ({hints})" if hints else "")
                + f"; allowed: {sorted(ALLOWED_OPTIONS)}"
            )
        merged = {**DEFAULTS, **given}
        self.raw = merged
        self.servers = self._servers(location, merged)
        self.format = self._format(merged)
        self.policy = self._policy(merged)
        self.breaker = {
            "failure_threshold": int(_positive(merged, "failure_threshold", int)),
            "timeout_threshold": int(_positive(merged, "timeout_threshold", int)),
            "failure_window": _positive(merged, "failure_window", float),
            "cooldown": _positive(merged, "cooldown", float),
        }
        self.log_interval = _positive(merged, "log_interval", float)
        self.alias: str | None = merged["alias"]
        self.clear_mode: str = merged["clear"]
        if self.clear_mode not in ("scan", "generation"):
            raise ConfigurationError(
                f"OPTIONS['clear']={self.clear_mode!r}: use 'scan' (exact, cost grows with the database) "
                "or 'generation' (O(1); old keys left to expire; see docs/backend.md)"
            )
        self.near = NearSettings.from_option(merged["near_cache"])
        if self.near is not None:
            _check_near(self.servers, merged)

    @staticmethod
    def _servers(location: str | list[str], merged: dict[str, Any]) -> list[ConnectionSettings]:
        urls = split_location(location)
        if not urls:
            raise ConfigurationError(
                "LOCATION is empty: expected a Redis URL such as redis://127.0.0.1:6379/0"
            )
        kwargs = {name: merged[name] for name in _CONNECTION_OPTIONS if name in merged}
        max_connections = int(_positive(merged, "max_connections", int))
        pool_timeout = _positive(merged, "pool_timeout", float)
        schemes = {url.partition("://")[0] for url in urls}
        if SENTINEL_SCHEME in schemes or merged["replica_reads"] or merged["sentinel_password"]:
            return _sentinel_servers(urls, merged, max_connections, pool_timeout, kwargs)
        if not (merged["cluster"] or schemes & set(_CLUSTER_SCHEMES)):
            return [ConnectionSettings(url, max_connections, pool_timeout, kwargs) for url in urls]
        if len(urls) != 1:
            raise ConfigurationError(
                f"a Redis Cluster LOCATION is the URL of one node (others are discovered), got {len(urls)}"
            )
        scheme, _, rest = urls[0].partition("://")
        url = f"{_CLUSTER_SCHEMES.get(scheme, scheme)}://{rest}"
        if merged.get("db") or re.search(r"://[^/]*/0*[1-9]", url):
            raise ConfigurationError("Redis Cluster has only database 0: remove the /<db> from LOCATION")
        return [ConnectionSettings(url, max_connections, pool_timeout, kwargs, cluster=True)]

    @staticmethod
    def _format(merged: dict[str, Any]) -> ValueFormat:
        min_bytes = merged["compress_min_bytes"]
        if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 0:
            raise ConfigurationError(f"OPTIONS['compress_min_bytes']={min_bytes!r}: expected an int >= 0")
        signer = signer_from_options(merged["sign"], merged["signing_key"])
        legacy = legacy_reader_from_option(merged["legacy_reads"])
        value_format = ValueFormat(
            serializer=merged["serializer"],
            compressor=merged["compressor"],
            compress_min_bytes=min_bytes,
            signer=signer,
            legacy=legacy,
        )
        if legacy is not None:
            _check_legacy(value_format, legacy)
        return value_format

    @staticmethod
    def _policy(merged: dict[str, Any]) -> FailurePolicy:
        try:
            return FailurePolicy(
                on_read_error=merged["on_read_error"],
                on_write_error=merged["on_write_error"],
                on_add_error=merged["on_add_error"],
                on_incr_error=merged["on_incr_error"],
            )
        except ValueError as exc:
            raise ConfigurationError(f"OPTIONS: {exc}") from exc
