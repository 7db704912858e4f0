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

from .pagecache.key import KeyPolicy
from .pagecache.serve import PageCache, PagePolicy

__all__ = ["cache_page"]

ViewT = TypeVar("ViewT", bound=Callable[..., Any])
_STAMPEDE_MODES = ("lock", "xfetch", "none")


def cache_page(
    timeout: int | None,
    *,
    vary_on_headers: Iterable[str] = (),
    vary_on_cookies: Iterable[str] = (),
    per_user: bool = False,
    query_params: Iterable[str] | None = None,
    stampede: str = "lock",
    alias: str | None = None,
    cache: str | None = None,
    key_prefix: str | None = None,
    statuses: Iterable[int] | None = None,
) -> Callable[[ViewT], ViewT]:
    """Cache the decorated view's responses for ``timeout`` seconds, safely.

    The key holds the scheme, validated host, method, path, query string (sorted; only
    ``query_params`` when given), active language and time zone, and the request's value of
    each ``vary_on_headers`` header and ``vary_on_cookies`` cookie (declared dimensions are also
    added to the response's ``Vary``). Authenticated requests, requests with a session or an
    ``Authorization`` header, and responses that set cookies, use the CSRF token, are private or
    no-store/no-cache, vary on ``*``, stream or have a status outside ``statuses`` (default
    ``CACHEWISE_CACHEABLE_STATUSES``) are never stored. With ``per_user=True`` authenticated
    requests are cached too, keyed by user and marked ``Cache-Control: private``.

    ``cache`` and ``key_prefix`` are Django's names and keep working (``cache`` is ``alias``).
    Works on sync and async views; the wrapper is chosen at decoration time.
    """
    if stampede not in _STAMPEDE_MODES:
        raise ValueError(f"stampede must be one of {_STAMPEDE_MODES}, got {stampede!r}")
    if timeout is not None and timeout < 0:
        raise ValueError(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    key = KeyPolicy.build(
        vary_on_headers=vary_on_headers,
        vary_on_cookies=vary_on_cookies,
        query_params=query_params,
        per_user=per_user,
        key_prefix=key_prefix or "",
        source="view",
    )
    page_cache = PageCache(
        PagePolicy(
            key=key,
            timeout=timeout,
            alias=alias or cache,
            stampede=stampede,
            statuses=None if statuses is None else frozenset(statuses),
        )
    )

    def decorator(view: ViewT) -> ViewT:
        return _wrap(view, page_cache)

    return decorator


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
