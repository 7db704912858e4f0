"""``manage.py cachewise ping [--alias NAME] [--timeout SECONDS]``: is the cache really there?

Two steps, each timed. First, for a Redis cache, a PING on a short-timeout connection of its
own, so an unreachable server, a wrong password or a database that does not exist is reported
as exactly that (the cache API would hide all three: reads fail open as misses). Then a
``set``/``get``/``delete`` round trip through the Django cache API, which is what the site
uses: a value that does not come back is reported too. Any failure exits non-zero.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cachewise.caches_url import redact_url
from cachewise.checks.redis_probe import RedisTarget, connect, explain_error, target_or_error
from cachewise.exceptions import ConfigurationError
from cachewise.keys import make_key

from .output import print_table

help = "Check that a cache alias answers: a PING and a set/get round trip, with their latency."


def add_arguments(parser: CommandParser) -> None:
    """``--alias`` (default ``default``) and ``--timeout`` (seconds per network step)."""
    parser.add_argument(
        "--alias", default="default", help="cache alias in settings.CACHES (default: default)"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        help="seconds to wait for the server at each step before giving up (default: 2)",
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _entry(alias: str) -> dict[str, Any]:
    configured: dict[str, Any] = settings.CACHES
    if alias not in configured:
        names = ", ".join(configured) or "none"
        raise CommandError(f"no cache alias {alias!r} in settings.CACHES; configured aliases: {names}")
    return dict(configured[alias])


def _ping_server(target: RedisTarget, timeout: float) -> float:
    client = None
    try:
        client = connect(target, timeout)  # connects (and authenticates, selects the db) at once
        started = time.perf_counter()
        client.ping()
        return time.perf_counter() - started
    except Exception as exc:  # noqa: BLE001 - every redis-py failure becomes advice, never a traceback
        raise CommandError(
            f"cache {target.alias!r} did not answer PING: {explain_error(exc, target, timeout)}"
        ) from None
    finally:
        if client is not None:
            client.close()


def _round_trip(alias: str, target: RedisTarget | None, timeout: float) -> tuple[float, float]:
    cache = caches[alias]
    key = make_key("cachewise", "ping", uuid.uuid4().hex)
    token = uuid.uuid4().hex
    try:
        started = time.perf_counter()
        cache.set(key, token, timeout=30)
        after_set = time.perf_counter()
        value = cache.get(key)
        after_get = time.perf_counter()
        cache.delete(key)
    except Exception as exc:  # noqa: BLE001 - every failure becomes advice in the command's words, never a traceback
        reason = explain_error(exc, target, timeout) if target else f"{type(exc).__name__}: {exc}"
        raise CommandError(f"cache {alias!r} failed the set/get round trip: {reason}") from None
    if value != token:
        raise CommandError(
            f"cache {alias!r} accepted a value but get() returned {value!r}: the backend does not keep "
            "values (DummyCache), or it swallowed an error (a fail-open read or write; see the logs), "
            "or the server evicted the key at once (check maxmemory)"
        )
    return after_set - started, after_get - after_set


def handle(command: BaseCommand, options: dict[str, Any]) -> None:
    """Ping ``options["alias"]``; raise CommandError saying what to check when it fails."""
    alias, timeout = options["alias"], float(options["timeout"])
    entry = _entry(alias)
    try:
        target = target_or_error(alias, entry)
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None
    ping = _ping_server(target, timeout) if target else None
    set_time, get_time = _round_trip(alias, target, timeout)
    where = (
        target.display if target else f"{entry.get('BACKEND')} {redact_url(str(entry.get('LOCATION', '')))}"
    )
    print_table(
        command,
        f"cachewise ping {alias}: OK",
        ["alias", "server", "PING", "set", "get"],
        [[alias, where.strip(), _ms(ping) if ping is not None else "-", _ms(set_time), _ms(get_time)]],
    )
