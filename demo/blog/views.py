"""One view per cachewise pattern, each next to its uncached twin so the load run can compare.

Plain views do the work on every request. The cached twins use, in order: ``cached()`` for the
home page's aggregates, ``cache_page`` for the article list, a ``{% cache ... depends_on=article %}``
fragment on the article page, ``cached_list`` for the JSON list, and ``Counter`` for view counts.
A twin exists only when this checkout has its cachewise feature (see ``features.py``).
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from cachewise.exceptions import CacheUnavailableError
from demo.blog import data
from demo.blog.counters import article_views
from demo.blog.features import feature
from demo.blog.models import ROW_FIELDS, Article
from demo.instrument import count_queries, mark_computed

_cached = feature("cached")
_cache_page = feature("cache_page")
_cached_list = feature("cached_list")

cached_home_stats = _cached(ttl=600, stampede="lock")(data.home_stats) if _cached else None
cached_slow_report = _cached(ttl=300, stampede="lock")(data.slow_report) if _cached else None
NAIVE_REPORT_KEY = "demo:naive-slow-report"


def _page(request: HttpRequest) -> int:
    raw = request.GET.get("page", "1")
    return int(raw) if raw.isdigit() else 1


def home(request: HttpRequest) -> HttpResponse:
    """Aggregates computed on every request."""
    return render(request, "blog/home.html", {"stats": data.home_stats(), "cached": False})


def home_cached(request: HttpRequest) -> HttpResponse:
    """The same aggregates through ``@cached`` (single flight on a miss)."""
    return render(request, "blog/home.html", {"stats": cached_home_stats(), "cached": True})


def article_list(request: HttpRequest) -> HttpResponse:
    """Fifty articles with their authors and categories, rendered on every request."""
    mark_computed()
    page = _page(request)
    context = {"articles": data.article_page(page), "page": page, "next_page": page + 1}
    return render(request, "blog/article_list.html", context)


#: The whole response cached for five minutes; never stored for a personalised response; fresh
#: after any committed write to a table it read (automatic dependencies). Only ``?page=`` takes
#: part in the key: any other query parameter is served uncached.
article_list_cached = _cache_page(300, query_params=("page",))(article_list) if _cache_page else None


def _article_context(slug: str) -> dict[str, Any]:
    article = get_object_or_404(Article.objects.select_related("author", "category"), slug=slug)
    # Lazy querysets: they run only when the fragment renders, i.e. on a fragment miss.
    others = Article.objects.exclude(pk=article.pk).select_related("author")
    return {
        "article": article,
        "popular": others.filter(category_id=article.category_id).order_by("-views")[:8],
        "by_author": others.filter(author_id=article.author_id).order_by("-views")[:5],
        "author_articles": article.author.articles.all(),
    }


def article_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The article page, its body and sidebar rendered on every request."""
    return render(request, "blog/article_detail.html", _article_context(slug))


def _article_detail_fragment(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "blog/article_detail_cached.html", _article_context(slug))


#: The article page cached whole, fresh after any committed write to what it read (automatic
#: dependencies); its body and sidebar also sit in a fragment that depends on the article, so a
#: page render after an unrelated write reuses them.
article_detail_cached = (
    _cache_page(300)(_article_detail_fragment) if _cache_page else _article_detail_fragment
)


def _category(request: HttpRequest) -> str:
    return request.GET.get("category", "performance")[:50]


def api_articles(request: HttpRequest) -> JsonResponse:
    """The newest articles of a category as JSON, queried on every request."""
    mark_computed()
    rows = list(data.category_articles(_category(request)))
    return JsonResponse({"articles": rows})


def api_articles_cached(request: HttpRequest) -> JsonResponse:
    """The same list through ``cached_list``: invalidated when an Article, Author or Category changes."""
    category = _category(request)
    with count_queries() as queries:
        # An explicit key skips compiling the SQL on a hit; it must always mean this query.
        rows = _cached_list(data.category_articles(category), ttl=600, key=("api-articles", category))
    if queries():
        mark_computed()
    return JsonResponse({"articles": list(rows)})


def api_article(request: HttpRequest, pk: int) -> JsonResponse:
    """One article as JSON, queried on every request."""
    mark_computed()
    row = Article.objects.filter(pk=pk).values(*ROW_FIELDS).first()
    return JsonResponse({"article": row}, status=200 if row else 404)


def api_article_cached(request: HttpRequest, pk: int) -> JsonResponse:
    """The same row through ``Article.cached`` (``CachedRows``): a dict, no query on a hit."""
    with count_queries() as queries:
        row = Article.cached.get(pk)
    if queries():
        mark_computed()
    return JsonResponse({"article": row}, status=200 if row else 404)


@csrf_exempt
@require_POST
def count_view(request: HttpRequest, pk: int) -> JsonResponse:
    """Count a view with an UPDATE per request (the database serialises every writer)."""
    Article.objects.filter(pk=pk).update(views=F("views") + 1)
    return JsonResponse({"ok": True})


@csrf_exempt
@require_POST
def count_view_cached(request: HttpRequest, pk: int) -> JsonResponse:
    """Count a view in Redis (one round trip); ``flush_views()`` moves the counts to the database.

    ``Counter.incr`` raises rather than pretend when Redis is down (a faked increment is a lost
    one): count that view with an UPDATE instead, as the uncached twin does.
    """
    try:
        return JsonResponse({"pending": article_views.incr(pk)})
    except CacheUnavailableError:
        Article.objects.filter(pk=pk).update(views=F("views") + 1)
        return JsonResponse({"pending": None})


def stampede_naive(request: HttpRequest) -> JsonResponse:
    """The slow report with a bare get-then-set: every request that misses recomputes."""
    value = cache.get(NAIVE_REPORT_KEY)
    if value is None:
        value = data.slow_report()
        cache.set(NAIVE_REPORT_KEY, value, 300)
    return JsonResponse(value)


def stampede_cached(request: HttpRequest) -> JsonResponse:
    """The slow report through ``@cached(stampede="lock")``: one request recomputes, others wait."""
    return JsonResponse(cached_slow_report())
