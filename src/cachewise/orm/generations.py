"""Version counters for ORM data and stamped entries: read together, bumped together.

Every cached ORM entry is stored as ``[stamp, data]`` where ``stamp`` lists the counters it
depends on (a row's own version, model generations, the global ORM epoch), *as read before the
database query ran*. A reader fetches the entry and the current counters in ONE round trip and
serves the entry only when the stamp equals the counters. That closes the stale-refill race:

    reader: reads counters (v=5), misses, queries the old row
    writer: commits, bumps v to 6, returns
    reader: stores the old row stamped 5  -> never served: every later read sees v=6

Counters are never reset to a value that makes an old stamp current again: a missing counter
(never written, expired or evicted) is initialised to the current time in microseconds, which is
larger than any value it held before (it only grew by one per write since its own
initialisation). So counters may carry a TTL and may be evicted: that costs misses, never
correctness.

On Redis (cachewise's backend or Django's built-in ``RedisCache``) a read is one Lua call
(``MGET`` plus initialisation of missing counters), a bump of any number of counters is one Lua
call, and fills are fenced: a pipelined script stores an entry only if its stamp is still
current, so a late stale fill does not even overwrite a fresh one. On any other backend reads
use ``get_many`` (one round trip; initialising missing counters adds an ``add`` per counter and
one more ``get_many``, only when they are missing), bumps use ``add`` + ``incr`` per counter,
and fills use ``set_many`` unfenced; the stamp check on read keeps that path correct.
"""

from __future__ import annotations

import hashlib
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.base import BaseCache

from cachewise.keys import make_key

__all__ = [
    "GLOBAL_EPOCH",
    "MISSING",
    "Entry",
    "bump",
    "counter_key",
    "namespace_for",
    "read",
    "store",
]

#: Returned for an entry that is absent (distinct from a cached ``None``).
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()

#: Counter in every stamp: bumped when an invalidation could not be delivered (escalation).
GLOBAL_EPOCH = make_key("orm", "all")

_READ_LUA = """
local n = tonumber(ARGV[1])
local out = redis.call('MGET', unpack(KEYS))
for i = n + 1, #KEYS do
  if not out[i] then
    redis.call('SET', KEYS[i], ARGV[2], 'EX', ARGV[3])
    out[i] = ARGV[2]
  end
end
return out
"""

_BUMP_LUA = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[1], 'NX')
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[2])
end
return #KEYS
"""

# Store ARGV[2] under KEYS[1] for ARGV[1] seconds only if KEYS[2..] still hold ARGV[3..].
_FILL_LUA = """
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) ~= ARGV[i + 1] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[1])
return 1
"""


def namespace_for(label: str) -> str:
    """``orm.<app_label>.<model>``: the key namespace and metrics namespace of one model."""
    name = f"orm.{label}"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(label.encode()).hexdigest()[:8]
    return f"{name[:55]}-{digest}"


def counter_key(label: str, kind: str, *parts: Any) -> str:
    """Key of a counter: ``gen`` (any write), ``epoch`` (writes without row identity), ``rv``."""
    return make_key(namespace_for(label), kind, *parts)


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class Entry:
    """One entry to store: its key, data, TTL and the counters (keys, values) it was read under."""

    key: str
    data: Any
    ttl: int
    counter_keys: Sequence[str]
    stamp: Sequence[int]


def _unguarded(operation: str, fn: Callable[[], Any]) -> Any:
    return fn()


@dataclass(frozen=True)
class _RedisPath:
    client: Any
    encode: Callable[[Any], Any]
    decode: Callable[[bytes], Any]
    #: ``(operation, fn) -> fn()`` under cachewise's circuit breaker and failure reporting when
    #: the backend has them: an open circuit fails fast instead of waiting on a dead server.
    guard: Callable[[str, Callable[[], Any]], Any] = _unguarded


_NO_REDIS = _RedisPath(None, repr, repr)  # "not Redis", memoised like a real path
_paths: weakref.WeakKeyDictionary[BaseCache, _RedisPath] = weakref.WeakKeyDictionary()


def _redis_path(cache: BaseCache) -> _RedisPath | None:
    """The raw client and value codec of a Redis-backed cache; None for any other backend.

    Decided once per cache object (a new object replaces it when ``CACHES`` changes).
    """
    path = _paths.get(cache)
    if path is None:
        path = _paths[cache] = _find_redis_path(cache)
    return None if path is _NO_REDIS else path


def _find_redis_path(cache: BaseCache) -> _RedisPath:
    from redis.cluster import RedisCluster

    from cachewise.store import codec_of, redis_client_of

    client = redis_client_of(cache)
    # A script may only touch keys of one slot on a cluster: use the generic path there.
    if client is None or isinstance(client, RedisCluster):
        return _NO_REDIS
    codec = codec_of(cache)
    resilience = getattr(cache, "resilience", None)
    guard = resilience.call if resilience is not None else _unguarded
    return _RedisPath(client, codec.encode, codec.decode, guard)


_full_keys: weakref.WeakKeyDictionary[BaseCache, dict[str, str]] = weakref.WeakKeyDictionary()
_FULL_KEYS_MAX = 10_000


def _full(cache: BaseCache, keys: Sequence[str]) -> list[str]:
    """``cache.make_and_validate_key`` of each key, memoised per cache object (bounded)."""
    memo = _full_keys.get(cache)
    if memo is None or len(memo) > _FULL_KEYS_MAX:
        memo = _full_keys[cache] = {}
    out = []
    for key in keys:
        full = memo.get(key)
        if full is None:
            full = memo[key] = cache.make_and_validate_key(key)
        out.append(full)
    return out


_shas: dict[str, str] = {}


def _sha(source: str) -> str:
    sha = _shas.get(source)
    if sha is None:
        sha = _shas[source] = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
    return sha


def _eval(client: Any, source: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """EVALSHA with one load on NOSCRIPT (a restarted or flushed server forgets scripts)."""
    from redis.exceptions import NoScriptError

    try:
        return client.execute_command("EVALSHA", _sha(source), len(keys), *keys, *args)
    except NoScriptError:
        client.script_load(source)
        return client.execute_command("EVALSHA", _sha(source), len(keys), *keys, *args)


def _fill_all(client: Any, calls: list[list[Any]]) -> None:
    """One pipelined EVALSHA of the fill script per entry: a single round trip.

    redis-py's Script objects would add a SCRIPT EXISTS round trip to every pipeline; load the
    script only when the server says NOSCRIPT, then send the (fenced, so repeatable) batch again.
    """
    from redis.exceptions import NoScriptError

    def send() -> None:
        pipe = client.pipeline(transaction=False)
        for args in calls:
            pipe.execute_command("EVALSHA", _sha(_FILL_LUA), *args)
        pipe.execute()

    try:
        send()
    except NoScriptError:
        client.script_load(_FILL_LUA)
        send()


def _as_int(raw: Any) -> int | None:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


def read(
    alias: str, value_keys: Sequence[str], counter_keys: Sequence[str], counter_ttl: int
) -> tuple[list[Any], list[int] | None]:
    """Fetch entries and counters at one instant; initialise missing counters.

    Returns the decoded entries (``MISSING`` where absent) and the counter values in order, or
    ``None`` for the counters when they could not be established (then nothing may be stored).
    Errors propagate: the caller decides the failure policy.
    """
    cache = caches[alias]
    path = _redis_path(cache)
    full = _full(cache, [*value_keys, *counter_keys])
    if path is not None:
        args = [len(value_keys), _now_us(), counter_ttl]
        raw = path.guard("get_many", lambda: _eval(path.client, _READ_LUA, full, args))
        values = [MISSING if item is None else path.decode(item) for item in raw[: len(value_keys)]]
        return values, [int(item) for item in raw[len(value_keys) :]]
    return _read_generic(cache, value_keys, counter_keys, counter_ttl)


def _read_generic(
    cache: BaseCache, value_keys: Sequence[str], counter_keys: Sequence[str], counter_ttl: int
) -> tuple[list[Any], list[int] | None]:
    found = cache.get_many([*value_keys, *counter_keys])
    values = [found.get(key, MISSING) for key in value_keys]
    counters = {key: _as_int(found.get(key)) for key in counter_keys}
    absent = [key for key, value in counters.items() if value is None]
    if absent:
        now = _now_us()
        for key in absent:
            cache.add(key, now, timeout=counter_ttl)
        # Read back: another process may have initialised or bumped it meanwhile.
        again = cache.get_many(absent)
        counters.update({key: _as_int(again.get(key)) for key in absent})
    result = [counters[key] for key in counter_keys]
    if any(value is None for value in result):
        return values, None
    return values, [int(value) for value in result if value is not None]


def store(alias: str, entries: Sequence[Entry]) -> None:
    """Store entries in one round trip; on Redis only those whose stamp is still current."""
    if not entries:
        return
    cache = caches[alias]
    path = _redis_path(cache)
    if path is None:
        by_ttl: dict[int, dict[str, Any]] = {}
        for entry in entries:
            by_ttl.setdefault(entry.ttl, {})[entry.key] = [list(entry.stamp), entry.data]
        for ttl, batch in by_ttl.items():
            cache.set_many(batch, timeout=ttl)
        return
    calls = []
    for entry in entries:
        keys = _full(cache, [entry.key, *entry.counter_keys])
        payload = path.encode([list(entry.stamp), entry.data])
        calls.append([len(keys), *keys, entry.ttl, payload, *entry.stamp])
    path.guard("set_many", lambda: _fill_all(path.client, calls))


def bump(alias: str, counter_keys: Sequence[str], counter_ttl: int) -> None:
    """Increment every counter (initialising missing ones) in one round trip on Redis."""
    if not counter_keys:
        return
    cache = caches[alias]
    path = _redis_path(cache)
    if path is not None:
        full = _full(cache, counter_keys)
        path.guard("incr", lambda: _eval(path.client, _BUMP_LUA, full, [_now_us(), counter_ttl]))
        return
    now = _now_us()
    for key in counter_keys:
        cache.add(key, now, timeout=counter_ttl)
        try:
            cache.incr(key)
        except ValueError:
            # Expired or evicted between add() and incr(): initialise past every old value.
            cache.set(key, _now_us() + 1, timeout=counter_ttl)


def stamp_matches(entry: Any, counters: Sequence[int]) -> bool:
    """True when ``entry`` is a stored ``[stamp, data]`` whose stamp equals ``counters``."""
    if not isinstance(entry, (list, tuple)) or len(entry) != 2:
        return False
    stamp = entry[0]
    return isinstance(stamp, (list, tuple)) and list(stamp) == list(counters)
