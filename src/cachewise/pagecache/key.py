"""The page key: everything a cached page may depend on, computable from the request alone.

The *base key* is built before the view runs, from the scheme, the validated host
(``request.get_host()``: checked against ``ALLOWED_HOSTS``, ``X-Forwarded-Host`` only with
``USE_X_FORWARDED_HOST``), the method, the path, the query string (parameters sorted, or only the
allow-listed ones), the active language and time zone, the user (``per_user`` only) and the value
of every *declared* Vary dimension (``vary_on_headers`` / ``vary_on_cookies``). A header that is
absent is keyed as ``None`` and an empty one as ``""``, so the two never share an entry.

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

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone, translation

from cachewise.keys import make_key

__all__ = ["NAMESPACE", "KeyPolicy", "base_key", "variant_key", "vary_snapshot"]

#: Namespace of every page key (metrics and ``redis-cli --scan --pattern '*page:*'``).
NAMESPACE = "page"

Snapshot = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class KeyPolicy:
    """What goes into the base key besides the URL: declared varies, query allow-list, user."""

    vary_on_headers: tuple[str, ...] = ()
    vary_on_cookies: tuple[str, ...] = ()
    query_params: frozenset[str] | None = None
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
        query_params: Iterable[str] | None = None,
        per_user: bool = False,
        key_prefix: str = "",
        source: str = "view",
    ) -> KeyPolicy:
        """Normalise user input: header names lower-cased and sorted, cookies sorted."""
        return cls(
            vary_on_headers=tuple(sorted({h.lower() for h in vary_on_headers})),
            vary_on_cookies=tuple(sorted(set(vary_on_cookies))),
            query_params=None if query_params is None else frozenset(query_params),
            per_user=per_user,
            key_prefix=key_prefix,
            source=source,
        )


def vary_snapshot(request: HttpRequest, names: Iterable[str], cookies: tuple[str, ...]) -> Snapshot:
    """The request's value of each Vary header in ``names`` (``None`` when absent).

    ``Cookie`` is keyed by the named ``cookies`` when the view declared them (it promised its
    output depends on those alone), else by the whole header.
    """
    snapshot: list[tuple[str, Any]] = []
    for name in names:
        if name == "cookie" and cookies:
            snapshot.append((name, tuple((c, request.COOKIES.get(c)) for c in cookies)))
        else:
            snapshot.append((name, request.headers.get(name)))
    return tuple(snapshot)


def _query_part(
    request: HttpRequest, allowed: frozenset[str] | None
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    # Parameters are sorted by name; the order of a repeated parameter's values is kept because
    # request.GET.getlist() hands it to the view in that order.
    if not request.META.get("QUERY_STRING"):
        return ()  # the common case: skip building a QueryDict
    items = request.GET.lists()
    return tuple(sorted((k, tuple(v)) for k, v in items if allowed is None or k in allowed))


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


def base_key(request: HttpRequest, policy: KeyPolicy) -> str:
    """The key of ``request``'s page under ``policy``; raises DisallowedHost for a bad host."""
    parts = (
        policy.key_prefix,
        request.scheme,
        request.get_host(),
        request.method,
        request.path,
        _query_part(request, policy.query_params),
        translation.get_language() if settings.USE_I18N else None,
        timezone.get_current_timezone_name() if settings.USE_TZ else None,
        _user_part(request, policy.per_user),
        vary_snapshot(request, policy.vary_on_headers, ()),
        vary_snapshot(request, ("cookie",), policy.vary_on_cookies) if policy.vary_on_cookies else None,
    )
    return make_key(NAMESPACE, policy.source, _digest(parts))


def variant_key(base: str, snapshot: Snapshot) -> str:
    """The key of the variant of page ``base`` for the request values in ``snapshot``."""
    return make_key(NAMESPACE, "variant", _digest((base, snapshot)))
