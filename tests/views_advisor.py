"""Views of the advisor tests (tests/monitoring/test_advisor.py): shared, personalised, cookie-setting pages.

Every view reads the database the same way (a list of articles, and a count), so their ranking is
decided by what the advisor observes about their answers, not by how much work they do.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.urls import URLPattern, URLResolver, include, path

from cachewise.decorators import cache_page
from tests.testapp.models import Article, Author, Category

#: The "applied advice" switch of the verification test: serve /applied/ through cache_page.
applied = {"cached": False}


def _titles() -> str:
    # Enough rows that the database time of a request is well above the machine's noise.
    return ",".join(Article.objects.order_by("-title").values_list("title", flat=True)[:300])[:200]


def shared(request: HttpRequest) -> HttpResponse:
    """The same page for everyone: the titles of the articles."""
    return HttpResponse(f"<html>{_titles()} ({Article.objects.count()})</html>")


def personalised(request: HttpRequest) -> HttpResponse:
    """The visitor's own articles: one page per visitor at the same URL, from per-visitor queries.

    (A page that only greets by name around shared data is another case: its shared queries can
    be cached as a fragment, and the advisor says so.)
    """
    user: Any = request.user
    mine = Article.objects.filter(author__name=user.username)
    titles = ",".join(mine.order_by("-title").values_list("title", flat=True)[:300])[:200]
    return HttpResponse(f"<html>Hello {user.username}: {titles} ({mine.count()})</html>")


def greeting(request: HttpRequest) -> HttpResponse:
    """Shared titles, greeted by name: one visitor's page around data everyone shares."""
    user: Any = request.user
    return HttpResponse(f"<html>Hello {user.username}: {_titles()} ({Article.objects.count()})</html>")


def sets_cookie(request: HttpRequest) -> HttpResponse:
    """The same titles for everyone, but every response sets a tracking cookie."""
    response = HttpResponse(f"<html>{_titles()} ({Article.objects.count()})</html>")
    response.set_cookie("seen", "1")
    return response


def csrf_form(request: HttpRequest) -> HttpResponse:
    """A page with a form: the CSRF token in it is the visitor's own."""
    return HttpResponse(f"<html>{_titles()}<input value='{get_token(request)}'></html>")


def authors(request: HttpRequest) -> JsonResponse:
    """A list read from the author table only."""
    return JsonResponse({"authors": list(Author.objects.order_by("pk").values_list("name", flat=True)[:20])})


def categories(request: HttpRequest) -> JsonResponse:
    """A list read from the category table only."""
    return JsonResponse({"categories": list(Category.objects.order_by("pk").values_list("name", flat=True))})


def trivial(request: HttpRequest) -> HttpResponse:
    """No database at all."""
    return HttpResponse("ok")


@cache_page(300)
def _applied_cached(request: HttpRequest) -> HttpResponse:
    return shared(request)


def applied_view(request: HttpRequest) -> HttpResponse:
    """``shared``, or ``shared`` under ``cache_page(300)`` once the test applies the advice."""
    return _applied_cached(request) if applied["cached"] else shared(request)


urlpatterns: list[URLPattern | URLResolver] = [
    path("shared/", shared, name="shared"),
    path("personalised/", personalised, name="personalised"),
    path("greeting/", greeting, name="greeting"),
    path("sets-cookie/", sets_cookie, name="sets-cookie"),
    path("csrf/", csrf_form, name="csrf"),
    path("authors/", authors, name="authors"),
    path("categories/", categories, name="categories"),
    path("trivial/", trivial),
    path("applied/", applied_view, name="applied"),
    path("cache/", include("cachewise.monitoring.urls")),
]
