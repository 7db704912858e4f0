"""Counter.flush across crashes: a flusher killed at any point neither loses nor doubles a count."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from cachewise import Counter
from cachewise.counters.batches import PendingBatch, RedisBatches
from cachewise.models import CounterBatch
from cachewise.store.choice import get_store
from tests.testapp.models import PageViews

FORK = multiprocessing.get_context("fork")
PAGES = range(5)
LEASE = 0.5


def add_views(page: int, delta: int) -> None:
    PageViews.objects.filter(page=page).update(views=F("views") + delta)


def _setup(name: str) -> tuple[Counter, int]:
    """Rows for PAGES and (page + 1) * 10 pending increments each; return (counter, total)."""
    PageViews.objects.bulk_create([PageViews(page=page) for page in PAGES])
    views = Counter(name, ttl=3600, lease=LEASE, batch_size=100)
    for page in PAGES:
        views.incr(page, (page + 1) * 10)
    return views, sum((page + 1) * 10 for page in PAGES)


def _totals() -> dict[int, int]:
    return dict(PageViews.objects.values_list("page", "views"))


def _batches(views: Counter) -> RedisBatches:
    return RedisBatches(get_store(views.alias), views)  # type: ignore[arg-type]


def _drain_one(views: Counter, lease_ms: int = int(LEASE * 1000)) -> PendingBatch:
    """Drain one batch as a flusher does, and apply nothing (a flusher that died right after)."""
    batches = _batches(views)
    batch = batches.drain_step(batches.run(), 100, lease_ms, 0, current=True)
    assert batch is not None
    return batch


def _wait_for_lease() -> None:
    time.sleep(LEASE + 0.2)


def _stalling_apply(point: str, ready: Any) -> Callable[[int, int], None]:
    """An apply that signals ``ready`` and hangs at ``point`` (for the parent to kill us there)."""
    calls = 0

    def hang() -> None:
        ready.set()
        time.sleep(60)

    def apply(page: int, delta: int) -> None:
        nonlocal calls
        calls += 1
        if point == "before_apply":
            hang()
        add_views(page, delta)
        if point == "mid_apply" and calls == 3:
            hang()  # three rows updated in the open transaction
        if point == "after_commit" and calls == 1:
            transaction.on_commit(hang)  # runs after the commit, before the batch leaves Redis

    return apply


def _flush_in_child(name: str, point: str, ready: Any) -> None:
    Counter(name, ttl=3600, lease=LEASE, batch_size=100).flush(_stalling_apply(point, ready))


@pytest.mark.skipif("os.environ.get('DATABASE_URL') is None", reason="forked flushers need a database server")
@pytest.mark.parametrize("point", ["before_apply", "mid_apply", "after_commit"])
@pytest.mark.django_db(transaction=True)
def test_a_flusher_killed_mid_flush_loses_and_doubles_nothing(
    point: str, cachewise_caches: dict[str, Any]
) -> None:
    views, total = _setup(f"kill:{point}")
    connection.close()  # the child opens its own connection
    ready = FORK.Event()
    child = FORK.Process(target=_flush_in_child, args=(views.name, point, ready))
    child.start()
    try:
        assert ready.wait(timeout=20), "the child flusher reached the crash point"
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=10)
    assert child.exitcode == -signal.SIGKILL

    for page in PAGES:  # traffic continues meanwhile
        views.incr(page)
    views.flush(add_views)  # the dead flusher's lease has not expired: its batch waits
    assert sum(_totals().values()) == (total if point == "after_commit" else 0) + len(PAGES)
    _wait_for_lease()
    views.flush(add_views)  # recovers it: applies it, or only forgets it if it was committed

    assert _totals() == {page: (page + 1) * 10 + 1 for page in PAGES}
    assert views.get_many(PAGES) == dict.fromkeys(PAGES, 0)
    assert _batches(views).pending_ids() == set()


@pytest.mark.django_db(transaction=True)  # the batch leaves Redis on commit
def test_a_batch_drained_but_never_applied_is_applied_by_the_next_flush() -> None:
    views, total = _setup("lost:drained")
    _drain_one(views)  # a flusher that died right after draining
    assert views.flush(add_views) == {}, "a live lease is respected"
    _wait_for_lease()
    assert views.flush(add_views) == {page: (page + 1) * 10 for page in PAGES}
    assert sum(_totals().values()) == total
    assert views.flush(add_views) == {}
    assert _batches(views).pending_ids() == set()


@pytest.mark.django_db(transaction=True)  # the batch leaves Redis on commit
def test_a_batch_committed_but_not_forgotten_is_not_applied_again() -> None:
    views, total = _setup("lost:committed")
    batch = _drain_one(views)
    with transaction.atomic():  # what a flusher killed between its commit and the delete did
        for page, delta in batch.items:
            add_views(int(page), delta)
        CounterBatch.objects.create(counter=views.name, batch_id=batch.batch_id, applied_at=timezone.now())
    _wait_for_lease()
    assert views.flush(add_views) == {}
    assert sum(_totals().values()) == total
    assert _batches(views).pending_ids() == set()


@pytest.mark.django_db(transaction=True)  # the batch leaves Redis on commit
def test_a_flusher_that_lost_its_lease_cannot_commit_or_restore_its_batch() -> None:
    views, total = _setup("lost:lease")
    batches = _batches(views)
    slow = _drain_one(views)
    _wait_for_lease()
    [taken] = batches.claim(60_000)  # a recoverer takes the expired batch over
    assert taken.batch_id == slow.batch_id
    assert sorted(taken.items) == sorted(slow.items)
    assert not batches.restore(slow, 0), "the slow flusher no longer owns the batch"
    from cachewise.counters.batches import _apply, _Flush

    flush = _Flush(views, batches, add_views, "default", 0, 60_000, {})
    _apply(flush, taken)
    _apply(flush, slow)  # the slow one commits late
    assert sum(flush.applied.values()) == total
    assert sum(_totals().values()) == total, "the second commit of the batch was rolled back"
    assert batches.pending_ids() == set()


@pytest.mark.django_db(transaction=True)  # the batch leaves Redis on commit
def test_a_failing_apply_rolls_back_its_writes_and_puts_the_whole_batch_back() -> None:
    views, total = _setup("fail:views")
    calls = 0

    def fails_on_third(page: int, delta: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("database trouble")
        add_views(page, delta)

    with pytest.raises(RuntimeError):
        views.flush(fails_on_third)
    assert sum(_totals().values()) == 0
    assert views.get_many(PAGES) == {page: (page + 1) * 10 for page in PAGES}
    views.flush(add_views)
    assert sum(_totals().values()) == total


@pytest.mark.django_db(transaction=True)  # the batch leaves Redis on commit
def test_flush_prunes_old_batch_records_but_keeps_those_still_pending(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cachewise.counters import batches as counter_batches

    views, _ = _setup("prune:views")
    pending = _drain_one(views, 60_000)
    old = timezone.now() - timedelta(hours=25)  # older than PRUNE_AFTER (a day)
    CounterBatch.objects.create(counter=views.name, batch_id="old", applied_at=old)
    CounterBatch.objects.create(counter=views.name, batch_id=pending.batch_id, applied_at=old)
    CounterBatch.objects.create(counter="other", batch_id="old", applied_at=old)
    monkeypatch.setattr(counter_batches, "_last_prune", {})
    views.flush(add_views)
    remaining = set(CounterBatch.objects.values_list("counter", "batch_id"))
    assert remaining == {(views.name, pending.batch_id), ("other", "old")}


def test_without_the_cachewise_app_flush_falls_back_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from django.apps import apps

    monkeypatch.setattr(apps, "is_installed", lambda name: name != "cachewise")
    views = Counter("noapp:views")
    views.incr(1, 3)
    with caplog.at_level("WARNING", logger="cachewise.counters"):
        assert views.flush(lambda page, delta: None) == {1: 3}  # no database access at all
        views.flush(lambda page, delta: None)
    warnings = [r for r in caplog.records if "INSTALLED_APPS" in r.getMessage()]
    assert len(warnings) == 1, "warned once per counter"


@pytest.mark.django_db
def test_a_missing_batch_table_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from cachewise.counters import batches as counter_batches
    from cachewise.exceptions import ConfigurationError

    monkeypatch.setattr(counter_batches, "_tables_checked", set())
    monkeypatch.setattr(CounterBatch._meta, "db_table", "cachewise_counterbatch_missing")
    views = Counter("notable:views")
    views.incr(1)
    with pytest.raises(ConfigurationError, match="migrate cachewise"):
        views.flush(add_views)
    assert views.get(1) == 1, "nothing was drained"


@pytest.mark.django_db(transaction=True)  # the batch leaves Redis on commit
def test_a_flush_inside_a_rolled_back_transaction_is_applied_later() -> None:
    views, total = _setup("outer:views")

    flushed: dict[Any, int] = {}

    def flush_then_roll_back() -> None:
        with transaction.atomic():
            flushed.update(views.flush(add_views))
            raise RuntimeError("the caller's transaction fails")

    with pytest.raises(RuntimeError):
        flush_then_roll_back()
    assert sum(flushed.values()) == total
    assert sum(_totals().values()) == 0, "rolled back with the caller's transaction"
    assert views.get_many(PAGES) == dict.fromkeys(PAGES, 0), "the batch waits, pending"
    _wait_for_lease()
    assert sum(views.flush(add_views).values()) == total
    assert sum(_totals().values()) == total
    assert _batches(views).pending_ids() == set()
