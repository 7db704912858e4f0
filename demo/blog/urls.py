"""URLs of the blog: each cached view at its normal path, its uncached twin under ``/plain/``."""

from __future__ import annotations

from typing import Any

from django.urls import URLPattern, path

from demo.blog import views
from demo.blog.features import feature


def _pair(route: str, plain: Any, cached: Any, name: str, *, available: bool) -> list[URLPattern]:
    patterns = [path(f"plain/{route}", plain, name=f"{name}-plain")]
    if available:
        patterns.append(path(route, cached, name=name))
    return patterns


urlpatterns: list[URLPattern] = [
    *_pair("", views.home, views.home_cached, "home", available=feature("cached") is not None),
    *_pair(
        "articles/",
        views.article_list,
        views.article_list_cached,
        "article-list",
        available=feature("cache_page") is not None,
    ),
    *_pair(
        "articles/<slug:slug>/",
        views.article_detail,
        views.article_detail_cached,
        "article-detail",
        available=feature("cache_tag") is not None,
    ),
    *_pair(
        "api/articles/",
        views.api_articles,
        views.api_articles_cached,
        "api-articles",
        available=feature("cached_list") is not None,
    ),
    *_pair(
        "api/articles/<int:pk>/",
        views.api_article,
        views.api_article_cached,
        "api-article",
        available=feature("CachedRows") is not None,
    ),
    *_pair(
        "api/articles/<int:pk>/view/",
        views.count_view,
        views.count_view_cached,
        "count-view",
        available=feature("Counter") is not None,
    ),
    *_pair(
        "stampede/",
        views.stampede_naive,
        views.stampede_cached,
        "stampede",
        available=feature("cached") is not None,
    ),
]
