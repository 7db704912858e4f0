"""Build Django ``CACHES`` from a Redis URL, with production defaults (timeouts, prefix, sessions).

``caches_from_env()`` in ``settings.py`` gives a ``default`` alias for the page and data cache and
a ``sessions`` alias on another logical database, so flushing the cache never logs anyone out, or
with ``SESSIONS_REDIS_URL`` / ``sessions_url=`` on another *server*, so that no flood of cache
writes can evict a session either (eviction is per server, not per database);
both with a ``KEY_PREFIX``, a ``VERSION``, short socket timeouts and a bounded connection pool.
A URL that cannot work raises ``ImproperlyConfigured`` (as :class:`ConfigurationError`) at
settings time, naming the part that is wrong, instead of failing on the first request.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit

from .exceptions import ConfigurationError

__all__ = [
    "DEFAULT_BACKEND",
    "DEFAULT_OPTIONS",
    "SentinelURL",
    "caches_from_env",
    "caches_from_url",
    "parse_redis_url",
    "parse_sentinel_url",
    "redact_url",
    "split_location",
]

DEFAULT_BACKEND = "cachewise.backends.redis.RedisCache"
SESSIONS_TIMEOUT = 60 * 60 * 24 * 14
#: Logical databases of a Redis server with the stock redis.conf (``databases 16``).
REDIS_DEFAULT_DATABASES = 16
#: Short timeouts: a healthy Redis answers in well under a millisecond on a LAN, so a stall of
#: half a second is an outage, and every worker waiting 5 s (redis-py's default) on it is worse.
DEFAULT_OPTIONS: dict[str, Any] = {
    "socket_timeout": 0.5,
    "socket_connect_timeout": 0.3,
    "max_connections": 50,
}
#: ``redis+cluster://`` and ``rediss+cluster://`` select Redis Cluster in cachewise's backend.
_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
#: ``redis+sentinel://[[user]:password@]host:26379[,host:26379...]/<service>[/<db>]``: Redis Sentinel.
SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
_SCHEMES = ("redis", "rediss", "unix", *_CLUSTER_SCHEMES, SENTINEL_SCHEME)
_PREFIX = re.compile(r"[A-Za-z0-9_.\-]{1,40}\Z")

#: The dotted path of the backend that stands in for a cache whose URL variable is unset.
UNCONFIGURED_BACKEND = "cachewise.backends.unconfigured.UnconfiguredCache"


_QUERY_SECRET = re.compile(r"((?:^|[?&;])password=)[^&;#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``, for error messages and logs.

    Everything up to the *last* ``@`` is user-info here (as in ``urlsplit`` and redis-py), so a
    password holding an unescaped ``@``, ``/`` or ``?`` is hidden whole; a ``password=`` query
    argument is hidden too. When unsure this hides too much, never too little.
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, hostpart = rest.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        rest = f"{userinfo}@{hostpart}"
    return _QUERY_SECRET.sub(r"\1***", f"{scheme}{sep}{rest}")


def _port_of(parts: SplitResult, url: str) -> int:
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:  # urlsplit accepts ":0", which no server listens on
        raise ConfigurationError(
            f"Redis URL {redact_url(url)!r} has an invalid port: use a number from 1 to 65535"
        )
    return 6379 if port is None else port


def _db_of(parts: SplitResult, url: str) -> int:
    query_db = re.search(r"(?:^|&)db=([^&]*)", parts.query)
    raw = unquote(query_db.group(1)) if query_db else parts.path.lstrip("/")
    if parts.scheme == "unix" and not query_db:
        raw = ""
    if raw == "":
        return 0
    if not re.fullmatch(r"[0-9]{1,9}", raw):  # str.isdigit() would accept "²" and "٣"
        raise ConfigurationError(
            f"Redis URL {redact_url(url)!r} has an invalid database {raw!r}: the path must be "
            "/<number>, for example redis://localhost:6379/0"
        )
    return int(raw)


@dataclass(frozen=True)
class SentinelURL:
    """The parts of a ``redis+sentinel://`` URL; ``username``/``password`` authenticate to Redis."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None

    def with_db(self, url: str, db: int) -> str:
        """``url`` (the URL this was parsed from) pointing at logical database ``db``."""
        scheme, _, rest = url.strip().partition("://")
        netloc = rest.split("/", 1)[0]
        return f"{scheme}://{netloc}/{quote(self.service, safe='')}/{db}"


def _sentinel_address(text: str, url: str) -> tuple[str, int]:
    host, port = text, ""
    if text.startswith("["):  # [IPv6]:port
        host, _, after = text[1:].partition("]")
        port = after.removeprefix(":")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not host:
        raise ConfigurationError(f"Sentinel URL {redact_url(url)!r} has an empty host in {text!r}")
    if port == "":
        return host, SENTINEL_PORT
    if not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise ConfigurationError(
            f"Sentinel URL {redact_url(url)!r} has an invalid port {port!r} for host {host!r}: "
            "use a number from 1 to 65535"
        )
    return host, int(port)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Validate ``redis+sentinel://[[user]:password@]host1:26379,host2:26379/<service>[/<db>]``.

    The hosts are sentinels (port 26379 when left out); ``<service>`` is the name the sentinels
    monitor (``sentinel monitor <service> ...``); ``<db>`` defaults to 0. Credentials in the URL
    are those of the Redis servers, not of the sentinels. Raise :class:`ConfigurationError` naming
    the problem (no hosts, a bad port, no service name, a bad database).
    """
    url = url.strip()
    scheme, _, rest = url.partition("://")
    if scheme != SENTINEL_SCHEME:
        raise ConfigurationError(f"{redact_url(url)!r} is not a redis+sentinel:// URL")
    if "?" in rest or "#" in rest:
        raise ConfigurationError(
            f"Sentinel URL {redact_url(url)!r} has a query or fragment: put the database in the path "
            "(/<service>/<db>) and connection settings in OPTIONS"
        )
    netloc, _, path = rest.partition("/")
    userinfo, _, hosts = netloc.rpartition("@")
    addresses = [part.strip() for part in hosts.split(",") if part.strip()]
    if not addresses:
        raise ConfigurationError(
            f"Sentinel URL {redact_url(url)!r} has no sentinel hosts: expected "
            "redis+sentinel://host1:26379,host2:26379/<service>/0"
        )
    segments = [unquote(segment) for segment in path.split("/")] if path else []
    if not segments or not segments[0].strip():
        raise ConfigurationError(
            f"Sentinel URL {redact_url(url)!r} has no service name: expected "
            "redis+sentinel://host:26379/<service>/0 (the name in 'sentinel monitor <service> ...')"
        )
    if len(segments) > 2 or (len(segments) == 2 and not re.fullmatch(r"[0-9]{1,9}", segments[1])):
        raise ConfigurationError(
            f"Sentinel URL {redact_url(url)!r} has an invalid database {'/'.join(segments[1:])!r}: "
            "the path must be /<service>/<number>, for example /mymaster/0"
        )
    username, has_password, password = userinfo.partition(":")
    return SentinelURL(
        sentinels=tuple(_sentinel_address(address, url) for address in addresses),
        service=segments[0],
        db=int(segments[1]) if len(segments) == 2 else 0,
        username=unquote(username) if username else None,
        password=unquote(password) if has_password else None,
    )


def split_location(location: str | list[str] | tuple[str, ...]) -> list[str]:
    """The server URLs of a ``CACHES`` LOCATION, the primary first.

    A string lists servers separated by ``,`` or ``;`` (as in Django's backend), except a
    ``redis+sentinel://`` URL, which is one URL whatever its commas: they separate its sentinels
    (``redis+sentinel://h1:26379,h2:26379,h3:26379/<service>/0``).
    """
    if not isinstance(location, str):
        return [str(url).strip() for url in location if url and str(url).strip()]
    if location.strip().startswith(f"{SENTINEL_SCHEME}://"):
        return [location.strip()]
    return [url.strip() for url in re.split("[;,]", location) if url.strip()]


def parse_redis_url(url: str) -> dict[str, Any]:
    """Validate ``url`` and return its parts: scheme, host, port, db, username, has_password.

    A ``redis+sentinel://`` URL (see :func:`parse_sentinel_url`) also gives ``service`` and
    ``sentinels`` (a list of ``(host, port)``); its ``host``/``port`` are the first sentinel's.

    Raise :class:`ConfigurationError` naming the problem for anything redis-py would reject
    later (or worse, accept and connect somewhere unexpected).
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("Redis URL is empty: expected redis://[:password@]host:6379/0")
    url = url.strip()
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        sentinel = parse_sentinel_url(url)
        return {
            "scheme": SENTINEL_SCHEME,
            "host": sentinel.sentinels[0][0],
            "port": sentinel.sentinels[0][1],
            "db": sentinel.db,
            "username": sentinel.username,
            "has_password": sentinel.password is not None,
            "service": sentinel.service,
            "sentinels": list(sentinel.sentinels),
        }
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL": a bracket without its pair
        raise ConfigurationError(f"Redis URL {redact_url(url)!r} cannot be parsed: {exc}") from None
    if parts.scheme not in _SCHEMES:
        raise ConfigurationError(
            f"Redis URL {redact_url(url)!r} has scheme {parts.scheme or '(none)'!r}: "
            "use redis://, rediss:// (TLS), unix://, redis+cluster:// or redis+sentinel://"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigurationError(f"Redis URL {redact_url(url)!r} has no host: expected redis://host:6379/0")
    if parts.scheme == "unix" and not parts.path:
        raise ConfigurationError(
            f"Redis URL {redact_url(url)!r} has no socket path: expected unix:///path/redis.sock?db=0"
        )
    return {
        "scheme": parts.scheme,
        "host": parts.hostname or "",
        "port": _port_of(parts, url) if parts.scheme != "unix" else 0,
        "db": _db_of(parts, url),
        "username": unquote(parts.username) if parts.username else None,
        "has_password": parts.password is not None,
    }


_DB_QUERY = re.compile(r"(?:^|&)db=[^&]*")


def _with_db(url: str, db: int) -> str:
    """``url`` pointing at logical database ``db``: in the query when it holds the db, else the path."""
    parts = urlsplit(url.strip())
    if parts.scheme == "unix" or _DB_QUERY.search(parts.query):
        query = _DB_QUERY.sub("", parts.query).lstrip("&")
        query = f"{query}&db={db}" if query else f"db={db}"
        # Rebuilt by hand: urlunsplit drops the empty authority of unix:///path.
        fragment = f"#{parts.fragment}" if parts.fragment else ""
        return f"{parts.scheme}://{parts.netloc}{parts.path}?{query}{fragment}"
    return parts._replace(path=f"/{db}").geturl()


def _default_sessions_db(db: int, url: str) -> int:
    """The URL's database + 1, refused when the URL is on 15, the last of a stock ``databases 16``.

    Settings open no socket, so the server's real count is unknown here: rather than guess
    (wrapping around could land on another project's database), stop and ask for ``sessions_db``.
    A URL already past 15 says the server was configured with more databases, so its + 1 is
    taken, as is an explicit ``sessions_db``; ``check --deploy`` verifies they exist (E007).
    """
    if db == REDIS_DEFAULT_DATABASES - 1:
        raise ConfigurationError(
            f"Redis URL {redact_url(url)!r} uses database {db}; sessions would go to database "
            f"{db + 1}, past the {REDIS_DEFAULT_DATABASES} databases (0-{REDIS_DEFAULT_DATABASES - 1}) "
            "a Redis server has by default. Pass sessions_db= with a free database (for example "
            f"sessions_db={db - 1}), or use a lower database in the URL."
        )
    return db + 1


def _default_prefix() -> str:
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    return settings_module.split(".", 1)[0] or "app"


def _cache_entry(
    backend: str, location: str, prefix: str, version: int, timeout: int | None, options: dict[str, Any]
) -> dict[str, Any]:
    return {
        "BACKEND": backend,
        "LOCATION": location,
        "KEY_PREFIX": prefix,
        "VERSION": version,
        "TIMEOUT": timeout,
        "OPTIONS": dict(options),
    }


def caches_from_url(
    url: str,
    *,
    key_prefix: str | None = None,
    version: int = 1,
    timeout: int | None = 300,
    sessions: bool = True,
    sessions_db: int | None = None,
    sessions_timeout: int = SESSIONS_TIMEOUT,
    sessions_url: str | None = None,
    backend: str = DEFAULT_BACKEND,
    options: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Return a ``CACHES`` dict for ``url``: ``default`` and, unless disabled, ``sessions``.

    ``sessions`` uses ``sessions_url`` when given (another Redis server: the recommended
    production setup, see docs/configuration.md), else ``sessions_db`` on the same server
    (default: the URL's database + 1, an error when the URL is on database 15, the last of a
    stock server's 16); with the prefix ``<key_prefix>-sess`` and a two-week timeout.
    ``options`` are merged over
    :data:`DEFAULT_OPTIONS` and passed to the backend. ``key_prefix`` defaults to the top-level
    package of ``DJANGO_SETTINGS_MODULE``, so two projects sharing a server never collide.
    """
    parsed = parse_redis_url(url)
    prefix = key_prefix if key_prefix is not None else _default_prefix()
    if not _PREFIX.match(prefix):
        origin = "" if key_prefix is not None else " (taken from DJANGO_SETTINGS_MODULE; pass key_prefix=)"
        raise ConfigurationError(
            f"key_prefix {prefix!r}{origin} is not valid: use 1-40 letters, digits, '_', '.' or '-'"
        )
    if type(version) is not int or version < 1:
        raise ConfigurationError(f"version must be an int >= 1, got {version!r}")
    merged = {**DEFAULT_OPTIONS, **(options or {})}
    caches = {"default": _cache_entry(backend, url.strip(), prefix, version, timeout, merged)}
    if sessions and sessions_url is not None:
        location = _separate_sessions_url(url, parsed, sessions_url, sessions_db)
        caches["sessions"] = _cache_entry(
            backend, location, f"{prefix}-sess", version, sessions_timeout, merged
        )
    elif sessions and parsed["scheme"] in _CLUSTER_SCHEMES:
        # A cluster has only database 0: sessions share it under their own prefix, which the
        # cachewise backend's clear() (prefix-scoped, never FLUSHDB) leaves alone.
        if sessions_db not in (None, 0) or parsed["db"] != 0:
            raise ConfigurationError("Redis Cluster has only database 0: drop /<db> and sessions_db")
        caches["sessions"] = _cache_entry(
            backend, url.strip(), f"{prefix}-sess", version, sessions_timeout, merged
        )
    elif sessions:
        db = _default_sessions_db(parsed["db"], url) if sessions_db is None else sessions_db
        if type(db) is not int or db < 0:
            raise ConfigurationError(f"sessions_db must be an int >= 0, got {db!r}")
        if db == parsed["db"]:
            raise ConfigurationError(
                f"sessions_db={db} is the page cache's database: sessions need their own logical "
                "database so that clearing the cache does not log everyone out"
            )
        if parsed["scheme"] == SENTINEL_SCHEME:  # the same service, another database
            location = parse_sentinel_url(url).with_db(url, db)
        else:
            location = _with_db(url, db)
        caches["sessions"] = _cache_entry(
            backend, location, f"{prefix}-sess", version, sessions_timeout, merged
        )
    return caches


def _unconfigured_caches(var: str, sessions: bool) -> dict[str, dict[str, Any]]:
    entry = {"BACKEND": UNCONFIGURED_BACKEND, "LOCATION": var}
    aliases = ("default", "sessions") if sessions else ("default",)
    return {alias: dict(entry) for alias in aliases}


def _separate_sessions_url(
    url: str, parsed: dict[str, Any], sessions_url: str, sessions_db: int | None
) -> str:
    """Validate ``sessions_url``: a server of its own, so the cache's evictions never reach it."""
    if sessions_db is not None:
        raise ConfigurationError("give sessions_url or sessions_db, not both: the URL names the database")
    other = parse_redis_url(sessions_url)
    if (other["host"], other["port"]) == (parsed["host"], parsed["port"]):
        raise ConfigurationError(
            f"sessions_url {redact_url(sessions_url)!r} is the cache's own server: Redis evicts per "
            "server, not per database, so a flood of cache writes would still evict sessions. Point "
            "it at another Redis server, or leave it out (sessions then go to the URL's database + 1)"
        )
    return sessions_url.strip()


def caches_from_env(
    var: str = "REDIS_URL", *, sessions_var: str = "SESSIONS_REDIS_URL", **kwargs: Any
) -> dict[str, dict[str, Any]]:
    """Return :func:`caches_from_url` for the URL in environment variable ``var``.

    The sessions alias goes to the server in ``sessions_var`` when that variable is set (and
    ``sessions_url=`` was not passed).

    When ``var`` is missing or blank, return placeholder entries (same aliases) instead of
    raising, so that settings import where no Redis is configured (``collectstatic`` in a build,
    ``makemigrations --check``, a test run with a private Redis). Each placeholder raises
    :class:`~cachewise.exceptions.CacheNotConfiguredError` naming ``var`` at its first
    cache operation, and ``manage.py check --deploy`` reports it as ``cachewise.E003``. There is
    deliberately no LocMem fallback: Gunicorn workers cannot share a per-process cache. A URL
    that is set but malformed still raises :class:`ConfigurationError` here.
    """
    url = os.environ.get(var, "").strip()
    if not url:
        return _unconfigured_caches(var, bool(kwargs.get("sessions", True)))
    sessions_url = os.environ.get(sessions_var, "").strip()
    if sessions_url and "sessions_url" not in kwargs:
        kwargs["sessions_url"] = sessions_url
    return caches_from_url(url, **kwargs)
