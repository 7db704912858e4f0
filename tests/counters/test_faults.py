"""Counters under faults (issue 13): eviction, a lost COMMIT acknowledgement, a snapshot rollback.

Each test runs real servers: a private redis-server with a small ``maxmemory`` under a policy, a
loopback TCP proxy in front of PostgreSQL that drops the connection after forwarding a COMMIT
and before its reply, a redis-server killed and restarted from an RDB snapshot taken earlier.
The counts that reach the database are exact in every case, or the increment is refused loudly.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.db import DatabaseError, connection
from django.db.models import F
from django.test import override_settings

from cachewise import Counter, caches_from_url
from cachewise.counters.batches import RedisBatches
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import ConfigurationError
from cachewise.store.choice import get_store
from tests.testapp.models import PageViews

PAGES = range(5)


def add_views(page: int, delta: int) -> None:
    PageViews.objects.filter(page=page).update(views=F("views") + delta)


def _totals() -> dict[int, int]:
    return dict(PageViews.objects.values_list("page", "views"))


def _flood(count: int, size: int = 4096) -> None:
    """Ordinary cache traffic: ``count`` distinct values of ``size`` bytes, default timeout."""
    cache = caches["default"]
    for i in range(count):
        cache.set(f"flood:{i}", "x" * size)


@pytest.fixture
def small_redis(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    """A private server with maxmemory 4 MB under the policy the test is parametrized with."""
    policy = request.param
    with EmbeddedRedis(extra_args=["--maxmemory", "4mb", "--maxmemory-policy", policy]) as server:
        yield server


@pytest.mark.slow  # Redis eviction, not the Python or Django version: main CI pass only
@pytest.mark.parametrize("small_redis", ["allkeys-lru", "allkeys-lfu", "allkeys-random"], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_under_an_allkeys_policy_an_increment_is_refused_never_lost(small_redis: EmbeddedRedis) -> None:
    views = Counter("evict:views")
    counted = refused = 0
    with override_settings(CACHES=caches_from_url(small_redis.url, key_prefix="evict", sessions=False)):
        for i in range(6000):
            try:
                views.incr(i % 1000)
                counted += 1
            except ConfigurationError as exc:
                refused += "maxmemory-policy" in str(exc)
            if i % 10 == 0:
                _flood(10)
        _flood(3000)  # 12 MB through a 4 MB server while the counts wait for the flush
        applied: dict[Any, int] = {}
        with contextlib.suppress(ConfigurationError):  # refused too: nothing was accepted
            applied = views.flush(lambda page, delta: None)
    lost = counted - sum(applied.values())
    assert lost == 0, f"{lost} of {counted} accepted increments were evicted before the flush"
    assert refused == 6000, "the counter refuses a server that can evict its keys"


@pytest.mark.slow  # Redis eviction, not the Python or Django version: main CI pass only
@pytest.mark.parametrize("small_redis", ["volatile-lru", "volatile-lfu", "volatile-ttl"], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_under_a_volatile_policy_a_flood_evicts_no_pending_increment(small_redis: EmbeddedRedis) -> None:
    """The recommended layout on a shared server: cache entries expire, counters have no TTL."""
    PageViews.objects.bulk_create([PageViews(page=page) for page in range(500)])
    views = Counter("flood:views", batch_size=100, lease=0.2)
    client = redis.Redis.from_url(small_redis.url)
    with override_settings(CACHES=caches_from_url(small_redis.url, key_prefix="flood", sessions=False)):
        for i in range(6000):
            views.incr(i % 500)
            if i % 10 == 0:
                _flood(5)
        batches = RedisBatches(get_store(), views)  # type: ignore[arg-type]
        orphan = batches.drain_step(batches.run(), 100, 200, 0, current=True)  # a flusher that died
        assert orphan is not None
        _flood(3000)  # 12 MB through a 4 MB server
        assert int(client.info("stats")["evicted_keys"]) > 1000, "the flood really evicted"
        import time

        time.sleep(0.3)  # the dead flusher's lease expires
        views.flush(add_views)
        assert batches.pending_ids() == set()
    assert sum(_totals().values()) == 6000
    assert _totals() == dict.fromkeys(range(500), 12)


# -- (b) the COMMIT is applied, its acknowledgement is lost ------------------------------------


class CommitCutter:
    """A loopback TCP proxy in front of PostgreSQL that, once armed, forwards the next COMMIT
    and then closes both connections instead of passing the server's reply on."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.cut = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            pending = threading.Event()  # a COMMIT went through: drop the reply
            threading.Thread(target=self._up, args=(client, server, pending), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, pending), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, pending: threading.Event) -> None:
        while data := _recv(client):
            if self.armed.is_set() and data[:1] == b"Q" and b"COMMIT" in data.upper():
                self.armed.clear()
                pending.set()
            try:
                server.sendall(data)
            except OSError:
                break
        _drop(server)

    def _down(self, server: socket.socket, client: socket.socket, pending: threading.Event) -> None:
        while data := _recv(server):
            if pending.is_set():  # the database committed; the client never hears of it
                self.cut.set()
                break
            try:
                client.sendall(data)
            except OSError:
                break
        for sock in (client, server):
            _drop(sock)

    def close(self) -> None:
        self.listener.close()


def _drop(sock: socket.socket) -> None:
    """Close now: shutdown() wakes the other thread's recv() and sends the FIN at once."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


@pytest.mark.skipif(
    "os.environ.get('DATABASE_URL') is None", reason="a lost COMMIT acknowledgement needs a database server"
)
@pytest.mark.django_db(transaction=True)
def test_a_commit_whose_acknowledgement_is_lost_is_applied_exactly_once() -> None:
    PageViews.objects.bulk_create([PageViews(page=page) for page in PAGES])
    views = Counter("ack:views", lease=0.3)
    for page in PAGES:
        views.incr(page, 20)
    settings = connection.settings_dict
    proxy = CommitCutter(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
    real_port = settings["PORT"]
    connection.close()
    settings["PORT"] = str(proxy.port)
    try:
        proxy.armed.set()
        with contextlib.suppress(DatabaseError):  # a flush may report the failed COMMIT
            views.flush(add_views)
        assert proxy.cut.is_set(), "the COMMIT's reply was dropped"
        views.flush(add_views)
        import time

        time.sleep(0.4)  # past the lease: a batch left pending would be recovered now
        views.flush(add_views)
    finally:
        connection.close()
        settings["PORT"] = real_port
        proxy.close()
    assert _totals() == dict.fromkeys(PAGES, 20), "each increment counted once"
    assert views.get_many(PAGES) == dict.fromkeys(PAGES, 0)


# -- (c) Redis restarted from an older snapshot ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_counts_restored_from_an_older_snapshot_are_not_applied_again(tmp_path: Path) -> None:
    PageViews.objects.bulk_create([PageViews(page=page) for page in PAGES])
    views = Counter("snap:views", lease=0.2)
    with (
        EmbeddedRedis(extra_args=["--dir", str(tmp_path)]) as server,
        override_settings(CACHES=caches_from_url(server.url, key_prefix="snap", sessions=False)),
    ):
        for page in PAGES:
            views.incr(page, 20)
        redis.Redis.from_url(server.url).save()  # the snapshot: 100 pending
        views.flush(add_views)  # 100 reach the database
        server.kill()
        server.restart()  # from the snapshot: the 100 are pending again
        assert redis.Redis.from_url(server.url).dbsize() > 0, "the snapshot was loaded"
        for page in PAGES:
            _retrying(lambda page=page: views.incr(page, 10))  # new traffic after the restart
        views.flush(add_views)
        assert views.flush(add_views) == {}
    assert _totals() == dict.fromkeys(PAGES, 30), "100 before the snapshot + 50 after, each once"


@pytest.mark.django_db(transaction=True)
def test_a_restart_without_rollback_applies_the_counts_it_kept(tmp_path: Path) -> None:
    PageViews.objects.bulk_create([PageViews(page=page) for page in PAGES])
    views = Counter("restart:views")
    with (
        EmbeddedRedis(extra_args=["--dir", str(tmp_path)]) as server,
        override_settings(CACHES=caches_from_url(server.url, key_prefix="restart", sessions=False)),
    ):
        for page in PAGES:
            views.incr(page, 20)
        views.flush(add_views)
        for page in PAGES:
            views.incr(page, 5)  # pending at the restart
        redis.Redis.from_url(server.url).save()
        server.kill()
        server.restart()
        for page in PAGES:
            _retrying(lambda page=page: views.incr(page, 1))
        views.flush(add_views)
    assert _totals() == dict.fromkeys(PAGES, 26), "nothing dropped, nothing doubled"


def _retrying(call: Any) -> Any:
    """The first call after a restart may meet the pool's dead connection (or an open breaker)."""
    import time

    from cachewise.exceptions import CacheUnavailableError

    for _ in range(50):
        try:
            return call()
        except CacheUnavailableError:
            time.sleep(0.1)
    return call()
