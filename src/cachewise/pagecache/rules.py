"""Which requests and responses the page cache may store, and why not when it may not.

Every refusal names one reason from :data:`BYPASS_REASONS`, so users can see in the
``X-Cachewise`` debug header, the ``bypass:<reason>`` metric and the ``cache_bypassed`` signal
exactly what their cache is doing. The request rules run before the cache is read (a
personalised request never even reads a shared entry); the response rules run after the view
and before anything is stored.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Callable, Collection
from types import CodeType
from typing import Any

from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty

from cachewise.conf import django_setting, hot_setting

__all__ = [
    "BYPASS_REASONS",
    "PERSONAL_REASONS",
    "cache_control_directives",
    "credential_header_sent",
    "request_bypass_reason",
    "response_bypass_reason",
    "response_max_age",
    "vary_names",
]

#: Every reason a response is served without the cache, in the order the rules check them.
BYPASS_REASONS: tuple[str, ...] = (
    "method",  # not GET or HEAD
    "excluded-path",  # the middleware's include/exclude patterns rule the path out
    "authorization",  # the request carries an Authorization header
    "session",  # the request carries a session cookie, or the view wrote to the session
    "credential",  # a CACHEWISE_CREDENTIAL_COOKIES cookie or _HEADERS header, in the request or response
    "authenticated",  # request.user is authenticated
    "query-param",  # a query parameter outside the view's query_params
    "streaming",  # a StreamingHttpResponse / FileResponse
    "status",  # status outside CACHEWISE_CACHEABLE_STATUSES
    "set-cookie",  # the response sets a cookie
    "csrf",  # the view used the CSRF token (it is per visitor)
    "messages",  # django.contrib.messages had messages for this visitor
    "cache-control-private",  # Cache-Control: private
    "no-store",  # Cache-Control: no-store
    "no-cache",  # Cache-Control: no-cache
    "max-age-0",  # Cache-Control: max-age=0
    "vary-star",  # Vary: *
    "entry-cap",  # the view already stored its max_entries pages in this window
    "query-form",  # the cached page was rendered for another spelling of this query string
    "cache-unavailable",  # the cache failed; the view ran without it
)

#: Reasons that mean "this response belongs to one visitor": such responses are also marked
#: ``Cache-Control: private`` so that no proxy or CDN downstream shares them either.
PERSONAL_REASONS: frozenset[str] = frozenset(
    {"authorization", "session", "credential", "authenticated", "set-cookie", "csrf", "messages"}
)

_SAFE_METHODS = frozenset({"GET", "HEAD"})
_COMMA = re.compile(r"\s*,\s*")


def _is_authenticated(request: HttpRequest) -> bool:
    # Without AuthenticationMiddleware there is no request.user and nothing to authenticate.
    user = getattr(request, "user", None)
    if user is None or _anonymous_before_asked(request, user):
        return False
    return bool(user.is_authenticated)


#: How every built-in session backend loads a session: from its key, and nothing when it has none.
_BASE_LOAD = getattr(SessionBase, "_get_session", object())


@functools.cache
def _stock_user_code() -> Any:
    """The code of the lazy ``request.user`` Django's AuthenticationMiddleware installs, or None.

    Looked up on first use: the module imports auth's models, which need the app registry.
    """
    try:
        middleware = importlib.import_module("django.contrib.auth.middleware")
    except ImportError:  # pragma: no cover - django.contrib.auth not importable
        return None
    consts = middleware.AuthenticationMiddleware.process_request.__code__.co_consts
    found = [const for const in consts if isinstance(const, CodeType) and const.co_name == "<lambda>"]
    return found[0] if len(found) == 1 else None


def _anonymous_before_asked(request: HttpRequest, user: Any) -> bool:
    """True when ``user`` is certainly anonymous without evaluating it (~12 us a hit).

    That holds for the unevaluated ``SimpleLazyObject`` of Django's own AuthenticationMiddleware
    (recognised by its code object; it reads the user from ``request.session`` and nothing else)
    while the session has no key and no data: a session key or anything stored in the session
    this request, another middleware's user object, or an evaluated one (RemoteUserMiddleware)
    takes the slow path. Anything not recognised evaluates ``request.user`` as before.
    """
    if type(user) is not SimpleLazyObject:
        return False
    state = user.__dict__
    setup = state.get("_setupfunc")
    stock = _stock_user_code()
    if stock is None or state.get("_wrapped") is not empty or getattr(setup, "__code__", None) is not stock:
        return False
    session = getattr(request, "session", None)
    return (
        isinstance(session, SessionBase)
        and getattr(type(session), "_get_session", None) is _BASE_LOAD
        and session.session_key is None
        and not session.__dict__.get("_session_cache")
    )


@functools.lru_cache(maxsize=256)
def _meta_name(header: str) -> str:
    # "X-Api-Key" -> "HTTP_X_API_KEY", the WSGI/ASGI name Django files request headers under.
    return "HTTP_" + header.upper().replace("-", "_")


def _credential_sent(request: HttpRequest) -> bool:
    """True when the request carries a configured credential cookie or header (even empty).

    Presence, not value, decides: an empty or invalid token may still make the view render
    differently ("your session expired"), and checking presence costs nothing on the hit path.
    """
    cookies = hot_setting("CREDENTIAL_COOKIES")
    if cookies and any(name in request.COOKIES for name in cookies):
        return True
    headers = hot_setting("CREDENTIAL_HEADERS")
    return bool(headers) and any(_meta_name(name) in request.META for name in headers)


def credential_header_sent(response: HttpResponseBase) -> bool:
    """True when ``response`` carries a configured credential header (a token issued to someone)."""
    headers = hot_setting("CREDENTIAL_HEADERS")
    return bool(headers) and any(name in response.headers for name in headers)


def _credential_reason(request: HttpRequest) -> str | None:
    if "HTTP_AUTHORIZATION" in request.META:
        return "authorization"
    if django_setting("SESSION_COOKIE_NAME") in request.COOKIES:
        return "session"
    if _credential_sent(request):
        return "credential"
    return None


def request_bypass_reason(request: HttpRequest, *, per_user: bool = False) -> str | None:
    """Return why ``request`` must not be answered from (or stored in) the shared cache, or None.

    The header and cookie checks come first because they are free; ``request.user`` is only
    evaluated when none is present. Credentials are ``Authorization``, the session cookie and the
    cookies and headers named in ``CACHEWISE_CREDENTIAL_COOKIES`` / ``_HEADERS``. With
    ``per_user`` an authenticated request is cacheable (keyed by its user); an anonymous one with
    credentials still is not, because the view may authenticate from them itself (DRF-style
    token authentication, a JWT cookie) after the key was built.
    """
    if request.method not in _SAFE_METHODS:
        return "method"
    if per_user and _is_authenticated(request):
        return None
    reason = _credential_reason(request)
    if reason is None and not per_user and _is_authenticated(request):
        return "authenticated"
    return reason


def cache_control_directives(response: HttpResponseBase) -> dict[str, str | None]:
    """The response's Cache-Control directives, lower-cased: ``{"max-age": "60", "public": None}``."""
    header = response.headers.get("Cache-Control")
    if not header:
        return {}
    directives: dict[str, str | None] = {}
    for item in _COMMA.split(header):
        name, sep, value = item.partition("=")
        directives[name.strip().lower()] = value.strip().strip('"') if sep else None
    return directives


def response_max_age(directives: dict[str, str | None]) -> int | None:
    """``max-age`` as an int, or None when absent or malformed (then it is ignored, like Django)."""
    raw = directives.get("max-age")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def vary_names(response: HttpResponseBase) -> tuple[str, ...]:
    """The response's Vary header names, lower-cased, de-duplicated, sorted (``*`` kept)."""
    header = response.headers.get("Vary")
    if not header:
        return ()
    return tuple(sorted({name.strip().lower() for name in _COMMA.split(header) if name.strip()}))


def _session_written(request: HttpRequest) -> bool:
    session = getattr(request, "session", None)
    return bool(session is not None and session.modified)


def _has_messages(request: HttpRequest) -> bool:
    # len() of a message storage counts the messages loaded for this visitor plus those queued
    # by the view; either way the page may show them, and they are this visitor's alone.
    storage: Any = getattr(request, "_messages", None)
    return storage is not None and len(storage) > 0


def _cache_control_reason(directives: dict[str, str | None]) -> str | None:
    if "private" in directives:
        return "cache-control-private"
    if "no-store" in directives:
        return "no-store"
    if "no-cache" in directives:
        return "no-cache"
    if response_max_age(directives) == 0:
        return "max-age-0"
    return None


def _response_reason(response: HttpResponseBase, statuses: Collection[int]) -> str | None:
    if response.streaming:
        return "streaming"
    if response.status_code not in statuses:
        return "status"
    if response.cookies:
        return "set-cookie"
    if credential_header_sent(response):
        return "credential"
    return None


def _request_state_reason(request: HttpRequest) -> str | None:
    if request.META.get("CSRF_COOKIE_NEEDS_UPDATE"):
        return "csrf"
    if _session_written(request):
        return "session"
    if _has_messages(request):
        return "messages"
    return None


def _header_reason(response: HttpResponseBase) -> str | None:
    reason = _cache_control_reason(cache_control_directives(response))
    if reason is None and "*" in vary_names(response):
        return "vary-star"
    return reason


def response_bypass_reason(
    request: HttpRequest, response: HttpResponseBase, statuses: Collection[int]
) -> str | None:
    """Return why the view's ``response`` must not be stored, or None when it may be.

    Checked after the view ran, so it also catches what the view did to the request: a CSRF
    token it put in the page (``CSRF_COOKIE_NEEDS_UPDATE``), a session it wrote, messages it
    showed. Those happen before the outer middleware turns them into ``Set-Cookie`` headers,
    which is why the decorator cannot rely on seeing the cookie itself.
    """
    checks: tuple[Callable[[], str | None], ...] = (
        lambda: _response_reason(response, statuses),
        lambda: _request_state_reason(request),
        lambda: _header_reason(response),
    )
    for check in checks:
        reason = check()
        if reason is not None:
            return reason
    return None
