"""``AdvisorMiddleware``: record what each route costs and whether its answer could be shared.

Put it FIRST in ``MIDDLEWARE`` (``cachewise.W070`` says so otherwise): it then times the whole
request, sees answers the site-wide cache middleware gives without reaching the view, and sees the
``Set-Cookie`` and ``Vary: Cookie`` that the session and CSRF middleware add on the way out::

    MIDDLEWARE = ["cachewise.monitoring.advisor.middleware.AdvisorMiddleware", ...]

Recording is on while the middleware is installed, unless ``CACHEWISE_ADVISOR_RECORD = False``;
``CACHEWISE_ADVISOR_INCLUDE``/``_EXCLUDE`` (path regexes) choose the paths. What is recorded and
what it costs: docs/advisor.md. Whether a response could be shared is decided by the page cache's
own rules (:func:`cachewise.pagecache.rules.response_bypass_reason`), so "storable" here means
exactly "``cache_page`` would store it".
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBase
from django.urls import Resolver404, resolve

from cachewise.conf import conf
from cachewise.monitoring.metrics import observe_lookups
from cachewise.pagecache.rules import (
    PERSONAL_REASONS,
    _credential_sent,
    _header_reason,
    _response_reason,
    _session_written,
)

from . import queries, store
from .recorder import Observation, recorder
from .settings import advisor_settings

__all__ = ["AdvisorMiddleware", "route_of", "visitor_of"]

_SAFE_METHODS = frozenset({"GET", "HEAD"})
#: Refusals that mean "this answer is one visitor's": never advise sharing the page.
UNSHAREABLE = PERSONAL_REASONS | {"cache-control-private"}
UNRESOLVED = "(unresolved)"


@dataclass(frozen=True)
class _State:
    on: bool
    include: tuple[Any, ...]
    exclude: tuple[Any, ...]
    sample_rate: float
    digest_rate: float
    statuses: frozenset[int]

    def wants(self, path: str) -> bool:
        if any(pattern.search(path) for pattern in self.exclude):
            return False
        return not self.include or any(pattern.search(path) for pattern in self.include)


class _Holder:
    state: _State | None = None


_holder = _Holder()


def _current_state() -> _State:
    state = _holder.state
    if state is None:
        s = advisor_settings
        state = _State(s.RECORD, s.INCLUDE, s.EXCLUDE, s.SAMPLE_RATE, s.DIGEST_RATE, conf.CACHEABLE_STATUSES)
        recorder.configure(max_routes=s.MAX_ROUTES, max_urls=s.MAX_URLS, max_queries=s.MAX_QUERIES)
        _holder.state = state
        if state.on:
            store.start()
    return state


def _forget(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("CACHEWISE_") or setting == "MIDDLEWARE":
        _holder.state = None


setting_changed.connect(_forget, dispatch_uid="cachewise.monitoring.advisor.middleware")


def _after_fork() -> None:
    _holder.state = None  # the child reads its settings again and starts its own flush thread


if hasattr(os, "register_at_fork"):  # pragma: no branch - POSIX
    os.register_at_fork(after_in_child=_after_fork)


def route_of(request: HttpRequest) -> str:
    """The route of ``request``: its URL name (with namespaces), else the view's dotted path."""
    match = request.resolver_match
    if match is None:  # answered before URL resolution (the site-wide cache), or a 404
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return UNRESOLVED
    name = match.view_name if match.url_name else match._func_path
    return name.replace("|", "/")


def visitor_of(request: HttpRequest) -> int:
    """0 for a request without credentials (as the page cache judges them), else their hash.

    ``request.user`` is never evaluated: presence of the session cookie, ``Authorization`` or a
    ``CACHEWISE_CREDENTIAL_COOKIES``/``_HEADERS`` credential decides, as it does for the page cache.
    """
    session = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    authorization = request.META.get("HTTP_AUTHORIZATION")
    if session is None and authorization is None and not _credential_sent(request):
        return 0
    return hash((session, authorization)) or 1


def _body(response: HttpResponseBase) -> bytes | None:
    return None if response.streaming else response.content  # type: ignore[attr-defined]


def refusal(request: HttpRequest, response: HttpResponseBase, statuses: frozenset[int]) -> str | None:
    """Why the page cache would refuse to store ``response`` (its own rules), or None.

    The same checks as :func:`cachewise.pagecache.rules.response_bypass_reason`, except that
    messages count only when the view showed or queued some: loading a visitor's stored messages
    just to ask (a cookie decode and a session read) would cost more than the rest together,
    and messages the page did not show are not in it.
    """
    reason = _response_reason(response, statuses) or _header_reason(response)
    if reason is not None:
        return reason
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return "csrf"
    if _session_written(request):
        return "session"
    storage: Any = getattr(request, "_messages", None)
    if storage is not None and (storage.used or getattr(storage, "_queued_messages", None)):
        return "messages"
    return None


def _shareable(
    request: HttpRequest, response: HttpResponseBase, state: _State, counts: dict[str, float]
) -> None:
    reason = refusal(request, response, state.statuses)
    if reason is None:
        counts["storable"] = 1
    elif reason in UNSHAREABLE:
        counts["personal"] = 1


def _reuse(
    request: HttpRequest, route: str, body: bytes | None, state: _State, counts: dict[str, float]
) -> None:
    digest = None
    if body is not None and random.random() < state.digest_rate:
        digest = hashlib.blake2b(body, digest_size=8).digest()
        counts["digests"] = 1
    now = time.time()
    url = request.path + "?" + request.META.get("QUERY_STRING", "")  # as sent: no re-quoting cost
    before, previous = recorder.seen_url(route, url, now, digest)
    if before is not None:
        counts["url_repeats"] = 1
        # Between two *recorded* requests of a URL lie 1/rate requests of it on average.
        counts["url_gap_seconds"] = (now - before) * min(state.sample_rate, 1.0)
    if digest is not None and previous is not None:
        counts["digest_pairs"] = 1
        if previous == digest:
            counts["digest_same"] = 1


def record(
    request: HttpRequest, response: HttpResponseBase, observation: Observation, elapsed: float, state: _State
) -> None:
    """Add one finished request to its route's counters."""
    route = route_of(request)
    counts: dict[str, float] = {
        "requests": 1,
        "seconds": elapsed,
        "queries": observation.queries,
        "db_seconds": observation.db_seconds,
        "db_repeat_seconds": observation.repeat_seconds,
        "repeat_queries": observation.repeat_queries,
    }
    anonymous = observation.visitor == 0
    if anonymous:
        counts["anonymous"] = 1
    if observation.misses:
        counts["miss_requests"] = 1
    elif observation.hits:
        counts["hit_requests"] = 1
    body = _body(response)
    if body is not None:
        counts["bytes"] = len(body)
    headers = response.headers
    if headers.get("Content-Type", "").startswith("text/html"):
        counts["html"] = 1
    if request.method in _SAFE_METHODS:
        counts["gets"] = 1
        if response.cookies:
            counts["set_cookie"] = 1
        if "Vary" in headers and "cookie" in headers["Vary"].lower():
            counts["vary_cookie"] = 1
        if anonymous:
            _shareable(request, response, state, counts)
        _reuse(request, route, body, state, counts)
    recorder.add(route, counts, observation.labels, observation.kinds, 1.0 / min(state.sample_rate, 1.0))


def _unsampled(request: HttpRequest, response: HttpResponseBase) -> None:
    # Not recorded, except what rules page caching out: a GET response that sets a cookie.
    if response.cookies and request.method in _SAFE_METHODS:
        recorder.add(route_of(request), {"set_cookie": 1})


class AdvisorMiddleware:
    """Record every request of the chosen paths for ``manage.py cachewise advise``."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        queries.install_all()

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        state = _current_state()
        if not state.on or not state.wants(request.path_info):
            return self.get_response(request)
        if state.sample_rate < 1.0 and random.random() >= state.sample_rate:
            response = self.get_response(request)
            _unsampled(request, response)
            return response
        observation = Observation(recorder, visitor_of(request))
        token, watching = queries.current.set(observation), observe_lookups(observation)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
        finally:
            elapsed = time.perf_counter() - started
            watching.var.reset(watching)
            queries.current.reset(token)
        record(request, response, observation, elapsed, state)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        state = _current_state()
        get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = self.get_response
        if not state.on or not state.wants(request.path_info):
            return await get_response(request)
        if state.sample_rate < 1.0 and random.random() >= state.sample_rate:
            response = await get_response(request)
            _unsampled(request, response)
            return response
        observation = Observation(recorder, visitor_of(request))
        token, watching = queries.current.set(observation), observe_lookups(observation)
        started = time.perf_counter()
        try:
            response = await get_response(request)
        finally:
            elapsed = time.perf_counter() - started
            watching.var.reset(watching)
            queries.current.reset(token)
        record(request, response, observation, elapsed, state)
        return response
