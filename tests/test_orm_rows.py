"""CachedRows: rows by primary key as plain dicts, one round trip, never a stale refill."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from cachewise.orm import CachedRows
from cachewise.orm.rows import RowCache
from tests.testapp.models import Article, Author, Category

pytestmark = pytest.mark.django_db(transaction=True)


def _commands(redis_client: Any) -> dict[str, int]:
    stats = redis_client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    # "info" itself is the only command the measurement adds.
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0) and k != "info"}


@pytest.fixture
def article() -> Article:
    author = Author.objects.create(name="Ann")
    category = Category.objects.create(name="News")
    return Article.objects.create(title="First", slug="first", author=author, category=category)


def test_get_returns_plain_dict_of_the_fields_and_hits_without_a_query(
    article: Article, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        row = Article.cached.get(article.pk)
    assert row is not None
    assert set(row) == {"id", "title", "slug", "author__name", "category_id", "updated_at"}
    assert (row["id"], row["title"], row["author__name"]) == (article.pk, "First", "Ann")
    with django_assert_num_queries(0):
        assert Article.cached.get(article.pk) == row
        assert Article.cached.get(str(article.pk)) == row  # pk normalised by the pk field


def test_stored_value_is_a_stamped_plain_dict(article: Article) -> None:
    Article.cached.get(article.pk)
    stored = caches["default"].get(Article.cached.key(article.pk))
    stamp, data = stored
    assert all(isinstance(part, int) for part in stamp)
    assert type(data) is dict
    assert not any(hasattr(value, "_meta") for value in data.values())


def test_key_carries_a_hash_of_the_field_list(article: Article) -> None:
    other = RowCache(Article, ["id", "title"], ttl=60)
    assert other.key(article.pk) != Article.cached.key(article.pk)
    Article.cached.get(article.pk)
    assert other.get(article.pk) == {"id": article.pk, "title": "First"}


def test_missing_row_is_none_and_remembered_until_created(
    article: Article, django_assert_num_queries: Any
) -> None:
    missing = article.pk + 100
    with django_assert_num_queries(1):
        assert Article.cached.get(missing) is None
    with django_assert_num_queries(0):
        assert Article.cached.get(missing) is None
    Article.objects.create(pk=missing, title="Late", author=article.author)
    with django_assert_num_queries(1):
        row = Article.cached.get(missing)
    assert row is not None
    assert row["title"] == "Late"


def test_get_many_one_query_for_misses_and_one_round_trip(
    article: Article, django_assert_num_queries: Any, redis_client: Any
) -> None:
    more = [Article.objects.create(title=f"A{i}", author=article.author) for i in range(4)]
    pks = [article.pk, *(a.pk for a in more), 999_999]
    Article.cached.get(more[0].pk)
    before = _commands(redis_client)
    with django_assert_num_queries(1):
        rows = Article.cached.get_many(pks)
    assert set(rows) == set(pks) - {999_999}
    assert rows[more[2].pk]["title"] == "A2"
    # One read script (MGET + counter initialisation), then one fenced fill script per miss
    # (pipelined: one more round trip).
    delta = _delta(before, _commands(redis_client))
    assert (delta["evalsha"], delta["mget"]) == (1 + 5, 1)
    before = _commands(redis_client)
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks) == rows
    assert _delta(before, _commands(redis_client)) == {"evalsha": 1, "mget": 1}


def test_get_many_of_nothing_touches_nothing(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        assert Article.cached.get_many([]) == {}


def test_fill_started_before_invalidation_is_not_served(
    article: Article, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    real_query = RowCache._query

    def query_then_concurrent_write(self: RowCache, plan: Any, pks: list[Any]) -> Any:
        old = real_query(self, plan, pks)  # the reader has the old row in hand...
        Article.objects.filter(pk=article.pk).update(title="Second")  # ...a write commits
        return old  # ...and the reader stores the old row afterwards

    monkeypatch.setattr(RowCache, "_query", query_then_concurrent_write)
    assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
    monkeypatch.undo()
    with django_assert_num_queries(1):
        assert Article.cached.get(article.pk)["title"] == "Second"  # type: ignore[index]


def test_to_many_fields_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="to-many"):
        RowCache(Author, ["name", "articles__title"], ttl=60).get(1)
    with pytest.raises(ImproperlyConfigured, match="no field"):
        RowCache(Author, ["nope"], ttl=60).get(1)


def test_declaration_is_validated() -> None:
    with pytest.raises(TypeError):
        CachedRows(fields="title", ttl=60)
    with pytest.raises(ValueError, match="positive"):
        CachedRows(fields=["title"], ttl=0)


def test_cache_outage_reads_from_the_database(
    article: Article, settings: Any, disposable_redis: Any, django_assert_num_queries: Any
) -> None:
    from cachewise import caches_from_url

    settings.CACHES = caches_from_url(disposable_redis.url, key_prefix="outage")
    disposable_redis.kill()
    with django_assert_num_queries(1):
        row = Article.cached.get(article.pk)
    assert row is not None
    assert row["title"] == "First"


@pytest.fixture(params=["django-redis", "locmem"])
def other_backend(request: pytest.FixtureRequest, settings: Any, redis_server: Any) -> Iterator[str]:
    """The same behaviour on Django's built-in RedisCache (Lua path) and LocMem (generic path)."""
    if request.param == "locmem":
        backend = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "orm-generic"}
    else:
        backend = {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_server.url,
            "KEY_PREFIX": f"orm-django-{id(request)}",
        }
    settings.CACHES = {"default": backend}
    yield request.param
    caches["default"].clear()


def test_other_backends_hit_invalidate_and_refuse_stale_fills(
    other_backend: str, article: Article, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        Article.cached.get(article.pk)
    with django_assert_num_queries(0):
        assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
    article.title = "Second"
    article.save()
    with django_assert_num_queries(1):
        assert Article.cached.get(article.pk)["title"] == "Second"  # type: ignore[index]
    real_query = RowCache._query

    def query_then_concurrent_write(self: RowCache, plan: Any, pks: list[Any]) -> Any:
        old = real_query(self, plan, pks)
        Article.objects.filter(pk=article.pk).update(title="Third")
        return old

    Author.objects.filter(pk=article.author_id).update(name="Bea")  # invalidates every row
    monkeypatch.setattr(RowCache, "_query", query_then_concurrent_write)
    assert Article.cached.get(article.pk)["title"] == "Second"  # type: ignore[index]
    monkeypatch.undo()
    with django_assert_num_queries(1):
        assert Article.cached.get(article.pk)["title"] == "Third"  # type: ignore[index]


def test_async_variants_read_through_the_same_cache(article: Article) -> None:
    import asyncio

    from asgiref.sync import sync_to_async
    from django.db import connections

    from cachewise.orm import acached_list

    row = Article.cached.get(article.pk)
    titles = Article.objects.values("title")

    async def read() -> tuple[Any, Any, Any]:
        try:
            return (
                await Article.cached.aget(article.pk),
                await Article.cached.aget_many([article.pk]),
                await acached_list(titles, ttl=60),
            )
        finally:
            # The sync thread opened its own connection: close it, or it blocks dropping the test DB.
            await sync_to_async(connections.close_all)()

    one, many, listed = asyncio.run(read())
    assert (one, many, listed) == (row, {article.pk: row}, [{"title": "First"}])


def test_scripts_forgotten_by_the_server_are_loaded_again(
    article: Article, redis_client: Any, django_assert_num_queries: Any
) -> None:
    Article.cached.get(article.pk)
    redis_client.script_flush()  # as after a restart or failover
    Article.objects.filter(pk=article.pk).update(title="Again")
    redis_client.script_flush()
    with django_assert_num_queries(1):
        assert Article.cached.get(article.pk)["title"] == "Again"  # type: ignore[index]
    redis_client.script_flush()
    with django_assert_num_queries(0):
        assert Article.cached.get(article.pk)["title"] == "Again"  # type: ignore[index]
