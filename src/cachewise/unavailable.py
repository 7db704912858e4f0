"""``CacheUnavailableMiddleware``: a clear 503 when a request needs a cache write that cannot be made.

Reads fail open (a miss), but some writes cannot be faked: a login must store its new session
(``SessionStore.create()`` is a cache ``add``, which raises :class:`CacheUnavailableError` while the
session cache is down), and so must any first write to a session. Without this middleware those
requests end in a 500 and an error report; with it the user gets ``503 Service Unavailable`` with
``Retry-After`` (the circuit breaker's cool-down is a few seconds), never cached, and can simply
try again::

    MIDDLEWARE = [
        "cachewise.middleware.CacheUnavailableMiddleware",   # above SessionMiddleware
        "django.contrib.sessions.middleware.SessionMiddleware",
        ...
    ]

It must come before ``SessionMiddleware`` because the session is saved in that middleware's
response phase: an error there never reaches a view's ``process_exception``; Django turns it into
a 500 and sends ``got_request_exception``, which is how this middleware learns the cause. The page
is the project's ``503.html`` template when there is one. See docs/guarantees.md.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template import TemplateDoesNotExist, loader
from django.utils.cache import add_never_cache_headers

from .exceptions import CacheUnavailableError

__all__ = ["RETRY_AFTER", "CacheUnavailableMiddleware"]

#: Seconds in ``Retry-After``: about the circuit breaker's default cool-down.
RETRY_AFTER = 5
_ATTRIBUTE = "_cachewise_unavailable"


def _remember(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """``got_request_exception`` receiver: mark the request when the error was a cache outage."""
    error = sys.exc_info()[1]
    if request is not None and isinstance(error, CacheUnavailableError):
        setattr(request, _ATTRIBUTE, error)


def unavailable_response(request: HttpRequest) -> HttpResponse:
    """The 503 page: ``503.html`` if the project has one, else a line of text; never cached."""
    try:
        response = HttpResponse(loader.render_to_string("503.html", request=request), status=503)
    except TemplateDoesNotExist:
        text = "Service temporarily unavailable: please try again in a few seconds.\n"
        response = HttpResponse(text, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(RETRY_AFTER)
    add_never_cache_headers(response)
    return response


class CacheUnavailableMiddleware:
    """Turn a :class:`CacheUnavailableError` anywhere inside it into a 503 (see the module doc)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
        got_request_exception.connect(_remember, dispatch_uid="cachewise.unavailable")

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._acall(request)
        return self._answer(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        response: Awaitable[HttpResponseBase] = self.get_response(request)
        return self._answer(request, await response)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A view that needed the cache (``login()`` storing its session): 503, not 500."""
        if isinstance(exception, CacheUnavailableError):
            return unavailable_response(request)
        return None

    def _answer(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if response.status_code == 500 and getattr(request, _ATTRIBUTE, None) is not None:
            return unavailable_response(request)  # raised by an inner middleware (a session save)
        return response
