"""Serve a request from the page cache or fill it, for the decorator and the middleware alike.

Flow of one request (sync and async share every step but the awaits):

1. Request rules (:func:`~cachewise.pagecache.rules.request_bypass_reason`): a personalised
   request never reads the shared cache; the view runs and the response is marked private. A
   query parameter the view did not declare bypasses the cache too (bounded growth).
2. With a near cache, a page whose fresh verdict it still holds
   (:func:`~cachewise.pagecache.freshness.recall`) and whose Vary snapshot matches the request
   is served from memory at once: no Redis call, nothing prepared for a miss (sync views;
   async views take step 3, from a worker thread).
3. One ``GET`` of the base key through the single-flight fill. A page whose Vary snapshot
   matches the request is served (a *hit*: one round trip). A pointer (the response varies on
   undeclared headers) costs a second ``GET`` of the variant key.
4. On a miss exactly one request renders per expiry; the response rules, then the view's entry
   budget (:mod:`.budget`), decide whether what it rendered may be stored. Waiters get the
   stored page, or render for themselves when it was not.
5. Any cache failure fails open: the view runs (once) and the response says ``cache-unavailable``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_cache_control, patch_response_headers, patch_vary_headers

from cachewise.compute.api import NoStore, acompute_missing, compute_missing
from cachewise.compute.stampede import Capped, StampedeMode
from cachewise.conf import conf, django_setting, hot_setting
from cachewise.exceptions import OUTAGE_ERRORS
from cachewise.monitoring.metrics import record
from cachewise.signals import cache_bypassed
from cachewise.store.adapter import Held
from cachewise.store.choice import get_store
from cachewise.store.fill_budget import FillBudget

from .budget import aadmit, admit, budget_key, per_window
from .entry import DEBUG_HEADER, Page, Pointer, page_value, parse, pointer_value, response_maker, to_response
from .freshness import Freshness, attempt, learned, recall, stamped, tracker_for
from .key import NAMESPACE, QUERY, KeyPolicy, base_key, undeclared_param, variant_key, vary_snapshot
from .outage import Outage, unwatch, watch
from .rules import (
    PERSONAL_REASONS,
    cache_control_directives,
    request_bypass_reason,
    response_bypass_reason,
    response_max_age,
    vary_names,
)
from .stamp import remember_view, unwrap, view_hint
from .tracking import Tracker, install_all, track

__all__ = ["PageCache", "PagePolicy", "log_failure"]

logger = logging.getLogger("cachewise.pagecache")
_FAILURE_LOG_INTERVAL = 60.0
_last_failure_log: dict[str, float] = {}

GetResponse = Callable[[HttpRequest], HttpResponseBase]
AGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


@dataclass(frozen=True)
class PagePolicy:
    """How one decorated view (or the site-wide middleware) caches its pages."""

    key: KeyPolicy
    timeout: int | None = None  # None: settings.CACHE_MIDDLEWARE_SECONDS, read per request
    alias: str | None = None  # None: DEFAULT_CACHE_ALIAS
    stampede: StampedeMode = "lock"
    statuses: frozenset[int] | None = None  # None: CACHEWISE_CACHEABLE_STATUSES, read per request
    depends_on: tuple[Any, ...] = ()  # models, instances, Namespaces besides the tracked queries
    track_queries: bool | None = None  # None: CACHEWISE_PAGE_TRACK_QUERIES, read per fill
    name: str = ""  # the view's dotted path: whose entry budget a fill counts against
    max_entries: int | None = None  # None: CACHEWISE_PAGE_MAX_ENTRIES (MIDDLEWARE_ for the site)


class _Run:
    """What happened to one request: the response it rendered, why that was not stored."""

    __slots__ = (
        "budget",
        "fresh",
        "outage",
        "reason",
        "response",
        "stored",
        "timeout",
        "variant",
        "view_raised",
    )

    def __init__(self) -> None:
        self.budget: FillBudget | None = None
        self.fresh = Freshness()
        self.outage = Outage()
        self.stored: list[str] = []
        self.response: HttpResponseBase | None = None
        self.reason: str | None = None
        self.view_raised = False
        self.timeout = 0
        self.variant: tuple[str, Any] | None = None


def log_failure(alias: str, exc: Exception) -> None:
    """Log that the cache ``alias`` failed and the request was served without it (rate-limited)."""
    # At most one log line per alias and minute: a dead cache must not flood the logs.
    now = time.monotonic()
    if now - _last_failure_log.get(alias, -_FAILURE_LOG_INTERVAL) >= _FAILURE_LOG_INTERVAL:
        _last_failure_log[alias] = now
        logger.warning("page cache %r unavailable, serving uncached: %r", alias, exc, exc_info=exc)


def _deferred(response: HttpResponseBase) -> bool:
    # A TemplateResponse not yet rendered: the handler would render it after the view returns,
    # but the content (and the CSRF token use the template may make) is needed now to store it.
    return getattr(response, "is_rendered", True) is False


class PageCache:
    """The page cache of one :class:`PagePolicy`: ``serve()`` for sync, ``aserve()`` for async."""

    def __init__(self, policy: PagePolicy) -> None:
        self.policy = policy
        key = policy.key
        self._declared = (*key.vary_on_headers, *(("Cookie",) if key.vary_on_cookies else ()))
        self._budget = budget_key(key.source, f"{key.key_prefix}:{policy.name}")
        # Until when this process skips fills because the budget was found spent (monotonic).
        # Per (alias, KEY_PREFIX): each has its own budget counter. Bounded by the aliases.
        self._spent_until: dict[tuple[str, str], float] = {}
        # The last page parsed, with the stored value it came from (kept alive, so compared by
        # identity) and the maker of the responses it answers: one page per view or site cache.
        self._last_parsed: tuple[Any, Page, Callable[[], HttpResponseBase]] | None = None

    # -- policy values read per request (override_settings works) ---------------------------

    def alias(self) -> str:
        """The cache alias pages are stored in."""
        return self.policy.alias or DEFAULT_CACHE_ALIAS

    def timeout(self) -> int:
        """Seconds a page is stored (before a smaller ``max-age`` from the view)."""
        if self.policy.timeout is not None:
            return self.policy.timeout
        return int(django_setting("CACHE_MIDDLEWARE_SECONDS"))

    def max_entries(self) -> int:
        """Entries of this view (or site) the cache may hold at once."""
        if self.policy.max_entries is not None:
            return self.policy.max_entries
        site = self.policy.key.source == "site"
        return conf.MIDDLEWARE_MAX_ENTRIES if site else conf.PAGE_MAX_ENTRIES

    def request_reason(self, request: HttpRequest) -> str | None:
        """Why ``request`` is served without the cache (credentials, undeclared query), or None."""
        reason = request_bypass_reason(request, per_user=self.policy.key.per_user)
        if reason is None and undeclared_param(request, self.policy.key.allowed_params()) is not None:
            return "query-param"
        return reason

    # -- sync -------------------------------------------------------------------------------

    def serve(self, request: HttpRequest, get_response: GetResponse) -> HttpResponseBase:
        """Answer ``request`` from the cache, or by ``get_response`` (filling the cache if allowed)."""
        reason = self.request_reason(request)
        if reason is not None:
            return self.bypass(request, self._render(request, get_response, _Run()), reason)
        if self.timeout() <= 0:  # cache_page(0): Django's way of saying "do not store"
            return self.miss(request, self._render(request, get_response, _Run()))
        key = base_key(request, self.policy.key)  # outside the try: a bad host is a 400, not an outage
        # A near-cached page whose fresh verdict is held: answered from memory, no Redis call.
        found = recall(self.alias(), key)
        if found is not None:
            response = self._recalled(request, found)
            if response is not None:
                return response
        run = _Run()
        run.outage, token = watch()
        try:
            return self._lookup(request, get_response, run, key, found)
        except OUTAGE_ERRORS as exc:  # fail open; a server error (WRONGTYPE, OOM) propagates
            if run.view_raised:
                raise
            log_failure(self.alias(), exc)
            response = run.response if run.response is not None else self._render(request, get_response, run)
            return self.bypass(request, response, "cache-unavailable")
        finally:
            unwatch(token)

    def _recalled(self, request: HttpRequest, value: Any) -> HttpResponseBase | None:
        """The response of a page recalled by the near cache when nothing more is needed: a page
        (not a vary pointer) stored for this request's Vary values. Else None: the caller goes
        the general way with ``value``."""
        item = self._parsed(value)
        if isinstance(item, Page) and self._vary_of(request, item) == item.vary:
            return self.hit(request, item)
        return None

    def _lookup(
        self, request: HttpRequest, get_response: GetResponse, run: _Run, key: str, found: Any = None
    ) -> HttpResponseBase:
        if found is None:
            found = self._fetch(request, get_response, run, key, None, key)
        item = self._followed(request, run, found)
        if isinstance(item, Pointer):
            vkey = variant_key(key, vary_snapshot(request, item.names, self.policy.key.vary_on_cookies))
            item = self._followed(
                request, run, self._fetch(request, get_response, run, key, item.names, vkey)
            )
        for stored in self._to_shorten(run):
            caches[self.alias()].touch(stored, run.timeout)
        response = self._finish(request, run, item)
        if response is None:
            response = self._rendered(request, run, self._render(request, get_response, run))
        return response

    def _fetch(
        self,
        request: HttpRequest,
        get_response: GetResponse,
        run: _Run,
        key: str,
        names: tuple[str, ...] | None,
        cache_key: str,
    ) -> Any:
        # The hit: page and counters in one round trip. Else the single-flight fill.
        run.fresh.hint = view_hint(self._budget)
        found = attempt(self.alias(), request, cache_key, run.fresh, self._lock_lease())
        held, run.fresh.held = run.fresh.held, None
        if found is not None or self._spent(run):
            if held is not None:
                self._unfilled(cache_key, held)
            return found
        fill = lambda: self._fill(request, get_response, run, key, names)  # noqa: E731
        return self._counted(request, run, compute_missing(cache_key, fill, held=held, **self._opts()))

    def _unfilled(self, cache_key: str, held: Held) -> None:
        # The read took the lock, then the budget was found spent: no fill, free it (waiters
        # render for themselves, as after any fill that stored nothing).
        get_store(self.alias()).release(cache_key, held.token, note="nostore")

    def _lock_lease(self) -> float | None:
        # The miss' lock is taken by the page read itself when the fill would lock anyway
        # (stampede "lock" or "xfetch") and this process does not know the budget spent.
        # Asked on every request, hits included: no cache lookup unless a budget was spent.
        if self.policy.stampede == "none" or (self._spent_until and self._spending()):
            return None
        return float(hot_setting("LOCK_LEASE"))

    def _fill(
        self,
        request: HttpRequest,
        get_response: GetResponse,
        run: _Run,
        key: str,
        names: tuple[str, ...] | None,
    ) -> Any:
        with track(self._tracker(run)) as tracker:
            response = self._render(request, get_response, run)
            if _deferred(response):
                response.render()  # type: ignore[attr-defined]
        value = stamped(self._storable(request, response, run, key, names), tracker)
        remember_view(self._budget, learned(tracker, run.fresh))
        if run.variant is None:
            value = self._capped(run, value)
        elif not isinstance(value, NoStore) and not admit(*self._budget_args(run)):
            value = self._refused(run)
        if run.variant is not None:
            caches[self.alias()].set(run.variant[0], stamped(run.variant[1], tracker), run.timeout)
        return self._noted(request, run, key, names, value)

    def _tracker(self, run: _Run) -> Tracker:
        # Runs in the thread that will query (the sync thread for async views): install the
        # query wrapper on its connections, and read the depends_on versions before the render.
        install_all()
        return tracker_for(run.fresh, self.policy.track_queries, self.policy.depends_on)

    def _render(self, request: HttpRequest, get_response: GetResponse, run: _Run) -> HttpResponseBase:
        try:
            response = get_response(request)
        except BaseException:
            run.view_raised = True
            raise
        run.response = self._declare_vary(response)
        return response

    # -- async ------------------------------------------------------------------------------

    async def aserve(self, request: HttpRequest, get_response: AGetResponse) -> HttpResponseBase:
        """Async :meth:`serve`: the view runs on the caller's event loop; the fill goes through
        :func:`~cachewise.compute.api.aget_or_compute` (coroutines of one loop share one fetch)."""
        reason = self.request_reason(request)
        if reason is not None:
            return self.bypass(request, await self._arender(request, get_response, _Run()), reason)
        run = _Run()
        if self.timeout() <= 0:
            return self.miss(request, await self._arender(request, get_response, run))
        key = base_key(request, self.policy.key)
        run.outage, token = watch()
        try:
            return await self._alookup(request, get_response, run, key)
        except OUTAGE_ERRORS as exc:  # fail open; a server error (WRONGTYPE, OOM) propagates
            if run.view_raised:
                raise
            log_failure(self.alias(), exc)
            if run.response is not None:
                return self.bypass(request, run.response, "cache-unavailable")
            return self.bypass(request, await self._arender(request, get_response, run), "cache-unavailable")
        finally:
            unwatch(token)

    async def _alookup(
        self, request: HttpRequest, get_response: AGetResponse, run: _Run, key: str
    ) -> HttpResponseBase:

        item = self._followed(request, run, await self._afetch(request, get_response, run, key, None, key))
        if isinstance(item, Pointer):
            vkey = variant_key(key, vary_snapshot(request, item.names, self.policy.key.vary_on_cookies))
            value = await self._afetch(request, get_response, run, key, item.names, vkey)
            item = self._followed(request, run, value)
        for stored in self._to_shorten(run):
            await caches[self.alias()].atouch(stored, run.timeout)
        response = self._finish(request, run, item)
        if response is None:
            response = self._rendered(request, run, await self._arender(request, get_response, run))
        return response

    async def _afetch(
        self,
        request: HttpRequest,
        get_response: AGetResponse,
        run: _Run,
        key: str,
        names: tuple[str, ...] | None,
        cache_key: str,
    ) -> Any:
        run.fresh.hint = view_hint(self._budget)
        found = await sync_to_async(attempt, thread_sensitive=False)(
            self.alias(), request, cache_key, run.fresh, self._lock_lease()
        )
        held, run.fresh.held = run.fresh.held, None
        if found is not None or self._spent(run):
            if held is not None:
                await sync_to_async(self._unfilled, thread_sensitive=False)(cache_key, held)
            return found

        async def fill() -> Any:
            return await self._afill(request, get_response, run, key, names)

        missing = await acompute_missing(cache_key, fill, held=held, **self._opts())
        return self._counted(request, run, missing)

    async def _afill(
        self,
        request: HttpRequest,
        get_response: AGetResponse,
        run: _Run,
        key: str,
        names: tuple[str, ...] | None,
    ) -> Any:
        # The tracker is set in this context; sync_to_async hands a copy of it to the sync thread.
        tracker = await sync_to_async(self._tracker, thread_sensitive=True)(run)
        with track(tracker):
            response = await self._arender(request, get_response, run)
            if _deferred(response):
                # Templates may query the database: render in Django's sync thread, like the handler.
                await sync_to_async(response.render, thread_sensitive=True)()  # type: ignore[attr-defined]
        value = stamped(self._storable(request, response, run, key, names), tracker)
        remember_view(self._budget, learned(tracker, run.fresh))
        if run.variant is None:
            value = self._capped(run, value)
        elif not isinstance(value, NoStore) and not await aadmit(*self._budget_args(run)):
            value = self._refused(run)
        if run.variant is not None:
            await caches[self.alias()].aset(run.variant[0], stamped(run.variant[1], tracker), run.timeout)
        return self._noted(request, run, key, names, value)

    async def _arender(self, request: HttpRequest, get_response: AGetResponse, run: _Run) -> HttpResponseBase:
        try:
            response = await get_response(request)
        except BaseException:
            run.view_raised = True
            raise
        run.response = self._declare_vary(response)
        return response

    # -- shared steps -----------------------------------------------------------------------

    def _to_shorten(self, run: _Run) -> list[str]:
        # The fill stores for the decorator's timeout; a smaller max-age from the view wins, as
        # in Django (one more round trip, on fills only).
        return run.stored if 0 < run.timeout < self.timeout() else []

    def _opts(self) -> dict[str, Any]:
        return {"ttl": self.timeout(), "stampede": self.policy.stampede, "alias": self.alias()}

    def _declare_vary(self, response: HttpResponseBase) -> HttpResponseBase:
        # Declared dimensions go on every response, cached or not, so caches downstream
        # (browsers, proxies, CDNs) key by them too.
        if self._declared:
            patch_vary_headers(response, self._declared)
        return response

    def _storable(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        run: _Run,
        key: str,
        names: tuple[str, ...] | None,
    ) -> Any:
        """What to store for ``response`` (a page, a pointer) or a NoStore, deciding by the rules."""
        statuses = self.policy.statuses or conf.CACHEABLE_STATUSES
        run.reason = response_bypass_reason(request, response, statuses)
        if run.reason is not None or not isinstance(response, HttpResponse):
            return NoStore(None)
        run.timeout = self._stored_timeout(response)
        if run.timeout <= 0:
            return NoStore(None)
        varies = vary_names(response)
        # The raw query string is stored like a Vary value: served only to the same full path.
        snapshot = vary_snapshot(request, (*varies, QUERY), self.policy.key.vary_on_cookies)
        page = page_value(response, snapshot)
        extra = tuple(n for n in varies if n not in self.policy.key.covered)
        if not extra:
            return page
        if names is not None:
            # Filling a variant: store only if the pointer still names every extra header.
            return page if set(extra) <= set(names) else NoStore(None)
        run.variant = (variant_key(key, vary_snapshot(request, extra, self.policy.key.vary_on_cookies)), page)
        return pointer_value(extra)

    def _budget_args(self, run: _Run) -> tuple[str, str, int, int, int]:
        # A pointer and its variant are two entries.
        return (self.alias(), self._budget, 1 + (run.variant is not None), self.timeout(), self.max_entries())

    def _budget_scope(self) -> tuple[str, str]:
        alias = self.alias()
        return alias, str(getattr(caches[alias], "key_prefix", ""))

    def _spending(self) -> bool:
        return time.monotonic() < self._spent_until.get(self._budget_scope(), 0.0)

    def _spent(self, run: _Run) -> bool:
        # A miss while this process recently found the budget spent: render without the fill
        # (no lock, no fence, no admission round trip), so an over-budget flood leaves no key.
        if not self._spending():
            return False
        run.reason = "entry-cap"
        return True

    def _capped(self, run: _Run, value: Any) -> Any:
        # One entry, counted by the fill's own script (no round trip of its own). A pointer
        # and its variant are two entries written apart: they are admitted before, by admit().
        if isinstance(value, NoStore):
            return value
        run.budget = FillBudget(
            self._budget,
            1,
            self.timeout(),
            per_window(self.max_entries()),
            lambda: admit(*self._budget_args(run)),
        )
        return Capped(value, run.budget)

    def _counted(self, request: HttpRequest, run: _Run, value: Any) -> Any:
        # The fill's budget refused this request's page: as if admit() had said no.
        if run.budget is not None and run.budget.refused:
            self._refused(run)
            if run.stored:
                run.stored.pop()
            request._cachewise_stored = (self.alias(), tuple(run.stored))  # type: ignore[attr-defined]
        return unwrap(value)

    def _refused(self, run: _Run) -> NoStore[None]:
        # Over budget: nothing of this fill is stored, neither the page nor its variant. Other
        # misses of this process skip the fill for a while (at most 5 s: the window may end).
        run.reason, run.variant = "entry-cap", None
        self._spent_until[self._budget_scope()] = time.monotonic() + min(5.0, float(self.timeout()))
        return NoStore(None)

    def _noted(
        self, request: HttpRequest, run: _Run, key: str, names: tuple[str, ...] | None, value: Any
    ) -> Any:
        # Remember what this request stored, for UpdateCacheMiddleware's final-response guard.
        if not isinstance(value, NoStore):
            if names is not None:
                key = variant_key(key, vary_snapshot(request, names, self.policy.key.vary_on_cookies))
            run.stored.append(key)
            if run.variant is not None:
                run.stored.append(run.variant[0])
            request._cachewise_stored = (self.alias(), tuple(run.stored))  # type: ignore[attr-defined]
        return value

    def _stored_timeout(self, response: HttpResponse) -> int:
        timeout = self.timeout()
        max_age = response_max_age(cache_control_directives(response))
        if max_age is not None:
            timeout = min(timeout, max_age)
        # Django's headers for caches downstream; stored with the page so a hit repeats them.
        patch_response_headers(response, timeout)
        if self.policy.key.per_user:
            patch_cache_control(response, private=True)
        return timeout

    def _followed(self, request: HttpRequest, run: _Run, value: Any) -> Page | Pointer | None:
        # When this request rendered, its own response is the answer, stored or not.
        if run.response is not None:
            return None
        return self._parsed(value)

    def _parsed(self, value: Any) -> Page | Pointer | None:
        # A near-cached page comes back as the same object until it changes: parsed once.
        last = self._last_parsed
        if last is not None and last[0] is value:
            return last[1]
        item = parse(value)
        if isinstance(item, Page):
            self._last_parsed = (value, item, response_maker(item))
        return item

    def _finish(
        self, request: HttpRequest, run: _Run, item: Page | Pointer | None
    ) -> HttpResponseBase | None:
        if run.response is not None:
            return self._rendered(request, run, run.response)
        if isinstance(item, Page):
            snapshot = self._vary_of(request, item)
            if snapshot == item.vary:
                return self.hit(request, item)
            if dict(snapshot).get(QUERY) != dict(item.vary).get(QUERY):
                run.reason = "query-form"  # rendered for ?a=1, asked as ?a=%31: render apart
        # An unknown format, a page for another spelling of the query string or (only with a
        # broken key) for other Vary values: the caller renders and stores nothing.
        return None

    def _vary_of(self, request: HttpRequest, page: Page) -> tuple[tuple[str, Any], ...]:
        # The request's values of what ``page`` varies on, to compare with the page's own.
        return vary_snapshot(request, [name for name, _ in page.vary], self.policy.key.vary_on_cookies)

    # -- outcomes ---------------------------------------------------------------------------

    def hit(self, request: HttpRequest, page: Page) -> HttpResponseBase:
        """Build the response of a cached ``page``."""
        # Hits and misses are counted by the fill (cachewise.compute.stampede) under namespace "page".
        last = self._last_parsed
        response = last[2]() if last is not None and last[1] is page else to_response(page)
        if hot_setting("DEBUG_HEADERS"):
            response[DEBUG_HEADER] = "hit"
        return response

    def _rendered(self, request: HttpRequest, run: _Run, response: HttpResponseBase) -> HttpResponseBase:
        # The view ran: say why its response was not stored, if it was not.
        reason = run.reason or ("cache-unavailable" if run.outage.seen else None)
        return self.miss(request, response) if reason is None else self.bypass(request, response, reason)

    def miss(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        """Mark ``response`` as rendered by the view on a cache miss."""
        if hot_setting("DEBUG_HEADERS"):
            response[DEBUG_HEADER] = "miss"
        return response

    def bypass(self, request: HttpRequest, response: HttpResponseBase, reason: str) -> HttpResponseBase:
        """Report that ``response`` was served without the cache because of ``reason``."""
        alias = self.alias()
        record(f"bypass:{reason}", alias, NAMESPACE)
        cache_bypassed.send(sender=PageCache, alias=alias, reason=reason, path=request.path)
        if reason in PERSONAL_REASONS:
            # One visitor's page: make sure no shared cache downstream keeps it either.
            patch_cache_control(response, private=True)
        if hot_setting("DEBUG_HEADERS"):
            response[DEBUG_HEADER] = f"bypass; reason={reason}"
        return response
