"""Settings, URLs and views of the page-cache benchmark (``bench/views.py`` serves it with Gunicorn).

One module on purpose: it is the settings module *and* the URLconf. Configured by the
environment the benchmark sets: ``CW_BENCH_REDIS_URL``, ``CW_BENCH_PREFIX``, ``CW_BENCH_SQLITE``.
"""

from __future__ import annotations

import os
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path

SECRET_KEY = "cachewise-bench-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "bench.views_site"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "cachewise",
    "tests.testapp",
]
# Django's default project middleware: every variant, the trivial floor included, pays for it.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "loaders": [
                (
                    "django.template.loaders.locmem.Loader",
                    {
                        "list.html": (
                            "<html><body><h1>Articles</h1><ul>{% for a in articles %}"
                            '<li><a href="/a/{{ a.pk }}/">{{ a.title }}</a> by {{ a.author.name }}'
                            " ({{ a.updated_at|date:'Y-m-d' }})</li>{% endfor %}</ul></body></html>"
                        )
                    },
                )
            ]
        },
    }
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ.get("CW_BENCH_SQLITE", ":memory:")}
}


def _caches() -> dict[str, Any]:
    from cachewise.caches_url import caches_from_url

    url = os.environ.get("CW_BENCH_REDIS_URL", "redis://127.0.0.1:1/0")
    prefix = os.environ.get("CW_BENCH_PREFIX", "cwbench")
    caches = caches_from_url(url, key_prefix=prefix)
    if os.environ.get("CW_BENCH_NEAR"):  # bench/views.py --near: docs/near-cache.md
        caches["default"]["OPTIONS"] = {**caches["default"].get("OPTIONS", {}), "near_cache": True}
    # Django's built-in Redis backend on the same server: what cache_page users run today.
    caches["django"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "KEY_PREFIX": f"{prefix}-dj",
    }
    return caches


CACHES = _caches()
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "sessions"


def trivial(request: HttpRequest) -> HttpResponse:
    """The floor: Django and the middleware stack, no work."""
    return HttpResponse("ok")


_LIST_BODY: list[bytes] = []


def trivial_same_body(request: HttpRequest) -> HttpResponse:
    """The floor for a page of this size: the list's bytes, rendered once per worker, sent as is.

    A cached page costs its HTTP transfer as any response of its size does (and the load
    generator shares the 2 cores); against this floor what remains is the cache's own work.
    """
    if not _LIST_BODY:
        _LIST_BODY.append(article_list(request).content)
    return HttpResponse(_LIST_BODY[0])


def article_list(request: HttpRequest) -> HttpResponse:
    """50 articles with their author, through a template: the work the caches save."""
    from django.shortcuts import render
    from tests.testapp.models import Article

    articles = Article.objects.select_related("author").order_by("id")[:50]
    return render(request, "list.html", {"articles": articles})


def _urls() -> list[Any]:
    from django.views.decorators.cache import cache_page as django_cache_page

    from cachewise.decorators import cache_page

    return [
        path("trivial/", trivial),
        path("trivial-same-body/", trivial_same_body),
        path("list/", article_list),
        path("django/", django_cache_page(300, cache="django")(article_list)),
        path("django-cw-backend/", django_cache_page(300, cache="default")(article_list)),
        path("cachewise/", cache_page(300)(article_list)),
        path("cachewise-untracked/", cache_page(300, track_queries=False)(article_list)),
    ]


def __getattr__(name: str) -> Any:
    # The URLconf is built on first access, after Django is set up (views import models).
    if name == "urlpatterns":
        patterns = _urls()
        globals()["urlpatterns"] = patterns
        return patterns
    raise AttributeError(name)
