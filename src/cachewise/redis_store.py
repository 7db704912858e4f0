"""The Redis fast path of the store adapter: Lua scripts, token locks, pub/sub wake-ups.

Each operation is one round trip (an ``EVALSHA`` or a single command), so nothing can interleave
between a check and the act that depends on it:

* ``read``: the value, the lock and the fence (``MGET``); ``read_waiting`` gives the lock's
  remaining life instead of its presence.
* ``fill``: store only if the caller still holds its lock token (when it has one) and the fence
  is unchanged since its read; release the lock and ``PUBLISH`` the outcome to waiters.
* ``release`` / ``extend``: compare-and-delete / compare-and-extend on the lock token, so a caller
  whose lease expired can never free or prolong the lock a later caller took over.
* ``invalidate``: delete the value and the lock, advance the fence, wake waiters.

Key layout: the value lives at the key ``cache.get()`` reads (``V``); the lock and fence live at
``cache.make_key("{V}:lock")`` and ``"{V}:fence"``. The braces make them a Redis Cluster hash tag
whose content is ``V`` itself, so all three hash to the same slot, and they keep ``KEY_PREFIX``.
Waiters subscribe to the lock key as a pub/sub channel.
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from .exceptions import SerializationError, translate_redis_error
from .store import FENCE_TTL, MISSING, Entry, Missing, Read, Store, Watch, _Codec

__all__ = ["RedisStore"]

T = TypeVar("T")

_READ = """
return {redis.call('GET', KEYS[1]), redis.call('GET', KEYS[3]), redis.call('PTTL', KEYS[2])}
"""

# KEYS: value, lock, fence. ARGV: token ('' = no lock), fence read before computing, payload,
# ttl in ms ('0' = no expiry).
_FILL = """
local held = false
if ARGV[1] ~= '' then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
  held = true
end
local stored = 0
if (redis.call('GET', KEYS[3]) or '0') == ARGV[2] then
  if ARGV[4] == '0' then redis.call('SET', KEYS[1], ARGV[3])
  else redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) end
  stored = 1
end
if held then
  redis.call('DEL', KEYS[2])
  if stored == 1 then redis.call('PUBLISH', KEYS[2], 'filled')
  else redis.call('PUBLISH', KEYS[2], 'invalidated') end
end
return stored
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_INVALIDATE = """
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
redis.call('PUBLISH', KEYS[2], 'invalidated')
return 1
"""


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisStore(Store):
    """The store on a Redis-backed cache (see the module docstring)."""

    strong = True

    def __init__(self, alias: str, cache: Any, client: Any, codec: _Codec) -> None:
        super().__init__(alias)
        self.client = client
        self.codec = codec
        self.cluster = type(client).__name__ == "RedisCluster"
        self._resilience = getattr(cache, "resilience", None)
        from .redis_scripts import SCRIPTS

        sources = {"read": _READ, "fill": _FILL, "release": _RELEASE, "extend": _EXTEND}
        sources.update(SCRIPTS, invalidate=_INVALIDATE)
        self._scripts: dict[str, Any] = {name: client.register_script(src) for name, src in sources.items()}
        self._pubsubs = _PubSubPool(client)

    # Plumbing ---------------------------------------------------------------------------------
    def call(self, operation: str, fn: Callable[[], T]) -> T:
        """Run one network call through the backend's breaker, or translate its errors."""
        if self._resilience is not None:
            result: T = self._resilience.call(operation, fn)
            return result
        try:
            return fn()
        except Exception as exc:
            if _is_redis_error(exc):
                raise translate_redis_error(exc) from exc
            raise

    def script(self, operation: str, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run the named Lua script (EVALSHA, loading it on NOSCRIPT) as one guarded call."""
        script = self._scripts[name]
        return self.call(operation, lambda: script(keys=keys, args=args))

    def _keys(self, key: str) -> tuple[str, str, str]:
        value_key = self.value_key(key)
        cache = self.cache
        return value_key, cache.make_key(f"{{{value_key}}}:lock"), cache.make_key(f"{{{value_key}}}:fence")

    def decode(self, raw: Any) -> Any:
        """A stored payload back to its value (the backend's own format)."""
        return self.codec.decode(raw)

    def encode(self, value: Any) -> Any:
        """A value to the backend's payload format."""
        return self.codec.encode(value)

    # Items ------------------------------------------------------------------------------------
    def read(self, key: str) -> Read:
        """Value, fence and whether the lock is held, in one MGET (one plain command)."""
        keys = self._keys(key)
        client = self.client
        raw, lock, fence = self.call("get", lambda: client.mget(keys))
        entry: Entry | Missing = MISSING if raw is None else self._entry(raw)
        return Read(entry, _text(fence) if fence is not None else "0", 0.0 if lock is None else math.inf)

    def read_waiting(self, key: str) -> Read:
        """The value, the fence and the lock's remaining life, in one script call."""
        raw, fence, pttl = self.script("get", "read", list(self._keys(key)), [])
        entry: Entry | Missing = MISSING if raw is None else self._entry(raw)
        lock_ttl = pttl / 1000.0 if pttl > 0 else 0.0
        return Read(entry, _text(fence) if fence is not None else "0", lock_ttl)

    def _entry(self, raw: Any) -> Entry | Missing:
        try:
            return Entry.from_wire(self.decode(raw))
        except SerializationError as exc:  # tampered or unknown format: a miss, reported
            if self._resilience is not None:
                self._resilience.report_unreadable("get", exc)
            return MISSING

    def fill(self, key: str, entry: Entry, ttl: float | None, *, token: str | None, fence: str) -> bool:
        ttl_ms = 0 if ttl is None else _ms(ttl)
        args = [token or "", fence, self.encode(entry.to_wire()), ttl_ms]
        return bool(self.script("fill", "fill", list(self._keys(key)), args))

    def invalidate(self, key: str) -> None:
        self.script("delete", "invalidate", list(self._keys(key)), [FENCE_TTL * 1000])

    # Leases -----------------------------------------------------------------------------------
    def acquire(self, key: str, lease: float) -> str | None:
        token = uuid.uuid4().hex
        lock_key = self._keys(key)[1]
        acquired = self.call("lock", lambda: self.client.set(lock_key, token, nx=True, px=_ms(lease)))
        return token if acquired else None

    def release(self, key: str, token: str, *, note: str = "released") -> bool:
        return bool(self.script("lock", "release", [self._keys(key)[1]], [token, note]))

    def extend(self, key: str, token: str, lease: float) -> bool:
        return bool(self.script("lock", "extend", [self._keys(key)[1]], [token, _ms(lease)]))

    @contextmanager
    def watch(self, key: str) -> Iterator[Watch]:
        """Subscribe to the lock channel and wait for the confirmation before yielding.

        Waiting for the confirmation matters: the caller re-checks the item after this returns,
        and a notification published between that check and an unconfirmed SUBSCRIBE would be
        lost (the waiter would then sleep until the lease ran out).
        """
        channel = self._keys(key)[1]
        pubsub = self._pubsubs.take()
        reusable = False
        try:
            self.call("lock", lambda: _subscribe(pubsub, channel))
            yield _PubSubWatch(pubsub, self, channel)
            self.call("lock", lambda: pubsub.unsubscribe(channel))
            reusable = True
        finally:
            self._pubsubs.give_back(pubsub, reusable)

    # Versions -------------------------------------------------------------------------------
    def version(self, key: str, ttl: float | None) -> int:
        return int(self.script("get", "version_get", [self.value_key(key)], [_ttl_arg(ttl)]))

    def bump(self, key: str, ttl: float | None) -> int:
        return int(self.script("incr", "version_bump", [self.value_key(key)], [_ttl_arg(ttl)]))

    def versioned_get(self, key: str, ttl: float | None, data_key: Callable[[int], str]) -> tuple[int, Any]:
        """The version and the value stored under it, in one round trip (two on Cluster)."""
        template = data_key(_PLACEHOLDER)
        # The script splices the real version into the key; that is only exact when the key is
        # not hashed (make_key hashes long keys) and is not on a Cluster (undeclared key).
        if self.cluster or len(template) > _SPLICE_MAX_LENGTH:
            return super().versioned_get(key, ttl, data_key)
        full = self.value_key(template)
        args = [_ttl_arg(ttl), full, f"v{_PLACEHOLDER}"]
        version, raw = self.script("get", "versioned_get", [self.value_key(key)], args)
        return int(version), MISSING if raw is None else self.decode(raw)


_PLACEHOLDER = 987654321987654321
_SPLICE_MAX_LENGTH = 150


def _ttl_arg(ttl: float | None) -> int:
    return 0 if ttl is None else _ms(ttl)


def _subscribe(pubsub: Any, channel: str) -> None:
    pubsub.subscribe(channel)
    # Skip what a reused connection still holds (an earlier unsubscribe confirmation, a late
    # message for an earlier channel) until this channel's confirmation arrives.
    deadline = time.monotonic() + 1.0
    while (left := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=left)
        if (
            message is not None
            and message.get("type") == "subscribe"
            and _text(message["channel"]) == channel
        ):
            return


class _PubSubPool:
    """A few idle pub/sub connections kept for reuse, so a waiter does not open a connection
    (and its HELLO/CLIENT SETINFO handshake) per wait. Dropped after a fork."""

    def __init__(self, client: Any, size: int = 8) -> None:
        self.client = client
        self.size = size
        self._idle: list[Any] = []
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def take(self) -> Any:
        with self._lock:
            if self._pid != os.getpid():  # inherited sockets belong to the parent: forget them
                self._idle, self._pid, self._lock = [], os.getpid(), threading.Lock()
            if self._idle:
                return self._idle.pop()
        return self.client.pubsub()

    def give_back(self, pubsub: Any, reusable: bool) -> None:
        with self._lock:
            if reusable and self._pid == os.getpid() and len(self._idle) < self.size:
                self._idle.append(pubsub)
                return
        pubsub.close()


class _PubSubWatch(Watch):
    def __init__(self, pubsub: Any, store: RedisStore, channel: str) -> None:
        super().__init__(poll_interval=0.0)
        self.pubsub = pubsub
        self.store = store
        self.channel = channel

    def wait(self, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.store.call("lock", lambda: self.pubsub.get_message(timeout=left))
            if message is None or message.get("type") != "message":
                continue
            if _text(message["channel"]) == self.channel:  # not a late one for an earlier wait
                return _text(message["data"])
        return None


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _is_redis_error(exc: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, (RedisError, OSError))
