"""CachedRows: rows by primary key as plain dicts, one round trip, never a stale refill."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from cachewise.orm import CachedRows, generations
from cachewise.orm.invalidation import invalidate_rows
from cachewise.orm.rows import RowCache, _pack_head, settle
from cachewise.store import packs
from tests.orm import count_calls
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
    created: Article = Article.objects.create(title="First", slug="first", author=author, category=category)
    return created


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


def _pack_of(redis_client: Any, pk: Any) -> tuple[int, str, Any]:
    """Where row ``pk`` is (its 1-based place in its pack, the pack's full key) and the decoded
    pack. The pointer is the pack's ref (the end of its key), 18 bytes; the pack lists its pks."""
    cache = caches["default"]
    ref = redis_client.get(cache.make_key(Article.cached.key(pk))).decode()
    assert len(ref) == 18
    pack_key = cache.make_key(_pack_head(Article.cached.plan()) + ref)
    pack = cache.decode(redis_client.get(pack_key))  # type: ignore[attr-defined]
    return pack[3].index(pk) + 1, pack_key, pack


def test_rows_are_stored_as_dicts_in_a_pack_behind_a_pointer(article: Article, redis_client: Any) -> None:
    """A row's key points into a pack: ``[shared stamp, [own version, ...], [dict, ...], [pk, ...]]``
    (plain values, in columns: no list per row, no object the garbage collector tracks per row)."""
    row = Article.cached.get(article.pk)
    index, _, pack = _pack_of(redis_client, article.pk)
    shared, owns, rows, pks = pack
    assert pks == [article.pk]
    assert all(isinstance(part, int) for part in shared)
    assert len(owns) == len(rows)
    own, stored = owns[index - 1], rows[index - 1]
    assert not gc.is_tracked(stored)
    assert isinstance(own, int)
    assert type(stored) is dict
    assert stored == row
    assert not any(hasattr(value, "_meta") for value in stored.values())
    assert row is not None
    assert list(row) == ["id", "title", "slug", "author__name", "category_id", "updated_at"]
    # The aware datetime is stored in UTC and comes back aware and equal.
    assert row["updated_at"] == Article.objects.get(pk=article.pk).updated_at
    assert row["updated_at"].utcoffset() is not None
    assert Article.cached.get(article.pk) == row  # and again from the cache


def test_one_fill_is_one_pack_and_a_refilled_row_leaves_the_others_in_it(
    article: Article, redis_client: Any, django_assert_num_queries: Any
) -> None:
    made = Article.objects.bulk_create([Article(title=f"P{i}", author=article.author) for i in range(4)])
    pks = [article.pk, *(a.pk for a in made)]
    rows = Article.cached.get_many(pks)
    packs = {_pack_of(redis_client, pk)[1] for pk in pks}
    assert len(packs) == 1
    invalidate_rows(Article, [made[1].pk])  # bumps that row's own version only
    with django_assert_num_queries(1):
        assert Article.cached.get_many(pks) == rows
    assert _pack_of(redis_client, made[1].pk)[1] not in packs  # refilled alone, into a new pack
    assert {_pack_of(redis_client, pk)[1] for pk in pks if pk != made[1].pk} == packs
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks) == rows


def test_fill_of_a_row_invalidated_meanwhile_stores_no_pointer_for_it(
    article: Article, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fenced per row: the other rows of the fill are stored, the invalidated one is not."""
    other = Article.objects.create(title="Other", author=article.author)
    cache = caches["default"]
    real_query = RowCache._query

    def query_then_concurrent_write(self: RowCache, plan: Any, pks: list[Any]) -> Any:
        old = real_query(self, plan, pks)
        Article.objects.get(pk=article.pk).save()  # bumps article's own version after the read
        return old

    monkeypatch.setattr(RowCache, "_query", query_then_concurrent_write)
    Article.cached.get_many([article.pk, other.pk])
    assert redis_client.get(cache.make_key(Article.cached.key(article.pk))) is None
    assert redis_client.get(cache.make_key(Article.cached.key(other.pk))) is not None
    # Nor does this process remember the pack for it (the pack holds its row as read before the
    # write): the pack of the other row, yes.
    assert Article.cached._refs.get(article.pk) is None
    assert (
        Article.cached._refs.get(other.pk)
        == redis_client.get(cache.make_key(Article.cached.key(other.pk))).decode()
    )


def test_unreadable_pointers_and_packs_are_misses(
    article: Article, redis_client: Any, django_assert_num_queries: Any
) -> None:
    cache = caches["default"]
    row = Article.cached.get(article.pk)
    pointer_key = cache.make_key(Article.cached.key(article.pk))
    ref = redis_client.get(pointer_key)
    # Another row, filled alone: its pack does not hold this row, so pointing there misses too.
    other = Article.objects.create(title="Other", author=article.author)
    Article.cached.get(other.pk)
    other_ref = redis_client.get(cache.make_key(Article.cached.key(other.pk)))
    assert other_ref != ref
    for pointer in (b"garbage", other_ref, ref + b" x", b"-001x", b"x" * 41, b"0001" + ref, b"\xff"):
        redis_client.set(pointer_key, pointer)
        Article.cached._refs.clear()  # read the pointer, as a process that never read the row does
        with django_assert_num_queries(1):
            assert Article.cached.get(article.pk) == row
    redis_client.set(_pack_of(redis_client, article.pk)[1], b"not a pack")
    with django_assert_num_queries(1):
        assert Article.cached.get(article.pk) == row
    with django_assert_num_queries(0):
        assert Article.cached.get(article.pk) == row


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
    # One MGET of pointers and counters; a counter was missing, so the read script (which creates
    # it: two MGETs inside), the MGET of the one pack a pointer names, then ONE fenced fill script
    # for the five misses (one pack: its rows' own counters in one MGET inside, no per-row read).
    delta = _delta(before, _commands(redis_client))
    assert (delta["evalsha"], delta["mget"]) == (1 + 1, 1 + 2 + 1 + 1)
    before = _commands(redis_client)
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks) == rows
    # Hits: the counters and the packs this process remembers (it wrote them) in ONE MGET.
    assert _delta(before, _commands(redis_client)) == {"mget": 1}
    # A process that never read these rows: the pointers and counters in one MGET, the packs they
    # name in another; no script.
    Article.cached._refs.clear()
    before = _commands(redis_client)
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks) == rows
    assert _delta(before, _commands(redis_client)) == {"mget": 2}
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks) == rows
    assert _delta(before, _commands(redis_client)) == {"mget": 3}


def test_remembered_packs_serve_only_current_rows(
    article: Article, django_assert_num_queries: Any, redis_client: Any
) -> None:
    """A process remembers the pack of each row it read or filled and reads it without the row's
    pointer; the stamps still decide: a row written since, or refilled elsewhere, or whose pack
    is gone, is read through its pointer, never served stale."""
    cache = caches["default"]
    others = [Article.objects.create(title=f"B{i}", author=article.author) for i in range(3)]
    pks = [article.pk, *(other.pk for other in others)]
    Article.cached.get_many(pks)
    pointer_keys = [cache.make_key(Article.cached.key(pk)) for pk in pks]
    redis_client.unlink(*pointer_keys)
    with django_assert_num_queries(0):  # the packs alone, pointers gone
        assert Article.cached.get_many(pks)[article.pk]["title"] == "First"
    # Another process (its own RowCache, so its own memory) sees the write and refills the row.
    article.title = "Edited"
    article.save()  # bumps the row's own version after the commit
    elsewhere = RowCache(Article, Article.cached.fields, ttl=300)
    with django_assert_num_queries(1):
        assert elsewhere.get(article.pk)["title"] == "Edited"  # type: ignore[index]
    # This process remembers the old pack: its stamp is stale, the pointer names the new one.
    with django_assert_num_queries(0):
        rows = Article.cached.get_many(pks)
    assert rows[article.pk]["title"] == "Edited"
    assert [rows[other.pk]["title"] for other in others] == ["B0", "B1", "B2"]
    # Every pack gone (evicted, expired): read through the pointers, then the database.
    for key in redis_client.scan_iter("*:orm.testapp.article:v1:pack:*"):
        redis_client.unlink(key)
    with django_assert_num_queries(1):
        assert Article.cached.get_many(pks)[article.pk]["title"] == "Edited"
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks)[article.pk]["title"] == "Edited"


def test_a_gone_remembered_pack_is_a_miss_without_reading_pointers(
    article: Article, django_assert_num_queries: Any, redis_client: Any
) -> None:
    """Rows whose remembered pack is gone (evicted, expired, cleared) go to the database after ONE
    read: their pointers named that pack. A refill elsewhere after the same loss costs this
    process one query more, never a stale row; the next read goes through the pointers again."""
    others = [Article.objects.create(title=f"G{i}", author=article.author) for i in range(3)]
    pks = [article.pk, *(other.pk for other in others)]
    Article.cached.get_many(pks)
    for key in redis_client.scan_iter("*:orm.testapp.article:v1:pack:*"):
        redis_client.unlink(key)
    before = _commands(redis_client)
    with django_assert_num_queries(1):
        assert Article.cached.get_many(pks)[article.pk]["title"] == "First"
    # The counters and the remembered packs (gone), then the fill script (its rows' own counters
    # in one MGET inside): no read of the pointers.
    delta = _delta(before, _commands(redis_client))
    assert (delta["mget"], delta["evalsha"]) == (1 + 1, 1)
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks)[article.pk]["title"] == "First"
    # Lost again; meanwhile another process refilled the rows after a write.
    for key in redis_client.scan_iter("*:orm.testapp.article:v1:pack:*"):
        redis_client.unlink(key)
    Article.objects.filter(pk=article.pk).update(title="Refilled")
    elsewhere = RowCache(Article, Article.cached.fields, ttl=300)
    with django_assert_num_queries(1):
        elsewhere.get_many(pks)
    with django_assert_num_queries(1):  # one query more here, the current row
        assert Article.cached.get_many(pks)[article.pk]["title"] == "Refilled"
    Article.cached._refs.clear()  # as after the lost packs: read through the pointers
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks)[article.pk]["title"] == "Refilled"


def test_remembered_packs_past_their_ttl_are_not_read(
    article: Article, django_assert_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack expires one TTL after its write at the latest: once that much time has passed since
    this process learnt it, its rows go to their pointers at once (no read that finds nothing)."""
    short = RowCache(Article, Article.cached.fields, ttl=1)
    short.get(article.pk)
    known_reads = count_calls(monkeypatch, generations, "read_known")
    with django_assert_num_queries(0):
        assert short.get(article.pk)["title"] == "First"  # type: ignore[index]
    assert known_reads == [1]  # the remembered pack, without the pointer
    time.sleep(1.1)  # the pack and its pointer expire
    with django_assert_num_queries(1):
        assert short.get(article.pk)["title"] == "First"  # type: ignore[index]
    assert known_reads == [1]  # not read again: straight to the pointer
    with django_assert_num_queries(0):
        assert short.get(article.pk)["title"] == "First"  # type: ignore[index]
    assert known_reads == [1, 1]  # the refilled pack is remembered


def test_remembered_packs_are_bounded(article: Article, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cachewise.orm.rows._REFS_MAX", 5)
    others = [Article.objects.create(title=f"C{i}", author=article.author) for i in range(7)]
    for other in others:
        Article.cached.get(other.pk)
        assert len(Article.cached._refs) <= 5
    Article.cached.get_many([other.pk for other in others])  # more rows than the bound: not kept
    assert len(Article.cached._refs) <= 5


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


def test_get_many_of_several_chunks_queries_its_misses_once(
    article: Article, django_assert_num_queries: Any, redis_client: Any
) -> None:
    """1,100 pks are two bounded reads (1,000 + 100) but ONE query for the misses, then the fills
    (split only where the database takes fewer parameters: SQLite's 999)."""
    from django.db import connection

    made = Article.objects.bulk_create([Article(title=f"B{i}", author=article.author) for i in range(1099)])
    pks = [article.pk, *(a.pk for a in made)]
    Article.cached.get_many([article.pk])  # scripts loaded (a read and a fill)
    before = _commands(redis_client)
    per_query = connection.features.max_query_params or 5000
    with django_assert_num_queries(-(-1100 // per_query)):
        rows = Article.cached.get_many(pks)
    assert len(rows) == 1100
    settle()  # fills this large are sent without waiting for their answers
    delta = _delta(before, _commands(redis_client))
    assert delta["evalsha"] == 2 + 2, delta  # two reads, two fenced fills (one per chunk)
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks) == rows


def test_a_large_fill_is_answered_off_the_call_and_fenced_like_any_fill(
    article: Article, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    """A call that fills 256 rows or more sends its fill scripts and returns: their answers are
    read on the answer thread. The scripts are the same fenced fills: a write that commits after
    the query keeps its row out, and the thread's next read waits for its own fills first."""
    made = Article.objects.bulk_create([Article(title=f"L{i}", author=article.author) for i in range(299)])
    pks = [article.pk, *(a.pk for a in made)]
    answered_on: list[str] = []
    real_written = packs.SentFills.written

    def written(self: packs.SentFills) -> Any:
        answered_on.append(threading.current_thread().name)
        return real_written(self)

    real_query = RowCache._query

    def query_then_concurrent_write(self: RowCache, plan: Any, wanted: list[Any]) -> Any:
        old = real_query(self, plan, wanted)
        article.title = "Second"
        article.save()  # commits before the fill: bumps this row's own version only
        return old

    monkeypatch.setattr(packs.SentFills, "written", written)
    monkeypatch.setattr(RowCache, "_query", query_then_concurrent_write)
    rows = Article.cached.get_many(pks)
    assert rows[article.pk]["title"] == "First"  # read before the write: this call's answer
    queried: list[Any] = []

    def recorded(self: RowCache, plan: Any, wanted: list[Any]) -> Any:
        queried.extend(wanted)
        return real_query(self, plan, wanted)

    monkeypatch.setattr(RowCache, "_query", recorded)
    with django_assert_num_queries(1):
        again = Article.cached.get_many(pks)
    assert queried == [article.pk]  # the fenced row only: the call waited for its own fill first
    assert again[article.pk]["title"] == "Second"
    assert [again[a.pk]["title"] for a in made] == [f"L{i}" for i in range(299)]
    assert answered_on
    assert all(name.startswith("cachewise-fill-answers") for name in answered_on)
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks) == again


def test_without_hiredis_a_large_fill_is_waited_for(
    article: Article, monkeypatch: pytest.MonkeyPatch, django_assert_num_queries: Any
) -> None:
    """Sending without waiting needs hiredis to pack the commands: without it the fill runs as
    before, answered before the call returns."""
    monkeypatch.setattr("cachewise.store.scripts.packed._pack_command", None)
    made = Article.objects.bulk_create([Article(title=f"H{i}", author=article.author) for i in range(299)])
    pks = [article.pk, *(a.pk for a in made)]
    waited = count_calls(monkeypatch, generations, "store_packs")
    assert len(Article.cached.get_many(pks)) == 300
    assert waited == [1]
    with django_assert_num_queries(0):
        assert Article.cached.get_many(pks)[pks[-1]]["title"] == "H298"


def test_near_cache_serves_rows_from_process_memory_and_sees_writes(
    article: Article, cachewise_caches: dict[str, Any], redis_client: Any, django_assert_num_queries: Any
) -> None:
    """With ``OPTIONS["near_cache"]``, pointers, versions and packs come from process memory."""
    with _near_cache_on(cachewise_caches):
        Article.cached.get(article.pk)  # filled
        Article.cached.get(article.pk)  # read through the near cache
        before = _commands(redis_client)
        with django_assert_num_queries(0):
            assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
        delta = _delta(before, _commands(redis_client))
        assert not {"mget", "evalsha"} & set(delta), delta
        article.title = "Second"
        article.save()
        with django_assert_num_queries(1):
            assert Article.cached.get(article.pk)["title"] == "Second"  # type: ignore[index]


def test_remembered_rows_come_from_memory_without_their_pointers_and_see_other_writers(
    article: Article,
    cachewise_caches: dict[str, Any],
    redis_client: Any,
    django_assert_num_queries: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A row whose pack this process remembers is read from the near cache as its counters and
    pack, all as of one check of the tracking socket: no pointer read. A counter moved by
    another client (Redis tracking tells this process) makes the next read query."""
    from cachewise.orm.rows import _RV, _keys_of

    with _near_cache_on(cachewise_caches):
        Article.cached.get(article.pk)  # filled: the fill's pack is remembered
        Article.cached.get(article.pk)  # installed in the near cache
        through_pointers = count_calls(monkeypatch, packs, "read")
        before = _commands(redis_client)
        with django_assert_num_queries(0):
            for _ in range(3):
                assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
        assert through_pointers == []
        assert not {"mget", "evalsha", "get"} & set(_delta(before, _commands(redis_client)))
        cache: Any = caches["default"]
        counter = _keys_of(Article.cached.plan(), _RV, [article.pk])[0]
        redis_client.incr(cache.make_and_validate_key(counter))  # "another process" wrote
        with django_assert_num_queries(1):
            assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]


def test_a_remembered_row_is_not_served_from_memory_after_the_tracking_connection_was_killed(
    article: Article, cachewise_caches: dict[str, Any], redis_client: Any, django_assert_num_queries: Any
) -> None:
    """The counter moves while nobody tracks for this process (its tracking connection killed
    by ``CLIENT KILL``): the remembered row must not come from memory, however it is read."""
    from cachewise.orm.rows import _RV, _keys_of

    with _near_cache_on(cachewise_caches) as near:
        for _ in range(3):
            Article.cached.get(article.pk)  # filled, installed, then from memory
        for client in redis_client.client_list():
            if client.get("sub") == "1" or "invalidate" in client.get("psub", ""):
                redis_client.client_kill_filter(_id=client["id"])
        counter = _keys_of(Article.cached.plan(), _RV, [article.pk])[0]
        redis_client.incr(caches["default"].make_and_validate_key(counter))
        with django_assert_num_queries(1):
            assert Article.cached.get(article.pk)["title"] == "First"  # type: ignore[index]
        assert near.tracker.wait_ready(5.0)


@contextlib.contextmanager
def _near_cache_on(cachewise_caches: dict[str, Any]) -> Iterator[Any]:
    """The test's caches with ``OPTIONS["near_cache"]`` on ``default``, tracking in force; its near cache."""
    from django.test import override_settings

    entry = cachewise_caches["default"]
    near_on = {**entry, "OPTIONS": {**(entry.get("OPTIONS") or {}), "near_cache": True}}
    with override_settings(CACHES={**cachewise_caches, "default": near_on}):
        near: Any = caches["default"].near  # type: ignore[attr-defined]
        try:
            assert near.tracker.wait_ready(5.0)
            yield near
        finally:
            near.close()


def test_near_cached_rows_are_decoded_once_and_handed_out_as_copies(
    article: Article, cachewise_caches: dict[str, Any], django_assert_num_queries: Any
) -> None:
    """Rows of immutable fields share one decoded pack between reads; a caller mutating its
    dict (or the dict's keys) never changes what the next caller gets."""
    assert Article.cached.plan().immutable
    with _near_cache_on(cachewise_caches) as near:
        Article.cached.get(article.pk)  # filled
        first = Article.cached.get(article.pk)  # through the near cache: decoded, remembered
        assert near._decoded, "the pack was not decoded once for all reads"
        assert first is not None
        expected = dict(first)
        first["title"] = "mutated"
        del first["slug"]
        with django_assert_num_queries(0):
            second = Article.cached.get(article.pk)
            rows = Article.cached.get_many([article.pk])
        assert second == expected
        assert rows[article.pk] == expected
        assert rows[article.pk] is not second


def test_only_rows_of_django_fields_with_immutable_values_share_a_decoded_pack() -> None:
    from django.db import models

    from cachewise.orm.rows import _immutable

    class Tags(models.CharField):  # type: ignore[type-arg]  # a subclass may return a list
        pass

    assert _immutable(Article._meta.pk)
    assert _immutable(Article._meta.get_field("author"))  # a foreign key: its target's pk
    assert _immutable(models.DateTimeField())
    assert not _immutable(models.JSONField())
    assert not _immutable(models.BinaryField())  # memoryview on PostgreSQL
    assert not _immutable(Tags())


def _arguments(entry: dict[str, Any]) -> int:
    """Arguments of a SLOWLOG entry: Redis keeps 32 of them, the last saying how many more."""
    words = entry["command"].split(b" ")
    if words[-1] == b"arguments)" and words[-4] == b"...":
        return 31 + int(words[-3].lstrip(b"("))
    return len(words)


def test_every_command_of_a_big_get_many_is_bounded_by_the_chunk_not_the_batch(
    article: Article, redis_client: Any
) -> None:
    """5,000 pks, missed then hit: no read, fill or pack read sends more than a chunk's worth of
    arguments (pointers, versions, stamps: ~3 per pk of one chunk), whatever the batch size."""
    made = Article.objects.bulk_create([Article(title=f"C{i}", author=article.author) for i in range(4999)])
    pks = [article.pk, *(a.pk for a in made)]
    Article.cached.get_many([article.pk])  # scripts loaded
    threshold = redis_client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    length = redis_client.config_get("slowlog-max-len")["slowlog-max-len"]
    redis_client.config_set("slowlog-log-slower-than", 0)  # log every command
    redis_client.config_set("slowlog-max-len", 10_000)
    try:
        redis_client.slowlog_reset()
        assert len(Article.cached.get_many(pks)) == 5000  # misses: reads, one query per 999, fills
        assert len(Article.cached.get_many(pks)) == 5000  # hits
        entries = redis_client.slowlog_get(10_000)
    finally:
        redis_client.config_set("slowlog-log-slower-than", threshold)
        redis_client.config_set("slowlog-max-len", length)
    widest = max(_arguments(entry) for entry in entries)
    # docs/orm.md: chunks of 1,000 pks, each command touching ~2,000 keys. The widest is a fill of
    # 1,000 rows: 2,013 keys (pointers, versions, 10 packs, 3 shared counters) and 1,035 values.
    assert 2000 <= widest <= 3100, widest
    sent = sum(1 for entry in entries if _arguments(entry) >= 1000)
    assert sent >= 2 * 5, sent  # per chunk of 1,000: a read on each call, and a fill on the miss


def test_misses_are_queried_as_one_array_on_postgresql_with_the_rows_of_pk_in(article: Article) -> None:
    """On PostgreSQL integer pks go as ``pk = ANY(%s)`` (one parameter, planned as ``IN``); a pk
    beyond 64 bits (which psycopg would send as ``numeric``, unindexed) and other databases keep
    ``pk__in``. Either way the rows are exactly those of ``filter(pk__in=...)``."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    more = Article.objects.bulk_create([Article(title=f"Q{i}", author=article.author) for i in range(30)])
    pks = [article.pk, *(a.pk for a in more), 10**9]
    expected = {
        row["id"]: row for row in Article.objects.filter(pk__in=pks).values(*Article.cached.plan().values)
    }
    with CaptureQueriesContext(connection) as queries:
        rows = Article.cached.get_many(pks)
    assert {pk: row["title"] for pk, row in rows.items()} == {
        pk: row["title"] for pk, row in expected.items()
    }
    (sql,) = [query["sql"] for query in queries.captured_queries]
    assert ("= ANY(" in sql) == (connection.vendor == "postgresql"), sql
    if connection.vendor != "postgresql":
        return  # SQLite refuses a pk past 64 bits (OverflowError) as filter(pk__in=) does
    with CaptureQueriesContext(connection) as queries:
        assert Article.cached.get_many([2**64, article.pk + 10**6]) == {}
    assert "= ANY(" not in queries.captured_queries[0]["sql"]


@pytest.mark.parametrize("ref", ["", "a b", "x" * 41, "é1"])
def test_a_pack_ref_that_could_not_end_a_pointer_is_refused(ref: str) -> None:
    from cachewise.store import packs
    from cachewise.store.choice import get_store

    pack = packs.Pack("pack:", ref, [[], [1], [{"a": 1}]], ["p"], ["own"], [1])
    with pytest.raises(ValueError, match="ref"):
        packs.fill(get_store("default"), [pack], [], [], 60)
