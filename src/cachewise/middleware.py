"""Site-wide page cache middleware with the same rules as :func:`cachewise.decorators.cache_page`.

Drop-in for Django's pair, in the same places::

    MIDDLEWARE = [
        "cachewise.middleware.UpdateCacheMiddleware",   # first
        ...session, common, csrf, auth, locale, messages...
        "cachewise.middleware.FetchFromCacheMiddleware",  # last
    ]

``FetchFromCacheMiddleware`` does the caching, innermost, where ``request.user``, the session and
the active language are known: it serves hits and fills misses (single flight) with the
response of the view, exactly like the decorator. The outer middleware then run on every
response, hit or not, so what they add per request (session cookie, ``Vary: Cookie``,
``Content-Language``, compression) is never frozen into the cache.
``UpdateCacheMiddleware`` guards the *final* response: one that sets a cookie is marked
``Cache-Control: private`` so no proxy or CDN shares it, and if this very request had just
stored its page, that page is deleted (an outer middleware personalised it in a way the view
could not see).

Settings: Django's ``CACHE_MIDDLEWARE_SECONDS``, ``CACHE_MIDDLEWARE_ALIAS`` and
``CACHE_MIDDLEWARE_KEY_PREFIX``; ``CACHEWISE_MIDDLEWARE_INCLUDE`` / ``CACHEWISE_MIDDLEWARE_EXCLUDE``
(path regexes, ``re.search``; exclude wins; an empty include list means every path) and
``CACHEWISE_CACHEABLE_STATUSES``. All are read per request.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control

from .conf import conf
from .exceptions import OUTAGE_ERRORS
from .pagecache.key import KeyPolicy
from .pagecache.rules import cache_control_directives, credential_header_sent
from .pagecache.serve import PageCache, PagePolicy, log_failure
from .unavailable import CacheUnavailableMiddleware

__all__ = [
    "CacheUnavailableMiddleware",
    "FetchFromCacheMiddleware",
    "UpdateCacheMiddleware",
    "path_excluded",
    "site_page_cache",
]

GetResponse = Callable[[HttpRequest], Any]


def path_excluded(path: str) -> bool:
    """True when the include/exclude settings rule ``path`` out of the site-wide cache."""
    if any(re.search(pattern, path) for pattern in conf.MIDDLEWARE_EXCLUDE):
        return True
    include = conf.MIDDLEWARE_INCLUDE
    return bool(include) and not any(re.search(pattern, path) for pattern in include)


def site_page_cache() -> PageCache:
    """The page cache configured by the ``CACHE_MIDDLEWARE_*`` settings (read now)."""
    return PageCache(
        PagePolicy(
            key=KeyPolicy.build(key_prefix=settings.CACHE_MIDDLEWARE_KEY_PREFIX, source="site"),
            timeout=int(settings.CACHE_MIDDLEWARE_SECONDS),
            alias=settings.CACHE_MIDDLEWARE_ALIAS,
            name="site",
        )
    )


class _Middleware(abc.ABC):
    """Sync and async capable: runs in the mode of the handler chain it is given."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.acall(request)
        return self.call(request)

    @abc.abstractmethod
    def call(self, request: HttpRequest) -> HttpResponseBase:
        """Handle ``request`` in a sync chain."""

    @abc.abstractmethod
    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        """Handle ``request`` in an async chain."""


class FetchFromCacheMiddleware(_Middleware):
    """Serve GET/HEAD pages from the cache and fill it; put it last in ``MIDDLEWARE``."""

    def call(self, request: HttpRequest) -> HttpResponseBase:
        page_cache = site_page_cache()
        if path_excluded(request.path):
            return page_cache.bypass(request, self.get_response(request), "excluded-path")
        return page_cache.serve(request, self.get_response)

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        page_cache = site_page_cache()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if path_excluded(request.path):
            return page_cache.bypass(request, await get_response(request), "excluded-path")
        return await page_cache.aserve(request, get_response)


def _personalised_by_outer_middleware(response: HttpResponseBase) -> bool:
    personal = bool(response.cookies) or credential_header_sent(response)
    return personal and "private" not in cache_control_directives(response)


class UpdateCacheMiddleware(_Middleware):
    """Guard the final response; put it first in ``MIDDLEWARE`` (outermost)."""

    def call(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = self.get_response(request)
        stored = self._guard(request, response)
        if stored is not None:
            self._forget(stored)
        return response

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        response: HttpResponseBase = await self.get_response(request)
        stored = self._guard(request, response)
        if stored is not None:
            await self._aforget(stored)
        return response

    def _guard(self, request: HttpRequest, response: HttpResponseBase) -> tuple[str, tuple[str, ...]] | None:
        """Mark a final response that sets a cookie or a credential header private; return what
        this request stored, if so."""
        if not _personalised_by_outer_middleware(response):
            return None
        patch_cache_control(response, private=True)
        stored: tuple[str, tuple[str, ...]] | None = getattr(request, "_cachewise_stored", None)
        if stored is not None:
            reason = "set-cookie" if response.cookies else "credential"
            site_page_cache().bypass(request, response, reason)
        return stored

    @staticmethod
    def _forget(stored: tuple[str, tuple[str, ...]]) -> None:
        alias, keys = stored
        try:
            caches[alias].delete_many(list(keys))
        except OUTAGE_ERRORS as exc:  # unreachable now: the page stays until its timeout (docs/views.md)
            log_failure(alias, exc)

    @staticmethod
    async def _aforget(stored: tuple[str, tuple[str, ...]]) -> None:
        alias, keys = stored
        try:
            await caches[alias].adelete_many(list(keys))
        except OUTAGE_ERRORS as exc:  # unreachable now: the page stays until its timeout (docs/views.md)
            log_failure(alias, exc)
