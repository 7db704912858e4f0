"""Invalidation: after commit, dropped on rollback, for every kind of write."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection, transaction

from cachewise import invalidate_model
from cachewise.exceptions import CacheUnavailableError
from cachewise.monitoring.metrics import metrics
from cachewise.orm import cached_list, generations, txn
from cachewise.signals import cache_degraded, cache_invalidated
from tests.testapp.models import Article, Author, Category, Tag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def article() -> Article:
    author = Author.objects.create(name="Ann")
    category = Category.objects.create(name="News")
    created: Article = Article.objects.create(title="First", author=author, category=category)
    return created


def _titles() -> list[str]:
    return [row["title"] for row in cached_list(Article.objects.order_by("pk").values("title"), ttl=60)]


def _counter(redis_client: Any, label: str, kind: str, *parts: Any) -> int:
    from django.core.cache import caches

    key = caches["default"].make_and_validate_key(generations.counter_key(label, kind, *parts))
    return int(redis_client.get(key) or 0)


def _assert_refetches(queries: Any, expected_title: str, pk: int) -> None:
    with queries(1):
        row = Article.cached.get(pk)
    assert row is not None
    assert row["title"] == expected_title


def test_save_invalidates_row_and_list_before_returning(
    article: Article, django_assert_num_queries: Any
) -> None:
    assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
    assert _titles() == ["First"]
    article.title = "Second"
    article.save()
    _assert_refetches(django_assert_num_queries, "Second", article.pk)
    assert _titles() == ["Second"]


def test_atomic_block_invalidates_after_commit_only(article: Article, redis_client: Any) -> None:
    Article.cached.get(article.pk)
    before = _counter(redis_client, "testapp.article", "rv", article.pk)
    with transaction.atomic():
        article.title = "Second"
        article.save()
        assert _counter(redis_client, "testapp.article", "rv", article.pk) == before
        # The transaction reads its own write: the cache is bypassed after a write.
        assert Article.cached.get(article.pk)["title"] == "Second"  # type: ignore[index]
        assert _titles() == ["Second"]
    assert _counter(redis_client, "testapp.article", "rv", article.pk) > before
    assert Article.cached.get(article.pk)["title"] == "Second"  # type: ignore[index]


def test_rollback_neither_poisons_nor_invalidates(
    article: Article, redis_client: Any, django_assert_num_queries: Any
) -> None:
    Article.cached.get(article.pk)
    _titles()
    before = _counter(redis_client, "testapp.article", "gen")

    def write_read_and_roll_back() -> None:
        with transaction.atomic():
            article.title = "Uncommitted"
            article.save()
            Article.objects.filter(pk=article.pk).update(title="Uncommitted too")
            assert Article.cached.get(article.pk)["title"] == "Uncommitted too"  # type: ignore[index]
            assert _titles() == ["Uncommitted too"]
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        write_read_and_roll_back()
    assert _counter(redis_client, "testapp.article", "gen") == before
    with django_assert_num_queries(0):
        assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
        assert _titles() == ["First"]


def test_savepoint_rollback_keeps_the_outer_writes_invalidation(
    article: Article, django_assert_num_queries: Any
) -> None:
    Article.cached.get(article.pk)
    with transaction.atomic():
        try:
            with transaction.atomic():
                Author.objects.create(name="Rolled back")
                raise RuntimeError("inner")
        except RuntimeError:
            pass
        Article.objects.filter(pk=article.pk).update(title="Outer")
    _assert_refetches(django_assert_num_queries, "Outer", article.pk)


def test_no_cache_writes_inside_a_transaction_that_has_written(article: Article, redis_client: Any) -> None:
    authors = Author.objects.order_by("pk").values("name")
    with transaction.atomic():
        Category.objects.create(name="Other")
        assert cached_list(authors, ttl=60) == [{"name": "Ann"}]
        assert Article.cached.get(article.pk) is not None
    assert not redis_client.keys("*:orm.testapp.author:v1:list:*")
    assert not redis_client.keys("*:orm.testapp.article:v1:row:*")


def test_select_for_update_is_never_cached(article: Article, django_assert_num_queries: Any) -> None:
    with transaction.atomic():
        for _ in range(2):
            with django_assert_num_queries(1):
                rows = cached_list(Article.objects.select_for_update().filter(pk=article.pk).values("title"))
            assert rows == [{"title": "First"}]


def test_m2m_change_invalidates_lists_through_the_relation(article: Article) -> None:
    tag = Tag.objects.create(name="django")
    tagged = Article.objects.filter(tags__name="django").values("title")
    assert cached_list(tagged, ttl=60) == []
    article.tags.add(tag)
    assert cached_list(tagged, ttl=60) == [{"title": "First"}]
    tag.articles.clear()
    assert cached_list(tagged, ttl=60) == []


def test_related_model_change_invalidates_rows_that_read_it(
    article: Article, django_assert_num_queries: Any
) -> None:
    assert Article.cached.get(article.pk)["author__name"] == "Ann"  # type: ignore[index]
    listed = Article.objects.select_related("author").order_by("pk")
    assert cached_list(listed, ttl=60)[0]["author"]["name"] == "Ann"
    author = article.author
    author.name = "Bea"
    author.save()
    with django_assert_num_queries(1):
        assert Article.cached.get(article.pk)["author__name"] == "Bea"  # type: ignore[index]
    assert cached_list(listed, ttl=60)[0]["author"]["name"] == "Bea"


def test_queryset_update_invalidates(article: Article, django_assert_num_queries: Any) -> None:
    Article.cached.get(article.pk)
    _titles()
    Article.objects.filter(pk=article.pk).update(title="Updated")
    _assert_refetches(django_assert_num_queries, "Updated", article.pk)
    assert _titles() == ["Updated"]


def test_bulk_create_invalidates_lists_and_remembered_misses(article: Article) -> None:
    new_pk = article.pk + 50
    assert Article.cached.get(new_pk) is None
    _titles()
    Article.objects.bulk_create([Article(pk=new_pk, title="Bulk", author=article.author)])
    assert Article.cached.get(new_pk)["title"] == "Bulk"  # type: ignore[index]
    assert _titles() == ["First", "Bulk"]


def test_bulk_update_invalidates(article: Article, django_assert_num_queries: Any) -> None:
    Article.cached.get(article.pk)
    article.title = "Bulk updated"
    Article.objects.bulk_update([article], ["title"])
    _assert_refetches(django_assert_num_queries, "Bulk updated", article.pk)


def test_queryset_delete_invalidates(article: Article) -> None:
    Article.cached.get(article.pk)
    _titles()
    Article.objects.filter(pk=article.pk).delete()
    assert Article.cached.get(article.pk) is None
    assert _titles() == []


def test_instance_delete_and_cascade_invalidate(article: Article) -> None:
    Article.cached.get(article.pk)
    article.author.delete()  # cascades to the article through the deletion collector
    assert Article.cached.get(article.pk) is None
    assert _titles() == []


def test_delete_that_sets_null_without_signals_invalidates(article: Article) -> None:
    assert Article.cached.get(article.pk)["category_id"] is not None  # type: ignore[index]
    Category.objects.filter(pk=article.category_id).delete()
    assert Article.cached.get(article.pk)["category_id"] is None  # type: ignore[index]


def test_invalidate_model_covers_raw_sql(article: Article, django_assert_num_queries: Any) -> None:
    Article.cached.get(article.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Article._meta.db_table} SET title = %s", ["Raw"])
    with django_assert_num_queries(0):
        assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
    invalidate_model(Article)
    _assert_refetches(django_assert_num_queries, "Raw", article.pk)


def test_save_sends_cache_invalidated_and_counts(article: Article) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(kwargs)

    cache_invalidated.connect(receiver)
    try:
        metrics.reset()
        article.save()
    finally:
        cache_invalidated.disconnect(receiver)
    assert {(s["namespace"], s["reason"]) for s in seen} == {("orm.testapp.article", "save")}
    assert metrics.snapshot()[("invalidate", "default", "orm.testapp.article")] == 1


def test_save_adds_one_cache_round_trip(article: Article, redis_client: Any) -> None:
    before = redis_client.info("commandstats")
    article.save()
    after = redis_client.info("commandstats")
    calls = {k: after[k]["calls"] - before.get(k, {"calls": 0})["calls"] for k in after}
    assert calls["cmdstat_evalsha"] == 1
    # Inside the one script: the server clock, then each counter to max(current + 1, now).
    assert not {k for k, v in calls.items() if v and k not in ("cmdstat_evalsha", "cmdstat_info")} - {
        "cmdstat_time",
        "cmdstat_get",
        "cmdstat_set",
        "cmdstat_incr",
        "cmdstat_expire",
    }


def test_failed_invalidation_falls_back_to_a_global_version_bump(
    article: Article, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    from cachewise.orm import invalidation

    Article.cached.get(article.pk)
    real_bump = generations.bump

    def unreachable(alias: str, keys: Any, ttl: int, **options: Any) -> None:
        raise CacheUnavailableError("cache unreachable during the invalidation")

    degraded: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        degraded.append(kwargs)

    cache_degraded.connect(receiver)
    monkeypatch.setattr(generations, "bump", unreachable)
    try:
        Article.objects.filter(pk=article.pk).update(title="While down")  # must not raise
        # Until the global bump is delivered this process reads from the database.
        _assert_refetches(django_assert_num_queries, "While down", article.pk)
    finally:
        cache_degraded.disconnect(receiver)
        monkeypatch.setattr(generations, "bump", real_bump)
    assert degraded[0]["operation"] == "invalidate"
    invalidation._escalate["default"] = 0.0  # the retry interval has passed
    _assert_refetches(django_assert_num_queries, "While down", article.pk)
    with django_assert_num_queries(0):
        assert Article.cached.get(article.pk)["title"] == "While down"  # type: ignore[index]


@pytest.mark.django_db
def test_in_a_testcase_transaction_captured_callbacks_invalidate(
    django_capture_on_commit_callbacks: Any, django_assert_num_queries: Any
) -> None:
    # A write whose on_commit callbacks are still pending makes the (test) transaction "one that
    # has written": the cache is bypassed until they run.
    with django_capture_on_commit_callbacks(execute=True):
        author = Author.objects.create(name="Ann")
    assert not txn.has_written("default")
    with django_capture_on_commit_callbacks(execute=True):
        article = Article.objects.create(title="First", author=author)
    Article.cached.get(article.pk)
    with django_assert_num_queries(0):
        Article.cached.get(article.pk)
    with django_capture_on_commit_callbacks(execute=True):
        Article.objects.filter(pk=article.pk).update(title="Second")
    _assert_refetches(django_assert_num_queries, "Second", article.pk)
