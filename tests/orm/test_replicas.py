"""ORM version bumps confirmed by a replica (``CACHEWISE_ORM_REPLICAS``) survive a failover.

A primary and a replica that replicates through a loopback proxy holding every chunk back
``LAG`` seconds: Redis' asynchronous replication with a window wide enough to kill the primary
in. A failover is the primary SIGKILLed with what it had not yet sent (the proxy cut), and the
replica promoted (``REPLICAOF NO ONE``, what Sentinel does). The reads after it come from a
process whose recovery check is not due (``CACHEWISE_RECOVERY_INTERVAL`` far away), as in any
process that saw no error: only the bump itself can keep it from serving the pre-save row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import override_settings

from cachewise import caches_from_url, recovery
from cachewise.embedded import EmbeddedRedis
from cachewise.exceptions import UnconfirmedWriteError
from cachewise.orm import cached_list
from cachewise.signals import cache_degraded
from tests.tcp_proxy import TcpProxy
from tests.testapp.models import Article, Author

# slow: Redis replication and failover, not the Python or Django version (main CI pass only).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

LAG = 1.0  # how late the replica gets each chunk: the window a failover loses without the option


class Pair:
    """The primary, the proxy on its replication link, the replica."""

    def __init__(self, primary: EmbeddedRedis, link: TcpProxy, replica: EmbeddedRedis) -> None:
        self.primary, self.link, self.replica = primary, link, replica

    def caches(self, server: EmbeddedRedis) -> dict[str, Any]:
        return caches_from_url(server.url, key_prefix="orm-wait", sessions=False)

    def replicated(self) -> None:
        """Wait until the replica has everything the primary has written so far."""
        offset = redis.Redis(port=self.primary.port).info("replication")["master_repl_offset"]
        on_replica = redis.Redis(port=self.replica.port)
        deadline = time.monotonic() + 20
        while on_replica.info("replication").get("slave_repl_offset", -1) < offset:
            assert time.monotonic() < deadline, "the replica never caught up"
            time.sleep(0.05)

    def fail_over(self) -> None:
        """The primary dies with what it had not sent yet; the replica is promoted."""
        self.link.cut()
        self.primary.kill()
        redis.Redis(port=self.replica.port).replicaof("NO", "ONE")


@pytest.fixture
def pair() -> Iterator[Pair]:
    with EmbeddedRedis() as primary, TcpProxy(primary.port) as link, EmbeddedRedis() as replica:
        client = redis.Redis(port=replica.port)
        client.replicaof("127.0.0.1", link.port)
        deadline = time.monotonic() + 10
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        link.delay(LAG)
        yield Pair(primary, link, replica)


def _read(pk: int) -> tuple[Any, Any]:
    row = Article.cached.get(pk) or {}
    listed = cached_list(Article.objects.filter(pk=pk).values("id", "title"), ttl=600)
    return row.get("title"), listed[0]["title"]


def _saved_then_failed_over(pair: Pair) -> tuple[Any, Any]:
    """Rows cached on both servers, a committed save, the failover; what the promoted replica serves."""
    with override_settings(CACHES=pair.caches(pair.primary)):
        article = Article.objects.create(title="old", author=Author.objects.create(name="a"))
        recovery.tick(force=True)  # this process's check ran: the next one is an hour away
        assert _read(article.pk) == ("old", "old")
        pair.replicated()  # the replica holds the cached rows and their counters
        article.title = "new"
        article.save()
        pair.fail_over()
    with override_settings(CACHES=pair.caches(pair.replica)):
        return _read(article.pk)


@override_settings(CACHEWISE_RECOVERY_INTERVAL=3600)
def test_without_the_option_a_promoted_replica_serves_the_pre_save_row(pair: Pair) -> None:
    """What asynchronous replication loses: the bump, so the promoted replica's stamps match the
    pre-save entries, until a recovery check sees the new server (``run_id``)."""
    assert _saved_then_failed_over(pair) == ("old", "old")
    with override_settings(CACHES=pair.caches(pair.replica)):
        recovery.tick(force=True)  # the check that runs at most CACHEWISE_RECOVERY_INTERVAL later
        assert _read(Article.objects.get().pk) == ("new", "new")


@override_settings(
    CACHEWISE_RECOVERY_INTERVAL=3600, CACHEWISE_ORM_REPLICAS=1, CACHEWISE_ORM_REPLICA_TIMEOUT=10
)
def test_a_save_confirmed_by_a_replica_is_not_lost_when_the_replica_is_promoted(pair: Pair) -> None:
    assert _saved_then_failed_over(pair) == ("new", "new")


@override_settings(CACHEWISE_ORM_REPLICAS=1, CACHEWISE_ORM_REPLICA_TIMEOUT=0.2)
def test_a_bump_no_replica_confirms_in_time_is_reported_and_the_save_succeeds(pair: Pair) -> None:
    seen: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        seen.append(kwargs)

    pair.link.blackhole()  # the replica gets nothing and acknowledges nothing
    cache_degraded.connect(receiver)
    try:
        with override_settings(CACHES=pair.caches(pair.primary)):
            article = Article.objects.create(title="old", author=Author.objects.create(name="a"))
            assert _read(article.pk) == ("old", "old")
            article.title = "new"
            article.save()  # no exception: the save committed and the primary has the bump
            assert _read(article.pk) == ("new", "new")
    finally:
        cache_degraded.disconnect(receiver)
    unconfirmed = [kw for kw in seen if kw["action"] == "unconfirmed"]
    assert unconfirmed
    assert all(isinstance(kw["error"], UnconfirmedWriteError) for kw in unconfirmed)
    assert "0 of 1 replicas" in str(unconfirmed[0]["error"])
