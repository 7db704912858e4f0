"""cached_list(): querysets as lists of dicts under the generations of every model they read."""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models import Count, Exists, OuterRef

from cachewise.orm import cached_list
from cachewise.orm.deps import compile_query
from cachewise.orm.lists import _evaluate
from tests.testapp.models import Article, Author, Category, Tag

pytestmark = pytest.mark.django_db(transaction=True)


def _reads(queryset: Any) -> set[str | None]:
    found, _ = compile_query(queryset.query, "default")
    return {model._meta.model_name for model in found}


@pytest.fixture
def author() -> Author:
    author: Author = Author.objects.create(name="Ann")
    for i in range(3):
        Article.objects.create(title=f"T{i}", author=author, featured=i != 1)
    return author


def test_values_list_is_cached_and_hits_without_a_query(
    author: Author, django_assert_num_queries: Any
) -> None:
    featured = Article.objects.filter(featured=True).order_by("-pk").values("title", "author__name")[:10]
    with django_assert_num_queries(1):
        rows = cached_list(featured, ttl=60)
    assert rows == [{"title": "T2", "author__name": "Ann"}, {"title": "T0", "author__name": "Ann"}]
    with django_assert_num_queries(0):
        assert cached_list(featured, ttl=60) == rows


def test_model_queryset_gives_dicts_with_select_related_nested(author: Author) -> None:
    rows = cached_list(Article.objects.select_related("author").order_by("pk"), ttl=60)
    assert rows[0]["title"] == "T0"
    assert rows[0]["author_id"] == author.pk
    assert rows[0]["author"] == {"id": author.pk, "name": "Ann"}
    annotated = cached_list(Author.objects.annotate(n=Count("articles")).order_by("pk"), ttl=60)
    assert annotated == [{"id": author.pk, "name": "Ann", "n": 3}]


def test_different_queries_never_share_an_entry(author: Author) -> None:
    first = cached_list(Article.objects.filter(title="T0").values("title"), ttl=60)
    second = cached_list(Article.objects.filter(title="T1").values("title"), ttl=60)
    assert (first, second) == ([{"title": "T0"}], [{"title": "T1"}])


def test_user_key_names_the_list(author: Author, django_assert_num_queries: Any) -> None:
    titles = Article.objects.order_by("pk").values("title")
    with django_assert_num_queries(1):
        cached_list(titles, ttl=60, key="all-titles")
    with django_assert_num_queries(0):
        assert len(cached_list(titles, ttl=60, key="all-titles")) == 3
    Article.objects.create(title="T3", author=author)
    assert len(cached_list(titles, ttl=60, key="all-titles")) == 4


def test_depends_on_adds_models_the_query_does_not_show(
    author: Author, django_assert_num_queries: Any
) -> None:
    titles = Article.objects.order_by("pk").values("title")
    cached_list(titles, ttl=60, depends_on=[Category])
    with django_assert_num_queries(0):
        cached_list(titles, ttl=60, depends_on=[Category])
    Category.objects.create(name="extra")
    with django_assert_num_queries(1):
        cached_list(titles, ttl=60, depends_on=[Category])


def test_caller_queryset_result_cache_is_not_filled(author: Author, django_assert_num_queries: Any) -> None:
    titles = Article.objects.order_by("pk").values("title")
    cached_list(titles, ttl=60)
    Article.objects.filter(title="T0").update(title="changed")
    assert cached_list(titles, ttl=60)[0] == {"title": "changed"}
    assert titles._result_cache is None


def test_empty_in_filter_needs_no_cache_and_no_query(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        assert cached_list(Article.objects.filter(pk__in=[]), ttl=60) == []


def test_unsupported_querysets_are_refused() -> None:
    with pytest.raises(TypeError, match="prefetch_related"):
        cached_list(Article.objects.prefetch_related("tags"), ttl=60)
    with pytest.raises(TypeError, match="values_list"):
        cached_list(Article.objects.values_list("title", flat=True), ttl=60)
    with pytest.raises(TypeError, match="QuerySet"):
        cached_list([1, 2], ttl=60)  # type: ignore[arg-type]


def test_fill_started_before_invalidation_is_not_served(
    author: Author, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    titles = Article.objects.order_by("pk").values("title")
    from cachewise.orm import lists

    def evaluate_then_concurrent_write(queryset: Any) -> list[dict[str, Any]]:
        old = _evaluate(queryset)
        Article.objects.filter(title="T0").update(title="new")
        return old

    monkeypatch.setattr(lists, "_evaluate", evaluate_then_concurrent_write)
    assert cached_list(titles, ttl=60)[0] == {"title": "T0"}
    monkeypatch.undo()
    with django_assert_num_queries(1):
        assert cached_list(titles, ttl=60)[0] == {"title": "new"}


def test_dependencies_cover_every_way_a_query_reads_a_model() -> None:
    assert _reads(Article.objects.all()) == {"article"}
    assert _reads(Article.objects.values("author_id")) == {"article"}
    assert _reads(Article.objects.filter(author__name="x")) == {"article", "author"}
    assert _reads(Article.objects.values("title", "category__name")) == {"article", "category"}
    assert _reads(Article.objects.select_related("author")) == {"article", "author"}
    assert _reads(Article.objects.order_by("category__name")) == {"article", "category"}
    assert _reads(Article.objects.filter(tags__name="x")) == {"article", "tag", "article_tags"}
    assert _reads(Article.objects.filter(author__in=Author.objects.filter(name="x"))) == {"article", "author"}
    has_tags = Exists(Tag.objects.filter(articles=OuterRef("pk")))
    assert _reads(Article.objects.filter(has_tags)) == {"article", "tag", "article_tags"}
    union = Article.objects.values("title").union(Category.objects.values("name"))
    assert _reads(union) == {"article", "category"}


def test_tables_of_no_model_need_depends_on(author: Author) -> None:
    from cachewise.orm.deps import UnknownTableError

    raw = Article.objects.extra(tables=["django_migrations"], where=["1 = 0"]).values("title")
    with pytest.raises(UnknownTableError, match="django_migrations"):
        cached_list(raw, ttl=60)
    assert cached_list(raw, ttl=60, depends_on=[Author]) == []
