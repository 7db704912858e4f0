"""Views for the page-cache tests: each echoes exactly what it depends on, plus a render count.

A response served to the wrong request shows up as a body that does not match that request.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.middleware.csrf import get_token
from django.template import engines
from django.template.response import TemplateResponse
from django.utils import timezone, translation
from django.utils.cache import patch_cache_control, patch_vary_headers
from django.views.decorators.cache import cache_page as django_cache_page

from cachewise.decorators import cache_page

_counter = itertools.count(1)
_lock = threading.Lock()
renders: dict[str, int] = {}


def rendered(name: str) -> int:
    """Count a render of view ``name``; return the running total of all renders."""
    with _lock:
        renders[name] = renders.get(name, 0) + 1
    return next(_counter)


def _user(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return user.get_username() if user is not None and user.is_authenticated else "anon"


def echo_state(request: HttpRequest) -> dict[str, Any]:
    """Everything the echo views depend on (and vary on)."""
    return {
        "host": request.get_host(),
        "scheme": request.scheme,
        "path": request.path,
        "full_path": request.get_full_path(),
        "query": sorted(request.GET.lists()),
        "lang_header": request.headers.get("Accept-Language"),
        "custom": request.headers.get("X-Custom"),
        "authorization": request.headers.get("Authorization"),
        "theme": request.COOKIES.get("theme"),
        "language": translation.get_language(),
        "timezone": timezone.get_current_timezone_name(),
    }


@cache_page(60, vary_on_headers=("Accept-Language",), vary_on_cookies=("theme",), query_params=("a", "b"))
def echo(request: HttpRequest) -> HttpResponse:
    """Varies on Accept-Language and the theme cookie (declared) and X-Custom (undeclared)."""
    n = rendered("echo")
    response = JsonResponse({"state": echo_state(request), "user": _user(request), "n": n})
    patch_vary_headers(response, ("X-Custom",))
    return response


@cache_page(60)
def hello(request: HttpRequest) -> HttpResponse:
    """Shows the user's name: must never be cached for one user and served to another."""
    return HttpResponse(f"hello {_user(request)} n={rendered('hello')}")


@cache_page(60, per_user=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    """Personalised, cached per user."""
    return HttpResponse(f"dashboard {_user(request)} n={rendered('dashboard')}")


@cache_page(60)
def csrf_form(request: HttpRequest) -> HttpResponse:
    """Puts the CSRF token into the page."""
    return HttpResponse(f"<form>{get_token(request)}</form> n={rendered('csrf_form')}")


@cache_page(60)
def template_form(request: HttpRequest) -> TemplateResponse:
    """A TemplateResponse using {% csrf_token %}: the token use is only seen after rendering."""
    template = engines["django"].from_string("<form>{% csrf_token %}</form> n={{ n }}")
    return TemplateResponse(request, template, {"n": rendered("template_form")})


@cache_page(60)
def template_plain(request: HttpRequest) -> TemplateResponse:
    """A TemplateResponse without personal data: cacheable after rendering."""
    template = engines["django"].from_string("plain n={{ n }}")
    return TemplateResponse(request, template, {"n": rendered("template_plain")})


@cache_page(60)
def sets_cookie(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"cookie n={rendered('sets_cookie')}")
    response.set_cookie("tracking", "abc")
    return response


@cache_page(60)
def writes_session(request: HttpRequest) -> HttpResponse:
    request.session["seen"] = True
    return HttpResponse(f"session n={rendered('writes_session')}")


@cache_page(60, query_params=("cc",))
def cache_control(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"cc n={rendered('cache_control')}")
    directive = request.GET["cc"]
    if directive == "max-age-0":
        patch_cache_control(response, max_age=0)
    else:
        patch_cache_control(response, **{directive.replace("-", "_"): True})
    return response


@cache_page(60)
def vary_star(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"star n={rendered('vary_star')}")
    response["Vary"] = "*"
    return response


@cache_page(60)
def streaming(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse(iter([b"a", str(rendered("streaming")).encode()]))


@cache_page(60, query_params=("code",))
def status(request: HttpRequest) -> HttpResponse:
    code = int(request.GET.get("code", "200"))
    return HttpResponse(f"status n={rendered('status')}", status=code)


@cache_page(60)
def messages_view(request: HttpRequest) -> HttpResponse:
    from django.contrib import messages

    text = " ".join(str(m) for m in messages.get_messages(request))
    return HttpResponse(f"messages [{text}] n={rendered('messages_view')}")


def add_message(request: HttpRequest) -> HttpResponse:
    from django.contrib import messages

    messages.info(request, "saved")
    return HttpResponse("added")


@cache_page(60, query_params=("page",))
def allow_listed(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"page={request.GET.get('page')} n={rendered('allow_listed')}")


@cache_page(60)
def slow(request: HttpRequest) -> HttpResponse:
    time.sleep(0.2)
    return HttpResponse(f"slow n={rendered('slow')}")


@cache_page(60)
def boom(request: HttpRequest) -> HttpResponse:
    rendered("boom")
    raise ValueError("boom")


@cache_page(60, vary_on_headers=("Accept-Language",))
async def async_echo(request: HttpRequest) -> HttpResponse:
    """Async view; varies on Accept-Language."""
    n = rendered("async_echo")
    return HttpResponse(json.dumps({"lang": request.headers.get("Accept-Language"), "n": n}))


@cache_page(60)
async def async_slow(request: HttpRequest) -> HttpResponse:
    import asyncio

    await asyncio.sleep(0.2)
    return HttpResponse(f"async slow n={rendered('async_slow')}")


@django_cache_page(60)
def django_hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"django n={rendered('django_hello')}")


def plain(request: HttpRequest) -> HttpResponse:
    """Not decorated: for the middleware tests."""
    return HttpResponse(f"plain {request.path} {_user(request)} n={rendered('plain')}")


async def async_plain(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(f"async plain {request.path} n={rendered('async_plain')}")


@cache_page(60)
def short_max_age(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(f"short n={rendered('short_max_age')}")
    patch_cache_control(response, max_age=5)
    return response


@cache_page(1)
def short_slow(request: HttpRequest) -> HttpResponse:
    time.sleep(0.2)
    return HttpResponse(f"short slow n={rendered('short_slow')}")


def _token_user(request: HttpRequest) -> str:
    # A view authenticating from a cookie or header itself (a JWT in a cookie, an API key),
    # which Django's middleware knows nothing about.
    token = request.COOKIES.get("jwt") or request.headers.get("X-Api-Key")
    return f"user-{token}" if token else "anon"


@cache_page(60)
def token_hello(request: HttpRequest) -> HttpResponse:
    """Shows the user its own cookie or header token names: must never be shared."""
    return HttpResponse(f"hello {_token_user(request)} n={rendered('token_hello')}")


@cache_page(60)
def issues_token(request: HttpRequest) -> HttpResponse:
    """Issues a token in a response header to whoever asks (a login by API)."""
    response = HttpResponse(f"issued n={rendered('issues_token')}")
    response["X-Api-Key"] = f"k{rendered('issues_token')}"
    return response
