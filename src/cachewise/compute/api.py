"""get_or_compute() and @cached: the low-level API most code calls directly.

::

    from cachewise import cached, get_or_compute, make_key

    top = get_or_compute(make_key("top_authors"), compute_top_authors, ttl=900, stampede="xfetch")

    @cached(ttl=600)
    def featured_articles(limit: int = 10) -> list[dict]: ...

    featured_articles(limit=5)              # cached under module.qualname, version and arguments
    featured_articles.invalidate(limit=5)   # fenced: a fill already running is not stored
    featured_articles.refresh(limit=5)      # compute now and store
    featured_articles.key(limit=5)          # the cache key
    featured_articles.original(limit=5)     # the undecorated function

``None`` is a value like any other and is cached. To hand a result back *without* caching it
(an empty result during an outage of the source, a partial answer), return ``NoStore(value)``
from the compute function, or give ``@cached(unless=predicate)``.

Typing: ``get_or_compute`` returns what ``compute`` returns (``NoStore`` unwrapped); a
``@cached`` function keeps its parameters and result type (a :class:`CachedFunction`, or an
:class:`AsyncCachedFunction` whose calls are awaited), and ``.key``, ``.invalidate`` and
``.refresh`` take the same arguments as the function. The types cost nothing at run time: no
wrapper layer is added, a call goes straight to ``__call__`` as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import inspect
import re
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Concatenate, Generic, ParamSpec, Protocol, TypedDict, TypeVar, cast, overload

from django.core.signals import setting_changed

from cachewise.conf import conf
from cachewise.keys import private_key
from cachewise.monitoring.metrics import namespace_of, record
from cachewise.signals import cache_invalidated
from cachewise.store.adapter import Held
from cachewise.store.choice import get_store

from .background import io_pool
from .stampede import MODES, Computation, Policy, StampedeMode, fetch, refresh

__all__ = [
    "AsyncCachedFunction",
    "CachedDecorator",
    "CachedFunction",
    "FetchOptions",
    "NoStore",
    "StampedeMode",
    "aget_or_compute",
    "cached",
    "get_or_compute",
    "invalidate",
]

T = TypeVar("T")
R = TypeVar("R")  # what a @cached function returns
P = ParamSpec("P")  # a @cached function's parameters
S = TypeVar("S")  # ``self`` of a @cached method
BP = ParamSpec("BP")  # a @cached method's parameters once bound


class NoStore(Generic[T]):
    """Return ``NoStore(value)`` from a compute function to get ``value`` back without caching it.

    Callers waiting on the same single-flight lock then compute for themselves, as this one did.
    """

    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"NoStore({self.value!r})"


class FetchOptions(TypedDict, total=False):
    """The tuning keywords of :func:`get_or_compute`, for APIs that pass them on (``**options``)."""

    stampede: StampedeMode
    beta: float
    stale_ttl: float
    stale_if_error: float
    lease: float | None


def _unwrap(result: T | NoStore[T]) -> tuple[T, bool]:
    if isinstance(result, NoStore):
        return result.value, False
    return result, True


def _require_callable(compute: Any, what: str = "compute") -> None:
    if not callable(compute):
        raise TypeError(
            f"{what} must be a callable that returns the value, got {type(compute).__name__} "
            f"{compute!r:.80}; pass a function (e.g. lambda: {compute!r:.40}) instead of the value"
        )


def _validate(
    ttl: float | None, stampede: StampedeMode, beta: float, stale_ttl: float, stale_if_error: float
) -> None:
    if stampede not in MODES:
        raise ValueError(f"stampede={stampede!r}: use one of {', '.join(map(repr, MODES))}")
    if ttl is not None and (not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0):
        raise ValueError(f"ttl={ttl!r}: give a positive number of seconds, or None for no expiry")
    if beta <= 0 or stale_ttl < 0 or stale_if_error < 0:
        raise ValueError("beta must be > 0, stale_ttl and stale_if_error >= 0")


@functools.lru_cache(maxsize=256)
def _policy(
    ttl: float | None,
    stampede: StampedeMode,
    beta: float,
    stale_ttl: float,
    stale_if_error: float,
    lease: float | None,
) -> Policy:
    """The Policy for these arguments, memoised: reading three settings costs more than a hit.

    Bounded (a program has few distinct call sites); emptied when a ``CACHEWISE_*`` setting
    changes, so ``override_settings`` keeps working.
    """

    _validate(ttl, stampede, beta, stale_ttl, stale_if_error)
    lease = conf.LOCK_LEASE if lease is None else float(lease)
    background = conf.BACKGROUND_REFRESH
    return Policy(ttl, stampede, beta, stale_ttl, stale_if_error, lease, conf.LOCK_MAX_WAIT, background)


def _forget_policies(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CACHEWISE_"):
        _policy.cache_clear()


setting_changed.connect(_forget_policies, dispatch_uid="cachewise.compute.policies")


# Two signatures because mypy cannot solve ``T | NoStore[T]`` against a bare ``NoStore[X]``
# (both arms match): a compute that only ever returns NoStore gets the first.
@overload
def get_or_compute(
    key: str,
    compute: Callable[[], NoStore[T]],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> T: ...
@overload
def get_or_compute(
    key: str,
    compute: Callable[[], T | NoStore[T]],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> T: ...
def get_or_compute(
    key: str,
    compute: Callable[[], T | NoStore[T]],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> T:
    """The cached value of ``key``, computing and storing it with ``compute()`` when missing.

    ``stampede``: ``"lock"`` (one computation per expiry across every process), ``"xfetch"``
    (probabilistic early refresh by one caller, nobody waits; a cold miss locks) or ``"none"``.
    ``stale_ttl``: serve the old value for up to that many seconds past expiry while exactly one
    caller refreshes it. ``stale_if_error``: serve the old value (up to that long past expiry)
    when ``compute`` raises. ``lease``: lock lifetime, renewed while computing (default
    ``CACHEWISE_LOCK_LEASE``, 5 s): a holder that dies is replaced after at most that long.
    A cache that cannot be reached makes this compute and return (counted, never raised).
    """
    _require_callable(compute)
    policy = _policy(ttl, stampede, beta, stale_ttl, stale_if_error, lease)
    work: Computation[T] = Computation(compute, _unwrap)  # mypy cannot infer T through _unwrap
    return fetch(get_store(alias), key, policy, work)


def compute_missing(
    key: str,
    compute: Callable[[], Any],
    ttl: float | None,
    *,
    stampede: StampedeMode,
    alias: str,
    held: Held | None = None,
) -> Any:
    """:func:`get_or_compute` for a caller that has just read ``key`` and found nothing.

    The same single flight and fenced fill, one round trip shorter: the lock script re-reads
    the key as it takes the lock, so the first read would only repeat the caller's. ``held``:
    the lock the caller's read already took (:meth:`~cachewise.store.adapter.Store.peek_or_lock`,
    with a lease of ``CACHEWISE_LOCK_LEASE``): computed and filled under it, without the lock
    script's round trip.
    """
    work: Computation[Any] = Computation(compute, _unwrap)
    policy = _policy(ttl, stampede, 1.0, 0, 0, None)
    return fetch(get_store(alias), key, policy, work, missing=True, held=held)


_async_flights: dict[tuple[int, str, str], asyncio.Future[Any]] = {}


def _bridge(compute: Callable[[], object], loop: asyncio.AbstractEventLoop) -> Callable[[], Any]:
    """A sync callable running ``compute`` (which may return an awaitable) on ``loop``."""

    def run() -> Any:
        result = compute()
        if inspect.isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        return result

    return run


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


# As for get_or_compute, and once more for a compute that returns an awaitable (awaited here).
@overload
async def aget_or_compute(
    key: str,
    compute: Callable[[], Awaitable[NoStore[T]]],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> T: ...
@overload
async def aget_or_compute(
    key: str,
    compute: Callable[[], Awaitable[T | NoStore[T]]],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> T: ...
@overload
async def aget_or_compute(
    key: str,
    compute: Callable[[], NoStore[T]],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> T: ...
@overload
async def aget_or_compute(
    key: str,
    compute: Callable[[], T | NoStore[T]],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> T: ...
async def aget_or_compute(
    key: str,
    compute: Callable[[], object],
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    alias: str = "default",
    lease: float | None = None,
) -> Any:
    """:func:`get_or_compute` for async code; ``compute`` may be a coroutine function.

    Coroutines of one event loop asking for the same key share one fetch; the cache I/O runs on
    a small thread pool (never asyncio's default executor, which ``sync_to_async`` needs) and
    ``compute`` runs on the caller's event loop.
    """
    _require_callable(compute)
    policy = _policy(ttl, stampede, beta, stale_ttl, stale_if_error, lease)
    return await _aget(key, compute, policy, alias, missing=False)


async def acompute_missing(
    key: str,
    compute: Callable[[], object],
    ttl: float | None,
    *,
    stampede: StampedeMode,
    alias: str,
    held: Held | None = None,
) -> Any:
    """Async :func:`compute_missing` (``compute`` may be a coroutine function)."""
    policy = _policy(ttl, stampede, 1.0, 0, 0, None)
    if held is not None:
        # The holder of the only lock computes: not behind this loop's flight for the key,
        # which (when there is one) waits on that lock.
        loop = asyncio.get_running_loop()
        work = Computation(_bridge(compute, loop), _unwrap)
        run = functools.partial(fetch, get_store(alias), key, policy, work, missing=True, held=held)
        return await loop.run_in_executor(io_pool.executor(), contextvars.copy_context().run, run)
    return await _aget(key, compute, policy, alias, missing=True)


async def _aget(key: str, compute: Callable[[], object], policy: Policy, alias: str, *, missing: bool) -> Any:
    loop = asyncio.get_running_loop()
    flight_key = (id(loop), alias, key)
    pending = _async_flights.get(flight_key)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[Any] = loop.create_future()
    _async_flights[flight_key] = future
    try:
        work = Computation(_bridge(compute, loop), _unwrap)
        # Run in a copy of the caller's context: the compute coroutine is scheduled back on the
        # loop from that thread and must keep asgiref's context (its thread-sensitive executor),
        # or a sync view it awaits through sync_to_async deadlocks under async_to_sync.
        ctx = contextvars.copy_context()
        run = functools.partial(fetch, get_store(alias), key, policy, work, missing=missing)
        value = await loop.run_in_executor(io_pool.executor(), ctx.run, run)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: followers re-raise it, nobody else must
        raise
    else:
        future.set_result(value)
        return value
    finally:
        _async_flights.pop(flight_key, None)


def invalidate(key: str, *, alias: str = "default") -> None:
    """Delete ``key``'s cached value and fence it: a fill that started before is not stored."""

    get_store(alias).invalidate(key)
    record("invalidate", alias, namespace_of(key))
    cache_invalidated.send(sender=invalidate, alias=alias, namespace=namespace_of(key), reason="invalidate")


_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def function_namespace(func: Callable[..., Any]) -> str:
    """``module.qualname`` made into a valid key namespace (hashed tail when over 64 chars)."""
    name = _UNSAFE.sub("_", f"{func.__module__}.{func.__qualname__}").lstrip(".-") or "fn"
    if len(name) <= 64:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[:47]}.{digest}"


class _CacheControls(Generic[P, R]):
    """What both kinds of ``@cached`` function share: the key of a call and its invalidation.

    ``P`` and ``R`` are the wrapped function's parameters and result (``NoStore`` unwrapped;
    for a coroutine function, the awaited result).
    """

    original: Callable[..., Any]  # the undecorated function; each subclass gives its real type
    # Copied from the function by functools.update_wrapper:
    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __init__(self, func: Callable[P, Any], options: dict[str, Any]) -> None:
        functools.update_wrapper(cast("Callable[..., Any]", self), func)  # each subclass is callable
        self.original = func
        self._namespace = options.pop("namespace") or function_namespace(func)
        self._version = options.pop("version")
        self._unless = options.pop("unless")
        self._alias = options["alias"]
        self._options = options
        self._signature = inspect.signature(func)

    def key(self, *args: P.args, **kwargs: P.kwargs) -> str:
        """The cache key of this call (arguments bound to the signature, defaults applied)."""
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return private_key(self._namespace, *bound.arguments.values(), version=self._version)

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> None:
        """Drop the cached value of this call (fenced against fills already running)."""
        invalidate(self.key(*args, **kwargs), alias=self._alias)

    def _compute(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any]:
        unless = self._unless

        def compute() -> Any:
            result = self.original(*args, **kwargs)
            if unless is not None and not isinstance(result, NoStore) and unless(result):
                return NoStore(result)
            return result

        return compute


class CachedFunction(_CacheControls[P, R]):
    """What ``@cached`` returns for a plain function: the function plus its cache controls."""

    original: Callable[P, R | NoStore[R]]

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> CachedFunction[P, R]: ...
    @overload
    def __get__(
        self: CachedFunction[Concatenate[S, BP], R], instance: S, owner: type[Any] | None = None
    ) -> Callable[BP, R]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        # Decorating a method: bind like a function would (self is then part of the key).
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        compute: Callable[[], R | NoStore[R]] = self._compute(args, kwargs)
        return get_or_compute(self.key(*args, **kwargs), compute, **self._options)

    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Compute this call now, store the result and return it."""
        options = dict(self._options)
        policy = _policy(options.pop("ttl"), options.pop("stampede"), **_tuning(options))
        work: Computation[R] = Computation(self._compute(args, kwargs), _unwrap)
        return refresh(get_store(self._alias), self.key(*args, **kwargs), policy, work)


def _tuning(options: dict[str, Any]) -> dict[str, Any]:
    keys = ("beta", "stale_ttl", "stale_if_error", "lease")
    return {name: options[name] for name in keys}


class AsyncCachedFunction(_CacheControls[P, R]):
    """``@cached`` on a coroutine function: calling it (and ``refresh``) returns a coroutine."""

    original: Callable[P, Coroutine[Any, Any, R | NoStore[R]]]

    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> AsyncCachedFunction[P, R]: ...
    @overload
    def __get__(
        self: AsyncCachedFunction[Concatenate[S, BP], R], instance: S, owner: type[Any] | None = None
    ) -> Callable[BP, Coroutine[Any, Any, R]]: ...
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Any:
        return self if instance is None else types.MethodType(self, instance)  # as CachedFunction

    def _compute(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[], Any]:
        # ``unless`` judges the awaited result: given the coroutine itself (as the sync version
        # would do) it never saw the value, and results it refuses were stored all the same.
        unless = self._unless
        if unless is None:
            return super()._compute(args, kwargs)

        async def compute() -> Any:
            result = await self.original(*args, **kwargs)
            if not isinstance(result, NoStore) and unless(result):
                return NoStore(result)
            return result

        return compute

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        compute: Callable[[], Awaitable[R | NoStore[R]]] = self._compute(args, kwargs)
        return await aget_or_compute(self.key(*args, **kwargs), compute, **self._options)

    async def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Compute this call now, store the result and return it."""
        options = dict(self._options)
        policy = _policy(options.pop("ttl"), options.pop("stampede"), **_tuning(options))
        loop = asyncio.get_running_loop()
        work: Computation[R] = Computation(_bridge(self._compute(args, kwargs), loop), _unwrap)
        store, key = get_store(self._alias), self.key(*args, **kwargs)
        ctx = contextvars.copy_context()  # keep asgiref's context, as in aget_or_compute
        return await loop.run_in_executor(io_pool.executor(), ctx.run, refresh, store, key, policy, work)


class CachedDecorator(Protocol):
    """What ``cached(...)`` returns: applied to a function, it keeps the function's types.

    A coroutine function gives an :class:`AsyncCachedFunction`, any other callable a
    :class:`CachedFunction`. The first signature of each pair serves functions that only ever
    return ``NoStore`` (mypy cannot solve ``R | NoStore[R]`` against a bare ``NoStore[X]``).
    """

    # A coroutine function also fits the sync signatures (R = the coroutine): the async ones
    # come first and win, which is what mypy's overlap warning is about.
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, NoStore[R]]], /
    ) -> AsyncCachedFunction[P, R]: ...
    @overload
    def __call__(  # type: ignore[overload-overlap]
        self, func: Callable[P, Coroutine[Any, Any, R | NoStore[R]]], /
    ) -> AsyncCachedFunction[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, NoStore[R]], /) -> CachedFunction[P, R]: ...
    @overload
    def __call__(self, func: Callable[P, R | NoStore[R]], /) -> CachedFunction[P, R]: ...


def cached(
    ttl: float | None,
    *,
    stampede: StampedeMode = "lock",
    version: int = 1,
    alias: str = "default",
    beta: float = 1.0,
    stale_ttl: float = 0,
    stale_if_error: float = 0,
    lease: float | None = None,
    namespace: str | None = None,
    unless: Callable[[Any], bool] | None = None,
) -> CachedDecorator:
    """Cache a function's results under ``namespace:v<version>:<arguments>``.

    The namespace defaults to the function's ``module.qualname``; bump ``version`` when the shape
    of the result changes. Every argument goes into the key (encoded by :func:`make_key`, so
    unsupported types raise ``TypeError``). ``unless(result)`` returning True skips storing that
    result. Works on sync and ``async def`` functions; see :func:`get_or_compute` for the rest.
    """
    if callable(ttl):
        raise TypeError("@cached needs its arguments: write @cached(ttl=600), not @cached")
    _validate(ttl, stampede, beta, stale_ttl, stale_if_error)  # fail at decoration, read no setting
    options: dict[str, Any] = {
        "ttl": ttl,
        "stampede": stampede,
        "alias": alias,
        "beta": beta,
        "stale_ttl": stale_ttl,
        "stale_if_error": stale_if_error,
        "lease": lease,
    }

    def decorate(func: Callable[..., Any]) -> CachedFunction[..., Any] | AsyncCachedFunction[..., Any]:
        _require_callable(func, "@cached target")
        factory = AsyncCachedFunction if inspect.iscoroutinefunction(func) else CachedFunction
        return factory(func, {**options, "namespace": namespace, "version": version, "unless": unless})

    return decorate  # type: ignore[return-value]  # the overloads of CachedDecorator say which
