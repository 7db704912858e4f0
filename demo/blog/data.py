"""The blog's expensive reads, as plain functions: the views cache them in different ways.

Each function calls :func:`demo.instrument.mark_computed` when its code runs, so the load runner
can tell a request that ran it (a miss) from one that was answered from the cache (a hit).
"""

from __future__ import annotations

import time
from typing import Any

from django.db.models import Count, Max, QuerySet, Sum

from demo.blog.models import Article, Author, Category
from demo.instrument import mark_computed

__all__ = ["LIST_FIELDS", "PAGE_SIZE", "article_page", "category_articles", "home_stats", "slow_report"]

PAGE_SIZE = 50
LIST_FIELDS = ("id", "title", "slug", "author__name", "category__name", "published_at", "views")
STAMPEDE_COMPUTE_SECONDS = 0.4


def home_stats() -> dict[str, Any]:
    """Aggregates for the home page: totals, per-category figures, top authors, featured posts."""
    mark_computed()
    categories = list(
        Category.objects.annotate(article_count=Count("articles"), views=Sum("articles__views"))
        .order_by("-views")
        .values("name", "slug", "article_count", "views")
    )
    authors = list(
        Author.objects.annotate(
            article_count=Count("articles"),
            views=Sum("articles__views"),
            latest=Max("articles__published_at"),
        )
        .order_by("-views")
        .values("name", "slug", "article_count", "views", "latest")[:10]
    )
    featured = list(Article.objects.filter(featured=True).order_by("-published_at").values(*LIST_FIELDS)[:10])
    totals = Article.objects.aggregate(articles=Count("id"), views=Sum("views"))
    return {"categories": categories, "authors": authors, "featured": featured, "totals": totals}


def article_page(page: int) -> QuerySet[Article]:
    """One page of the article list, with its author and category joined."""
    start = (max(page, 1) - 1) * PAGE_SIZE
    return Article.objects.select_related("author", "category").order_by("-published_at")[
        start : start + PAGE_SIZE
    ]


def category_articles(slug: str) -> QuerySet[Article, dict[str, Any]]:
    """The newest articles of one category, each with its author's article count, as dicts."""
    return (
        Article.objects.filter(category__slug=slug)
        .annotate(author_articles=Count("author__articles"))
        .order_by("-published_at")
        .values(*LIST_FIELDS, "author_articles")[:PAGE_SIZE]
    )


def slow_report() -> dict[str, Any]:
    """A deliberately slow report (``STAMPEDE_COMPUTE_SECONDS``) for the stampede scenario."""
    mark_computed()
    time.sleep(STAMPEDE_COMPUTE_SECONDS)
    return {"computed_at": time.time(), **Article.objects.aggregate(articles=Count("id"), views=Sum("views"))}
