"""Find the Redis server behind a ``CACHES`` entry and talk to it for diagnostics, never hanging.

Used by ``manage.py cachewise ping`` and the deploy-only system checks. It reads ``LOCATION`` and
``OPTIONS`` the way the three Redis backends do (cachewise's, Django's built-in ``RedisCache`` and
django-redis), connects with its *own* short-timeout client (a project's backend may have no
timeout at all, and a diagnostic must answer even then) with redis-py's retries off, and turns
redis-py errors into a sentence saying what to check. For a ``redis+sentinel://`` LOCATION the
target names the first sentinel, and :func:`connect` asks the sentinels for the current master.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.utils.module_loading import import_string
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

from cachewise.backends.redis import RedisCache
from cachewise.backends.sentinel import sentinel_arguments
from cachewise.caches_url import SENTINEL_SCHEME, parse_redis_url, redact_url, split_location
from cachewise.exceptions import ConfigurationError

__all__ = [
    "CACHEWISE_BACKEND",
    "DJANGO_REDIS_BACKEND",
    "DJANGO_REDIS_PACKAGE_BACKEND",
    "LIVE_CHECK_TIMEOUT",
    "RedisTarget",
    "configured_caches",
    "connect",
    "explain_error",
    "is_cachewise_backend",
    "is_redis_backend",
    "redis_target",
    "redis_targets",
    "target_or_error",
]

CACHEWISE_BACKEND = "cachewise.backends.redis.RedisCache"
DJANGO_REDIS_BACKEND = "django.core.cache.backends.redis.RedisCache"
DJANGO_REDIS_PACKAGE_BACKEND = "django_redis.cache.RedisCache"
_KNOWN_REDIS_BACKENDS = frozenset({CACHEWISE_BACKEND, DJANGO_REDIS_BACKEND, DJANGO_REDIS_PACKAGE_BACKEND})
#: OPTIONS that carry credentials or TLS settings, as each backend spells them.
_CONNECTION_OPTIONS = {
    "username": "username",
    "password": "password",
    "PASSWORD": "password",
    "sentinel_password": "sentinel_password",
    "ssl_cert_reqs": "ssl_cert_reqs",
    "ssl_ca_certs": "ssl_ca_certs",
    "ssl_certfile": "ssl_certfile",
    "ssl_keyfile": "ssl_keyfile",
    "ssl_check_hostname": "ssl_check_hostname",
}


def _backend_class(backend: str) -> type | None:
    try:
        cls = import_string(backend)
    except Exception:  # noqa: BLE001 - a backend that cannot even be imported is reported by Django, not here
        return None
    return cls if isinstance(cls, type) else None


def is_cachewise_backend(backend: object) -> bool:
    """True for cachewise's RedisCache or a subclass of it (by dotted path)."""
    if not isinstance(backend, str):
        return False
    if backend == CACHEWISE_BACKEND:
        return True

    cls = _backend_class(backend)
    return cls is not None and issubclass(cls, RedisCache)


def is_redis_backend(backend: object) -> bool:
    """True for the three Redis backends and their subclasses (by dotted path)."""
    if not isinstance(backend, str):
        return False
    if backend in _KNOWN_REDIS_BACKENDS or backend.startswith("django_redis."):
        return True

    cls = _backend_class(backend)
    return cls is not None and (issubclass(cls, DjangoRedisCache) or is_cachewise_backend(backend))


@dataclass(frozen=True)
class RedisTarget:
    """The primary server of one cache alias: where it is and how to authenticate."""

    alias: str
    url: str
    host: str
    port: int
    db: int
    connection_kwargs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def display(self) -> str:
        """The URL with any password hidden, and the effective database spelled out."""
        return f"{redact_url(self.url)} (db {self.db})"

    @property
    def address(self) -> str:
        """``host:port``, or the socket path: the server, whatever the database."""
        return f"{self.host}:{self.port}" if self.port else self.host

    @property
    def server(self) -> tuple[str, int, int]:
        """``(host or socket path, port, db)``: two aliases with equal ``server`` share a keyspace."""
        return (self.host, self.port, self.db)

    def secrets(self) -> list[str]:
        """Passwords to scrub from any text shown to a user."""
        found = [str(self.connection_kwargs["password"])] if self.connection_kwargs.get("password") else []
        password = urlsplit(self.url).password
        return [*found, password] if password else found


def _primary_location(location: Any) -> str:
    # Django's RedisCache and ours accept "url1,url2" (or ';'): the first is the primary; the
    # commas of a redis+sentinel:// URL separate its sentinels.
    urls = split_location(location if isinstance(location, (list, tuple)) else str(location or ""))
    return urls[0] if urls else ""


def redis_target(alias: str, entry: Mapping[str, Any]) -> RedisTarget | None:
    """The primary server of the ``CACHES`` entry ``entry``, or None when it is not a Redis cache.

    The database is the URL's when it names one, else ``OPTIONS["db"]``, else 0: redis-py lets the
    URL win, so this is the database the backend really uses. Raise :class:`ConfigurationError`
    when ``LOCATION`` is not a valid Redis URL.
    """
    if not is_redis_backend(entry.get("BACKEND")):
        return None
    url = _primary_location(entry.get("LOCATION"))
    parsed = parse_redis_url(url)
    options = entry.get("OPTIONS") or {}
    parts = urlsplit(url)
    explicit_db = bool(re.search(r"(?:^|&)db=", parts.query)) or (
        parts.scheme != "unix" and bool(parts.path.strip("/"))
    )
    db = parsed["db"] if explicit_db else int(options.get("db", 0) or 0)
    host = parsed["host"] if parts.scheme != "unix" else parts.path
    kwargs = {target: options[name] for name, target in _CONNECTION_OPTIONS.items() if name in options}
    if not explicit_db:
        kwargs["db"] = db
    return RedisTarget(alias, url, host, parsed["port"], db, kwargs)


def connect(target: RedisTarget, timeout: float = 1.0) -> redis.Redis:
    """A fresh client for ``target`` that gives up after ``timeout`` seconds and never retries.

    Close it after use (``client.close()``); it owns one connection and shares no pool. A Sentinel
    target is resolved to its current master first (each sentinel asked within ``timeout``).
    """
    if target.url.startswith(f"{SENTINEL_SCHEME}://"):
        return _connect_to_master(target, timeout)
    return redis.Redis.from_url(
        target.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        single_connection_client=True,
        **target.connection_kwargs,
    )


def _connect_to_master(target: RedisTarget, timeout: float) -> redis.Redis:
    limits: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    parsed, kwargs, node_kwargs = sentinel_arguments(target.url, {**target.connection_kwargs, **limits})
    no_retry = Retry(NoBackoff(), 0)
    node_kwargs["retry"] = no_retry
    with Sentinel(list(parsed.sentinels), sentinel_kwargs=node_kwargs) as sentinel:  # type: ignore[no-untyped-call, unused-ignore]
        host, port = sentinel.discover_master(parsed.service)
    return redis.Redis(host=host, port=port, retry=no_retry, single_connection_client=True, **kwargs)


def _root_cause(exc: BaseException) -> BaseException:
    """The redis-py error behind a translated cachewise error (``raise ... from exc``)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        cause = exc.__cause__ or exc.__context__
        if cause is None:
            break
        exc = cause
    return exc


_NO_MASTER_ADVICE = (
    "no sentinel named a healthy master for this service: check the sentinel hosts and ports and "
    "the service name in the redis+sentinel:// URL (the name in 'sentinel monitor <service>')"
)


def _advice(exc: BaseException, target: RedisTarget, timeout: float) -> str:
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or re.search(r"NOAUTH|WRONGPASS|invalid password", text):
        return (
            "the server refused the credentials: check the password (and username) in the URL, "
            "e.g. redis://:PASSWORD@host:6379/0 in REDIS_URL, or OPTIONS['password']"
        )
    if "DB index is out of range" in text or "invalid DB index" in text:
        return (
            f"database {target.db} does not exist on this server (it has fewer databases; see "
            f"'databases' in redis.conf): check the /{target.db} at the end of the URL, or the "
            "sessions database (the URL's database + 1)"
        )
    if isinstance(exc, (ssl.SSLError, redis.exceptions.ConnectionError)) and "SSL" in text.upper():
        return "the TLS handshake failed: check rediss:// versus redis:// and the certificate settings"
    if isinstance(exc, (redis.TimeoutError, TimeoutError)):
        return (
            f"no answer within {timeout:g} s: check the host and port, firewalls or security groups "
            "between here and the server, and whether the server is overloaded"
        )
    if isinstance(exc, (redis.ConnectionError, ConnectionError, OSError)):
        return (
            f"could not connect to {target.host}:{target.port}: check that Redis is running there "
            "and that the URL's host and port (REDIS_URL) are right"
        )
    return "the server answered with an error: check the server's configuration and ACL permissions"


def explain_error(exc: BaseException, target: RedisTarget, timeout: float = 1.0) -> str:
    """One sentence for a user: which server, what went wrong, what to check. Passwords hidden."""
    root = _root_cause(exc)
    detail = f"{type(root).__name__}: {root}"
    for secret in target.secrets():
        detail = detail.replace(secret, "***")
    no_master = isinstance(root, MasterNotFoundError)
    advice = _NO_MASTER_ADVICE if no_master else _advice(root, target, timeout)
    return f"{target.display}: {advice} ({detail})"


def target_or_error(alias: str, entry: Mapping[str, Any]) -> RedisTarget | None:
    """:func:`redis_target`, with a ConfigurationError naming ``alias`` for a bad ``LOCATION``."""
    try:
        return redis_target(alias, entry)
    except ConfigurationError as exc:
        raise ConfigurationError(f"CACHES[{alias!r}]['LOCATION']: {exc}") from None


#: Seconds a live system check waits for a Redis server before reporting it unreachable.
LIVE_CHECK_TIMEOUT = 1.0


def configured_caches() -> dict[str, dict[str, Any]]:
    configured: dict[str, dict[str, Any]] = getattr(settings, "CACHES", {}) or {}
    return configured


def redis_targets() -> Iterator[tuple[str, dict[str, Any], RedisTarget]]:
    """Every Redis-backed alias with its primary server; aliases whose LOCATION is broken are skipped
    here (the backend itself reports those when it is built)."""
    for alias, entry in configured_caches().items():
        try:
            target = redis_target(alias, entry)
        except ConfigurationError:
            continue
        if target is not None:
            yield alias, entry, target
