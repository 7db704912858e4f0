"""``cache_page``: a drop-in for Django's that never stores a personalised response.

Use it on views whose output is the same for every anonymous visitor of a URL (plus the
dimensions you declare). What goes into the key, every reason a response is not stored, and how
a hit stays at one cache round trip are documented in ``docs/views.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from cachewise.pagecache.tracking import resolve

from .compute.stampede import MODES, StampedeMode
from .pagecache.key import KeyPolicy
from .pagecache.serve import PageCache, PagePolicy

__all__ = ["cache_page"]

ViewT = TypeVar("ViewT", bound=Callable[..., Any])


def cache_page(
    timeout: int | None,
    *,
    vary_on_headers: Iterable[str] = (),
    vary_on_cookies: Iterable[str] = (),
    per_user: bool = False,
    query_params: Iterable[str] | str | None = None,
    max_entries: int | None = None,
    stampede: StampedeMode = "lock",
    alias: str | None = None,
    cache: str | None = None,
    key_prefix: str | None = None,
    statuses: Iterable[int] | None = None,
    depends_on: Iterable[Any] = (),
    track_queries: bool | None = None,
) -> Callable[[ViewT], ViewT]:
    """Cache the decorated view's responses for ``timeout`` seconds, safely.

    The key holds the scheme, validated host, method, path, query string (canonical: decoded and
    sorted; the raw string is stored with the page, which is served only to that same raw
    string), active language and time zone, and the request's value of each ``vary_on_headers``
    header and ``vary_on_cookies`` cookie (declared dimensions are also added to the response's
    ``Vary``).

    Growth is bounded by default: only the parameters in ``query_params`` (default
    ``CACHEWISE_PAGE_QUERY_PARAMS``, itself empty by default; ``"*"`` for any) may be in the
    query string of a cached page, any other parameter bypasses the cache; and at most
    ``max_entries`` pages of this view (default ``CACHEWISE_PAGE_MAX_ENTRIES``, 1000) are in
    the cache at once, whatever paths, parameters and headers are requested.

    Authenticated requests, requests with a session, an ``Authorization`` header or a
    credential named in ``CACHEWISE_CREDENTIAL_COOKIES`` / ``_HEADERS``, and responses that
    set cookies or a credential header, use the CSRF token, are private or
    no-store/no-cache, vary on ``*``, stream or have a status outside ``statuses`` (default
    ``CACHEWISE_CACHEABLE_STATUSES``) are never stored. With ``per_user=True`` authenticated
    requests are cached too, keyed by user and marked ``Cache-Control: private``.

    A stored page stays valid only while the data it was rendered from is unchanged: the tables
    its queries read (``track_queries``, default ``CACHEWISE_PAGE_TRACK_QUERIES``, True) and
    ``depends_on`` (models, instances, querysets, Namespaces). A committed write to any of them,
    or :func:`cachewise.invalidate_page` of its URL, makes the next request render it again.

    ``cache`` and ``key_prefix`` are Django's names and keep working (``cache`` is ``alias``).
    Works on sync and async views; the wrapper is chosen at decoration time.
    """
    if stampede not in MODES:
        raise ValueError(f"stampede must be one of {MODES}, got {stampede!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    if max_entries is not None and (type(max_entries) is not int or max_entries < 2):
        raise ValueError(f"max_entries must be an int >= 2 (or None for the setting), got {max_entries!r}")
    key = KeyPolicy.build(
        vary_on_headers=vary_on_headers,
        vary_on_cookies=vary_on_cookies,
        query_params=query_params,
        per_user=per_user,
        key_prefix=key_prefix or "",
        source="view",
    )
    checked_depends_on = _checked_depends_on(depends_on)  # refuse a bad value at decoration

    def decorator(view: ViewT) -> ViewT:
        policy = PagePolicy(
            key=key,
            timeout=timeout,
            alias=alias or cache,
            stampede=stampede,
            statuses=None if statuses is None else frozenset(statuses),
            depends_on=checked_depends_on,
            track_queries=track_queries,
            name=f"{getattr(view, '__module__', '')}.{getattr(view, '__qualname__', repr(view))}",
            max_entries=max_entries,
        )
        return _wrap(view, PageCache(policy))

    return decorator


def _checked_depends_on(values: Iterable[Any]) -> tuple[Any, ...]:
    # Fail at import time, not at the first request: resolve() raises on an unusable value.
    # Resolved again per fill, because the counters' alias is a setting.

    values = tuple(values)
    resolve(values)
    return values


def _wrap(view: ViewT, page_cache: PageCache) -> ViewT:
    if iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            async def render(req: HttpRequest) -> HttpResponseBase:
                return await view(req, *args, **kwargs)  # type: ignore[no-any-return]

            return await page_cache.aserve(request, render)

        return async_view  # type: ignore[return-value]

    @functools.wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return page_cache.serve(request, lambda req: view(req, *args, **kwargs))

    return sync_view  # type: ignore[return-value]
