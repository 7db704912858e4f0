"""The page key: everything a cached page may depend on, computable from the request alone.

The *base key* is built before the view runs, from the scheme, the validated host
(``request.get_host()``: checked against ``ALLOWED_HOSTS``, ``X-Forwarded-Host`` only with
``USE_X_FORWARDED_HOST``), the method, the path, the query string (only declared parameters:
a request with any other one is not cached at all), the active language and time zone, the user
(``per_user`` only) and the value of every *declared* Vary dimension (``vary_on_headers`` /
``vary_on_cookies``). A header that is absent is keyed as ``None`` and an empty one as ``""``,
so the two never share an entry.

The query string enters the key in canonical form (parameters parsed and sorted, so ``?a=%31``
and ``?a=1`` are one key), and the *raw* string a page was rendered for is stored with it, as if
it were a Vary header (:data:`QUERY`): ``request.get_full_path()`` is built from the raw string,
so a page is only ever served to a request whose full path equals the one it was rendered for.
One canonical form holds one page, whatever spellings an attacker sends.

A response that varies on a header nobody declared is stored under a *variant key*: the base
key plus the request's values of those headers (see :mod:`cachewise.pagecache.entry`).

Keys read ``page:v1:<view|site>:<digest>``: the parts are hashed together (128 bits), so a key
is built in a few microseconds on the hit path and never exceeds memcached's length limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from cachewise.conf import django_setting, hot_setting, same_settings, settings_memo
from cachewise.keys import make_key

from . import active

__all__ = [
    "ANY_PARAMS",
    "NAMESPACE",
    "QUERY",
    "KeyPolicy",
    "base_key",
    "host_of",
    "undeclared_param",
    "variant_key",
    "vary_snapshot",
]

#: Namespace of every page key (metrics and ``redis-cli --scan --pattern '*page:*'``).
NAMESPACE = "page"
#: ``query_params="*"``: every query parameter takes part in the key (growth bounded by the cap only).
ANY_PARAMS = "*"
#: Pseudo Vary name under which a page records the raw query string it was rendered for. A
#: header name cannot contain ":", so it never collides with a real one.
QUERY = ":query"
#: Bumped when what a key stands for changes, so entries stored under the old meaning are never read.
_KEY_FORMAT = 2

Snapshot = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class KeyPolicy:
    """What goes into the base key besides the URL: declared varies, query allow-list, user."""

    vary_on_headers: tuple[str, ...] = ()
    vary_on_cookies: tuple[str, ...] = ()
    #: None: ``CACHEWISE_PAGE_QUERY_PARAMS`` (read per request); ``"*"``: any parameter.
    query_params: frozenset[str] | str | None = None
    per_user: bool = False
    key_prefix: str = ""
    source: str = "view"
    #: Lower-cased header names whose values the base key already holds.
    covered: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        names = {name.lower() for name in self.vary_on_headers}
        if self.vary_on_cookies:
            names.add("cookie")
        object.__setattr__(self, "covered", frozenset(names))

    @classmethod
    def build(
        cls,
        *,
        vary_on_headers: Iterable[str] = (),
        vary_on_cookies: Iterable[str] = (),
        query_params: Iterable[str] | str | None = None,
        per_user: bool = False,
        key_prefix: str = "",
        source: str = "view",
    ) -> KeyPolicy:
        """Normalise user input: header names lower-cased and sorted, cookies sorted."""
        if isinstance(query_params, str) and query_params != ANY_PARAMS:
            raise ValueError(f'query_params must be "*" or a list of names, got the string {query_params!r}')
        return cls(
            vary_on_headers=tuple(sorted({h.lower() for h in vary_on_headers})),
            vary_on_cookies=tuple(sorted(set(vary_on_cookies))),
            query_params=query_params if query_params in (None, ANY_PARAMS) else frozenset(query_params),
            per_user=per_user,
            key_prefix=key_prefix,
            source=source,
        )

    def allowed_params(self) -> frozenset[str] | None:
        """The query parameters that may take part in the key; None when any may."""
        if self.query_params is None:
            allowed: frozenset[str] | None = hot_setting("PAGE_QUERY_PARAMS")
            return allowed
        if isinstance(self.query_params, str):
            return None
        return self.query_params


def undeclared_param(request: HttpRequest, allowed: frozenset[str] | None) -> str | None:
    """The first query parameter of ``request`` outside ``allowed`` (None: all are allowed)."""
    if allowed is None or not request.META.get("QUERY_STRING"):
        return None
    for name in request.GET:
        if name not in allowed:
            return str(name)
    return None


def vary_snapshot(request: HttpRequest, names: Iterable[str], cookies: tuple[str, ...]) -> Snapshot:
    """The request's value of each Vary header in ``names`` (``None`` when absent).

    :data:`QUERY` stands for the raw query string. ``Cookie`` is keyed by the named ``cookies``
    when the view declared them (it promised its output depends on those alone), else by the
    whole header.
    """
    snapshot: list[tuple[str, Any]] = []
    for name in names:
        if name == QUERY:
            snapshot.append((name, request.META.get("QUERY_STRING", "")))
        elif name == "cookie" and cookies:
            snapshot.append((name, tuple((c, request.COOKIES.get(c)) for c in cookies)))
        else:
            snapshot.append((name, request.headers.get(name)))
    return tuple(snapshot)


def _query_part(request: HttpRequest) -> tuple[tuple[str, tuple[str, ...]], ...]:
    # The canonical form: parameters decoded and sorted by name; the order of a repeated
    # parameter's values is kept because request.GET.getlist() hands it to the view in that
    # order. Requests with undeclared parameters never get here (serve() bypasses them).
    if not request.META.get("QUERY_STRING"):
        return ()  # the common case: skip building a QueryDict
    return tuple(sorted((k, tuple(v)) for k, v in request.GET.lists()))


def _user_part(request: HttpRequest, per_user: bool) -> Any:
    if not per_user:
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return "anonymous"
    return ("user", user.pk)


def _digest(parts: tuple[Any, ...]) -> str:
    # repr() of nested tuples of str/int/None (and a user pk: int, str or UUID) is injective:
    # ast.literal_eval would read the same tuple back. 128 bits of SHA-256, as make_key uses
    # for long keys. One hash instead of make_key's per-part encoding keeps a hit's key at a
    # few microseconds.
    return hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def host_of(request: HttpRequest) -> str:
    """``request.get_host()``, validated once per request (the key and the URL counters use it)."""
    # Read from the instance dict: a missing attribute would raise and catch an AttributeError
    # (~1 us) on every request's first call.
    host: str | None = request.__dict__.get("_cachewise_host")
    if host is None:
        host = request._cachewise_host = _checked_host(request)  # type: ignore[attr-defined]
    return host


#: Raw hosts (``Host`` or ``X-Forwarded-Host`` as sent) that ``get_host()`` accepted under the
#: current settings object (``override_settings``, and so pytest-django's ``settings``, swaps it
#: whenever ``ALLOWED_HOSTS`` or ``DEBUG`` change): a page hit then costs a dict lookup, not the
#: validation against ``ALLOWED_HOSTS`` (bounded; a host it refused is never remembered, so it is
#: refused again, by Django, on every request).
_accepted_hosts: dict[str, None] = settings_memo()


def _checked_host(request: HttpRequest) -> str:
    raw_host = getattr(request, "_get_raw_host", None)
    if raw_host is None or type(request).get_host is not HttpRequest.get_host:
        return request.get_host()  # a request class of its own: its own rules, every time
    same_settings()
    raw: str = raw_host()
    if raw in _accepted_hosts:
        return raw
    host = request.get_host()  # raises DisallowedHost
    if len(_accepted_hosts) >= 256:
        _accepted_hosts.clear()
    _accepted_hosts[host] = None
    return host


_MEMO_SIZE = 4096
_keys: dict[tuple[Any, ...], str] = {}


def base_key(request: HttpRequest, policy: KeyPolicy) -> str:
    """The key of ``request``'s page under ``policy``; raises DisallowedHost for a bad host.

    Memoised on the key's parts (bounded): the same page asked again costs a tuple hash instead
    of the repr, the SHA-256 and make_key (the parts are what the digest is of: same parts,
    same key).
    """
    parts = (
        _KEY_FORMAT,
        policy.key_prefix,
        request.scheme,
        host_of(request),
        request.method,
        request.path,
        _query_part(request),
        active.language() if django_setting("USE_I18N") else None,
        active.timezone_name() if django_setting("USE_TZ") else None,
        _user_part(request, policy.per_user),
        vary_snapshot(request, policy.vary_on_headers, ()),
        vary_snapshot(request, ("cookie",), policy.vary_on_cookies) if policy.vary_on_cookies else None,
        policy.source,
    )
    key = _keys.get(parts)
    if key is None:
        if len(_keys) >= _MEMO_SIZE:
            _keys.clear()
        key = _keys[parts] = make_key(NAMESPACE, policy.source, _digest(parts[:-1]))
    return key


def variant_key(base: str, snapshot: Snapshot) -> str:
    """The key of the variant of page ``base`` for the request values in ``snapshot``."""
    return make_key(NAMESPACE, "variant", _digest((base, snapshot)))
