"""{% cache depends_on %} with a write committing between the view's load and the tag's render.

The view loads the data, then (forced here, by a hook the test sets) another writer commits and
bumps the versions, then the template renders. That request shows what its view loaded; the
fragment must not be stored under the new versions, or every later request would serve the old
data for the fragment's whole TTL.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.test import Client
from django.urls import path

from cachewise.compute.namespace import Namespace
from tests.testapp.models import Article, Author, Category

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]

#: Runs after the view loaded its data and before the template renders (the forced interleaving).
between: list[Callable[[], None]] = []
category_ns = Namespace("faults-category")


def _render(request: HttpRequest, source: str, **context: object) -> HttpResponse:
    for hook in between:
        hook()
    between.clear()
    template = engines["django"].from_string("{% load cachewise %}" + source)
    return HttpResponse(template.render(context, request))


def author_view(request: HttpRequest, pk: int) -> HttpResponse:
    author = Author.objects.get(pk=pk)  # no updated_at: versioned by the ORM's row counters
    return _render(
        request, "{% cache 600 byline depends_on=author %}{{ author.name }}{% endcache %}", author=author
    )


def article_view(request: HttpRequest, pk: int) -> HttpResponse:
    article = Article.objects.get(pk=pk)  # updated_at: keyed by the data itself
    source = "{% cache 600 body depends_on=article %}{{ article.title }}{% endcache %}"
    return _render(request, source, article=article)


def category_view(request: HttpRequest, pk: int) -> HttpResponse:
    name = Category.objects.values_list("name", flat=True).get(pk=pk)  # versioned by a Namespace
    source = "{% cache 600 cat depends_on=ns|scope:pk %}{{ name }}{% endcache %}"
    return _render(request, source, name=name, ns=category_ns, pk=pk)


urlpatterns = [
    path("author/<int:pk>/", author_view),
    path("article/<int:pk>/", article_view),
    path("category/<int:pk>/", category_view),
]


def _two_requests(url: str, write: Callable[[], None]) -> tuple[str, str]:
    client = Client()
    assert client.get(url).content.decode() == "old"  # warm: stored under the current versions
    between.append(write)
    during = client.get(url).content.decode()
    after = client.get(url).content.decode()
    return during, after


def test_row_without_updated_at_written_between_load_and_render_is_not_stored() -> None:
    author = Author.objects.create(name="old")

    def write() -> None:
        Author(pk=author.pk, name="new").save()  # committed and invalidated (autocommit)

    during, after = _two_requests(f"/author/{author.pk}/", write)
    assert during == "old"  # what this request's view loaded
    assert after == "new"


def test_row_with_updated_at_written_between_load_and_render_is_not_stored() -> None:
    author = Author.objects.create(name="a")
    article = Article.objects.create(title="old", author=author)

    def write() -> None:
        fresh = Article.objects.get(pk=article.pk)
        fresh.title = "new"
        fresh.save()

    during, after = _two_requests(f"/article/{article.pk}/", write)
    assert (during, after) == ("old", "new")


def test_namespace_bumped_between_load_and_render_is_not_stored() -> None:
    category = Category.objects.create(name="old")

    def write() -> None:
        Category.objects.filter(pk=category.pk).update(name="new")
        category_ns.bump(category.pk)

    url = f"/category/{category.pk}/"
    during, after = _two_requests(url, write)
    assert (during, after) == ("old", "new")
    # A request that starts after the bump stores the fresh fragment again (one starting within
    # the clock check's margin of the bump, a few ms, may not: the check errs on not storing).
    time.sleep(0.05)
    assert Client().get(url).content.decode() == "new"
    # Cached again: a change nobody bumped for stays invisible.
    Category.objects.filter(pk=category.pk).update(name="not bumped")
    assert Client().get(url).content.decode() == "new"
