"""What a cached page looks like in the cache: plain tuples, never a pickled HttpResponse.

A *page* is ``("cw.page.1", status, reason, headers, body, vary)``: ``headers`` a tuple of
``(name, value)``, ``body`` bytes and ``vary`` the snapshot of the filling request's value of
every header the response varies on. Plain tuples of str/int/bytes (de)serialize several times
faster than an ``HttpResponse`` and survive any backend serializer; the version tag lets the
format change without a flush (an unknown tag reads as a miss).

A *pointer* is ``("cw.vary.1", names)``: stored under the base key when the response varied on
headers the base key does not hold; the page itself lives under the variant key for those
headers' values. Views that declare their Vary headers never need one, so a hit is one GET.

Before a page is served its ``vary`` snapshot is compared with the current request's: a page is
never served to a request that differs in any header the response varies on, whatever key it
was found under.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from http.cookies import SimpleCookie
from typing import Any, NamedTuple

from django.http import HttpResponse, HttpResponseBase
from django.http.response import ResponseHeaders

from .key import Snapshot

__all__ = [
    "DEBUG_HEADER",
    "Page",
    "Pointer",
    "page_value",
    "parse",
    "pointer_value",
    "response_maker",
    "to_response",
]

PAGE_TAG = "cw.page.1"
POINTER_TAG = "cw.vary.1"
#: Debug header name; never stored with a page.
DEBUG_HEADER = "X-Cachewise"
_NOT_STORED = frozenset({DEBUG_HEADER.lower(), "set-cookie"})


class Page(NamedTuple):
    """A decoded page entry."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    vary: Snapshot


class Pointer(NamedTuple):
    """A decoded pointer: the page varies on ``names`` (lower-cased, sorted) beyond the base key."""

    names: tuple[str, ...]


def page_value(response: HttpResponse, vary: Snapshot) -> tuple[Any, ...]:
    """The storable form of ``response`` filled for a request with Vary values ``vary``."""
    headers = tuple((k, v) for k, v in response.items() if k.lower() not in _NOT_STORED)
    return (PAGE_TAG, response.status_code, response.reason_phrase, headers, response.content, vary)


def pointer_value(names: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """The storable form of a pointer to the variants of a page that varies on ``names``."""
    return (POINTER_TAG, names)


def _snapshot(raw: Any) -> Snapshot:
    # Serializers without tuples (JSON, msgpack) hand lists back: normalise so equality holds.
    return tuple((str(name), _freeze(value)) for name, value in raw)


def _freeze(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_freeze(item) for item in value)
    return value


def parse(value: Any) -> Page | Pointer | None:
    """Decode a cached value; None for anything that is not a page or pointer of this format."""
    if not isinstance(value, tuple | list) or not value:
        return None
    try:
        if value[0] == PAGE_TAG and len(value) == 6:
            _, status, reason, headers, body, vary = value
            body = body if isinstance(body, bytes) else str(body).encode("latin-1")
            return Page(
                int(status), str(reason), tuple((str(k), str(v)) for k, v in headers), body, _snapshot(vary)
            )
        if value[0] == POINTER_TAG and len(value) == 2:
            return Pointer(tuple(str(name) for name in value[1]))
    except (TypeError, ValueError):
        return None
    return None


def response_maker(page: Page) -> Callable[[], HttpResponseBase]:
    """A function that returns a fresh ``HttpResponse`` of ``page`` on each call (each request
    gets its own object to mutate), for a page answered many times.

    Django's constructor encodes and validates the status, reason and each header again on every
    call. Here one response is built and checked once, and each call copies its state: the
    scalars and the body bytes are shared, and the lists, the headers and the cookies are new
    objects. Where this Django's ``HttpResponse`` holds state of a kind not known to be
    copied this way (another Django version), each call builds the response as
    :func:`to_response` does.
    """
    model = to_response(page)
    state = dict(vars(model))
    copiers: list[tuple[str, Callable[[Any], Any]]] = []
    for name, value in state.items():
        copier = _copier(value)
        if copier is None:
            return functools.partial(to_response, page)
        if copier is not _shared:
            copiers.append((name, copier))
    copied = {name for name, _ in copiers}
    plain = {name: value for name, value in state.items() if name not in copied}
    cls = type(model)

    def make() -> HttpResponseBase:
        response: HttpResponseBase = cls.__new__(cls)
        fresh = plain.copy()
        for name, copy in copiers:
            fresh[name] = copy(state[name])
        response.__dict__ = fresh
        return response

    return make


_SCALARS = (type(None), bool, int, float, str, bytes)


def _shared(value: Any) -> Any:
    return value


def _copy_headers(headers: ResponseHeaders) -> ResponseHeaders:
    copy: ResponseHeaders = ResponseHeaders.__new__(ResponseHeaders)
    copy._store = headers._store.copy()
    return copy


def _copier(value: Any) -> Callable[[Any], Any] | None:
    """How to copy one attribute of a response for another request, or None if unknown."""
    kind = type(value)
    if kind in _SCALARS:
        return _shared
    if kind is list and all(type(item) in _SCALARS for item in value):
        return list
    if kind is ResponseHeaders and vars(value).keys() == {"_store"} and type(value._store) is dict:
        return _copy_headers
    if kind is SimpleCookie and not value:
        return lambda _: SimpleCookie()
    return None


def to_response(page: Page) -> HttpResponseBase:
    """A fresh HttpResponse for ``page`` (each request gets its own object to mutate)."""
    return HttpResponse(page.body, status=page.status, reason=page.reason, headers=dict(page.headers))
