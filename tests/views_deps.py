"""Views of the page-dependency tests (tests/pagecache/test_deps*.py) and their Gunicorn site.

The same views are served cached by ``cache_page`` (``/list/``, ``/detail/<pk>/``...) and, under
``/site/``, by the site-wide middleware alone. Pages print what the user would see: titles,
author names, tag names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.template import engines
from django.urls import URLPattern, path

from cachewise import Namespace, page_depends_on
from cachewise.decorators import cache_page
from cachewise.orm import cached_list
from tests.testapp.models import Article, Author

#: Renders per view name (the tests' way to tell a hit from a render).
renders: dict[str, int] = {}
#: Data "from an external API": the page cannot see it change; a Namespace tells it.
external = {"motd": "hello"}
motd = Namespace("motd")
#: Called by the list view after its queries ran (a write racing the render).
during_render: Callable[[], Any] | None = None


def _rendered(name: str) -> None:
    renders[name] = renders.get(name, 0) + 1


def _line(article: Article) -> str:
    tags = ",".join(sorted(tag.name for tag in article.tags.all()))
    return f"{article.title} by {article.author.name} [{tags}]"


def article_list(request: HttpRequest) -> HttpResponse:
    _rendered("list")
    articles = Article.objects.select_related("author").prefetch_related("tags").order_by("pk")
    lines = [_line(article) for article in articles]
    if during_render is not None:
        during_render()
    return HttpResponse("\n".join(lines))


def article_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _rendered("detail")
    article = Article.objects.select_related("author").prefetch_related("tags").filter(pk=pk).first()
    if article is None:
        raise Http404("no such article")
    return HttpResponse(_line(article))


async def async_titles(request: HttpRequest) -> HttpResponse:
    _rendered("async")
    titles = [title async for title in Article.objects.order_by("pk").values_list("title", flat=True)]
    return HttpResponse(",".join(titles))


def from_orm_caches(request: HttpRequest, pk: int) -> HttpResponse:
    # Both reads run no query when their own caches hit: the page must still see the tables.
    _rendered("orm-caches")
    titles = [row["title"] for row in cached_list(Article.objects.order_by("pk").values("title"))]
    row = Article.cached.get(pk) or {}
    return HttpResponse(f"{','.join(titles)} | {row.get('title')} by {row.get('author__name')}")


def author_names(request: HttpRequest) -> HttpResponse:
    _rendered("authors")
    return HttpResponse(",".join(Author.objects.order_by("pk").values_list("name", flat=True)))


def raw_titles(request: HttpRequest) -> HttpResponse:
    _rendered("raw")
    with connection.cursor() as cursor:
        cursor.execute("SELECT title FROM testapp_article ORDER BY id")
        return HttpResponse(",".join(row[0] for row in cursor.fetchall()))


def motd_page(request: HttpRequest) -> HttpResponse:
    _rendered("motd")
    page_depends_on(motd)
    return HttpResponse(external["motd"])


_FRAGMENT = engines["django"].from_string(
    "{% load cachewise %}page:{{ n }} {% cache 300 'motd' depends_on=motd %}{{ text }}{% endcache %}"
)


def with_fragment(request: HttpRequest) -> HttpResponse:
    _rendered("fragment")
    # The page reads nothing itself: only the fragment's depends_on says what it shows.
    context = {"motd": motd, "text": external["motd"], "n": renders["fragment"]}
    return HttpResponse(_FRAGMENT.render(context, request))


def _cached(view: Any, **options: Any) -> Any:
    return cache_page(300, **options)(view)


urlpatterns: list[URLPattern] = [
    path("list/", _cached(article_list)),
    path("detail/<int:pk>/", _cached(article_detail)),
    path("untracked/", _cached(article_list, track_queries=False)),
    path("authors/", _cached(author_names)),
    path("async/", _cached(async_titles)),
    path("orm-caches/<int:pk>/", _cached(from_orm_caches)),
    path("authors-declared/", _cached(author_names, track_queries=False, depends_on=[Author])),
    path("raw/", _cached(raw_titles)),
    path("motd/", _cached(motd_page)),
    path("fragment/", _cached(with_fragment)),
    path("site/list/", article_list),
    path("site/detail/<int:pk>/", article_detail),
]
