"""``cache.lock(name)``: a distributed mutex with redis-py's ``Lock`` interface, as django-redis returns.

The lock is the key ``cache.make_key(name)`` holding a random token (``SET NX PX``), the same
layout redis-py's lock (and so django-redis's) uses, so old and new processes exclude each other
during a rolling migration. Release and renewal are the stampede lock's compare-and-delete and
compare-and-extend scripts (:data:`~cachewise.store.scripts.items.RELEASE_LOCK`,
:data:`~cachewise.store.scripts.items.EXTEND_LOCK`): a holder whose lease ran out can never free or
prolong the lock another caller took over. Waiters are woken by the release through the
process' shared pub/sub connection (:mod:`cachewise.backends.lock_subscriber`), like stampede waiters.
``auto_renewal=True`` renews the lease from the process' renewal thread
(:class:`~cachewise.compute.lease.LeaseRenewal`) while the lock is held.

Every command goes through the alias' failure policy as operation ``"lock"``: an outage raises
:class:`~cachewise.exceptions.CacheUnavailableError`, never a faked acquisition.
"""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any

from redis.exceptions import LockError, LockNotOwnedError

from cachewise.backends.lock_subscriber import Subscription
from cachewise.compute.stampede import LeaseRenewal
from cachewise.store.redis import _subscriber_for
from cachewise.store.scripts import Script, run
from cachewise.store.scripts.items import EXTEND_LOCK, EXTEND_LOCK_BY, RELEASE_LOCK

if TYPE_CHECKING:
    from .redis import RedisCache

__all__ = ["CacheLock"]


class CacheLock:
    """A token lock on one Redis key; see the module docstring. Use it as a context manager."""

    def __init__(
        self,
        cache: RedisCache,
        key: str,
        *,
        timeout: float | None = None,
        sleep: float = 0.1,
        blocking: bool = True,
        blocking_timeout: float | None = None,
        thread_local: bool = True,
        auto_renewal: bool = False,
    ) -> None:
        if auto_renewal and not timeout:
            raise ValueError("auto_renewal=True needs a timeout (the lease it renews)")
        self.cache, self.name = cache, key
        self.timeout, self.sleep = timeout, sleep
        self.blocking, self.blocking_timeout = blocking, blocking_timeout
        self.auto_renewal = auto_renewal
        self.local: Any = threading.local() if thread_local else SimpleNamespace()
        self.local.token = None
        self._renewal: LeaseRenewal | None = None

    def _token(self) -> str | None:
        """This holder's token (another thread's, with ``thread_local``, is not visible here)."""
        return getattr(self.local, "token", None)

    def _call(self, fn: Any) -> Any:
        return self.cache.resilience.call("lock", fn)

    def _script(self, script: Script, args: list[Any]) -> Any:
        client = self.cache.get_client()
        return self._call(lambda: run(client, script, [self.name], args))

    def acquire(
        self, blocking: bool | None = None, blocking_timeout: float | None = None, token: str | None = None
    ) -> bool:
        """Take the lock; when blocking, wait up to ``blocking_timeout`` (None: for ever).

        A waiter is woken when a cachewise holder releases (the release script publishes on the
        lock key, through the process' shared subscriber, as stampede waiters are), and retries
        every ``sleep`` seconds anyway: a lock that expires, or a redis-py holder, sends nothing.
        """
        blocking = self.blocking if blocking is None else blocking
        wait = self.blocking_timeout if blocking_timeout is None else blocking_timeout
        token = token or uuid.uuid1().hex
        deadline = None if wait is None else time.monotonic() + wait
        client = self.cache.get_client()
        px = None if self.timeout is None else int(self.timeout * 1000)
        subscription: Subscription | None = None
        try:
            while not self._call(lambda: client.set(self.name, token, nx=True, px=px)):
                remaining = None if deadline is None else deadline - time.monotonic()
                if not blocking or (remaining is not None and remaining <= 0):
                    return False
                if subscription is None:  # subscribe, then try again: a release may fall in between
                    subscription = self._call(lambda: _subscriber_for(client).join(self.name))
                    continue
                subscription.wait(self.sleep if remaining is None else min(self.sleep, remaining))
        finally:
            if subscription is not None:
                _subscriber_for(client).leave(subscription)
        self._held(token)
        return True

    def _held(self, token: str) -> None:
        self.local.token = token
        if self.auto_renewal:
            lease = self.timeout or 0.0  # the renewal thread cannot see a thread-local token: pass it
            self._renewal = LeaseRenewal(lambda: self._extend_to(lease, token), lease)
            self._renewal.__enter__()

    def _extend_to(self, seconds: float, token: str | None = None) -> bool:
        token = token or self._token() or ""
        return bool(self._script(EXTEND_LOCK, [token, int(seconds * 1000)]))

    def release(self) -> None:
        """Free the lock if this holder still owns it; raise ``LockNotOwnedError`` if it does not."""
        token = self._token()
        if token is None:
            raise LockError("cannot release an unlocked lock", lock_name=self.name)
        self.local.token = None
        self._stop_renewal()
        if not self._script(RELEASE_LOCK, [token, "released"]):
            raise LockNotOwnedError("cannot release a lock that's no longer owned", lock_name=self.name)

    def _stop_renewal(self) -> None:
        renewal, self._renewal = self._renewal, None
        if renewal is not None:
            renewal.__exit__(None, None, None)

    def extend(self, additional_time: float, replace_ttl: bool = False) -> bool:
        """Add ``additional_time`` seconds to the lease (or set it to that with ``replace_ttl``)."""
        if self._token() is None:
            raise LockError("cannot extend an unlocked lock", lock_name=self.name)
        if self.timeout is None and not replace_ttl:
            raise LockError("cannot extend a lock with no timeout", lock_name=self.name)
        if replace_ttl:
            done = self._extend_to(additional_time)
        else:
            done = bool(self._script(EXTEND_LOCK_BY, [self._token(), int(additional_time * 1000)]))
        if not done:
            raise LockNotOwnedError("cannot extend a lock that's no longer owned", lock_name=self.name)
        return True

    def reacquire(self) -> bool:
        """Reset the lease to ``timeout`` seconds."""
        if self.timeout is None:
            raise LockError("cannot reacquire a lock with no timeout", lock_name=self.name)
        if self._token() is None or not self._extend_to(self.timeout):
            raise LockNotOwnedError("cannot reacquire a lock that's no longer owned", lock_name=self.name)
        return True

    def locked(self) -> bool:
        """Whether anyone holds the lock."""
        client = self.cache.get_client()
        return bool(self._call(lambda: client.exists(self.name)))

    def owned(self) -> bool:
        """Whether this holder holds the lock."""
        token = self._token()
        if token is None:
            return False
        client = self.cache.get_client()
        stored = self._call(lambda: client.get(self.name))
        return stored is not None and (stored.decode() if isinstance(stored, bytes) else stored) == token

    def __enter__(self) -> CacheLock:
        if self.acquire():
            return self
        raise LockError("unable to acquire lock within the time specified", lock_name=self.name)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
