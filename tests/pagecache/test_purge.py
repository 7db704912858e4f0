"""Purge cached pages by URL: every variant of a path, one host's, or a subtree; a signal per purge."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from cachewise import invalidate_page
from cachewise.caches_url import caches_from_url
from cachewise.signals import page_invalidated
from tests import views_deps
from tests.testapp.models import Article, Author

pytestmark = [pytest.mark.urls("tests.views_deps"), pytest.mark.django_db(transaction=True)]

#: Every dimension a page key holds that a URL does not: host, language, query string, encoding.
VARIANTS: list[dict[str, str]] = [
    {"HTTP_HOST": host, "HTTP_ACCEPT_LANGUAGE": language, "QUERY_STRING": query, "HTTP_ACCEPT_ENCODING": enc}
    for host in ("example.com", "www.example.com")
    for language in ("en", "fr")
    for query in ("", "page=2")
    for enc in ("", "gzip")
]


@pytest.fixture(autouse=True)
def _setup(settings: Any) -> Iterator[None]:
    settings.CACHEWISE_DEBUG_HEADERS = True
    settings.CACHEWISE_PAGE_QUERY_PARAMS = ["page"]  # the ?page=2 variants are cacheable
    settings.USE_I18N = True
    settings.LANGUAGES = [("en", "English"), ("fr", "French")]
    session = "django.contrib.sessions.middleware.SessionMiddleware"
    stack = list(settings.MIDDLEWARE)
    stack.insert(stack.index(session) + 1, "django.middleware.locale.LocaleMiddleware")
    settings.MIDDLEWARE = ["django.middleware.gzip.GZipMiddleware", *stack]
    Author.objects.create(name="Alice")
    views_deps.external["motd"] = "hello"
    yield
    views_deps.during_render = None


def _state(path: str, variant: dict[str, Any] | None = None) -> str:
    response = Client().generic("GET", path, **(variant or {}))
    assert response.status_code == 200
    return str(response["X-Cachewise"])


def _body(path: str, variant: dict[str, Any]) -> str:
    response = Client().generic("GET", path, **variant)
    content = response.content
    if response.get("Content-Encoding") == "gzip":
        content = gzip.decompress(content)
    return content.decode()


def _all_cached(path: str, variants: list[dict[str, str]]) -> None:
    for variant in variants:
        _state(path, variant)
    assert {_state(path, variant) for variant in variants} == {"hit"}


def test_invalidate_page_purges_every_variant_of_the_url() -> None:
    _all_cached("/motd/", VARIANTS)
    _all_cached("/authors/", VARIANTS[:1])
    views_deps.external["motd"] = "changed"  # data the page cannot see change
    assert {_body("/motd/", variant) for variant in VARIANTS} == {"hello"}
    invalidate_page("/motd/")
    assert [_body("/motd/", variant) for variant in VARIANTS] == ["changed"] * len(VARIANTS)
    assert _state("/authors/", VARIANTS[0]) == "hit"  # another URL: untouched


def test_a_url_with_a_host_purges_that_host_only() -> None:
    ours, theirs = VARIANTS[:8], VARIANTS[8:]
    _all_cached("/motd/", VARIANTS)
    views_deps.external["motd"] = "changed"
    invalidate_page("http://example.com/motd/?ignored=1")
    assert {_body("/motd/", variant) for variant in ours} == {"changed"}
    assert {_body("/motd/", variant) for variant in theirs} == {"hello"}
    invalidate_page("/motd/", host="WWW.example.com")
    assert {_body("/motd/", variant) for variant in theirs} == {"changed"}


def test_prefix_purges_a_subtree_of_whole_segments() -> None:
    author = Author.objects.get()
    pks = [Article.objects.create(title=f"A{i}", author=author).pk for i in range(3)]
    paths = [f"/detail/{pk}/" for pk in pks]
    for path in [*paths, "/list/"]:
        _all_cached(path, VARIANTS[:2])
    invalidate_page("/detail", prefix=True)
    assert {_state(path, VARIANTS[0]) for path in paths} == {"miss"}
    assert _state("/list/", VARIANTS[0]) == "hit"
    invalidate_page("/detai", prefix=True)  # not a whole segment: nothing under it
    assert {_state(path, VARIANTS[0]) for path in paths} == {"hit"}


def test_a_signal_fires_for_each_purge(settings: Any) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append({k: v for k, v in kwargs.items() if k != "signal"})

    page_invalidated.connect(receiver, weak=False)
    try:
        invalidate_page("https://Example.com/caf%C3%A9/")
        invalidate_page("/blog/", prefix=True)
    finally:
        page_invalidated.disconnect(receiver)
    aliases = tuple(settings.CACHES)
    assert seen == [
        {"path": "/café/", "host": "example.com", "prefix": False, "aliases": aliases},
        {"path": "/blog/", "host": None, "prefix": True, "aliases": aliases},
    ]


def test_a_render_started_before_a_purge_is_not_served_after_it() -> None:
    views_deps.during_render = lambda: invalidate_page("/list/")
    _state("/list/")
    views_deps.during_render = None
    assert _state("/list/") == "miss"


def _cli(*args: str) -> str:
    out = StringIO()
    call_command("cachewise", "invalidate", *args, stdout=out)
    return out.getvalue()


def test_cli_path_and_prefix() -> None:
    _all_cached("/motd/", VARIANTS)
    _all_cached("/authors/", VARIANTS[:1])
    views_deps.external["motd"] = "changed"
    assert "purged on every host" in _cli("--path", "/motd/")
    assert {_body("/motd/", variant) for variant in VARIANTS} == {"changed"}
    assert _state("/authors/", VARIANTS[0]) == "hit"
    assert "purged on example.com" in _cli("--path", "/authors/", "--host", "example.com")
    assert _state("/authors/", VARIANTS[0]) == "miss"
    views_deps.external["motd"] = "again"
    _cli("--prefix", "/")
    assert {_body("/motd/", variant) for variant in VARIANTS} == {"again"}


def test_cli_purge_of_an_unreachable_cache_is_an_error(settings: Any) -> None:
    settings.CACHES = caches_from_url("redis://127.0.0.1:1/0")
    with pytest.raises(CommandError, match="could not invalidate path"):
        _cli("--path", "/authors/")
