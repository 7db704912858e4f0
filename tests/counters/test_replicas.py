"""Counter(replicas=1): an increment returns once a replica has it (WAIT), or says it was not confirmed."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
import redis
from django.test import override_settings

from cachewise import CacheUnavailableError, Counter, UnconfirmedWriteError, caches_from_url
from cachewise.counters.batches import RedisBatches
from cachewise.embedded import EmbeddedRedis
from cachewise.store.choice import get_store


@pytest.fixture
def primary_and_replica() -> Iterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    with EmbeddedRedis() as primary, EmbeddedRedis(extra_args=["--replicaof", "127.0.0.1", "0"]) as replica:
        client = redis.Redis.from_url(replica.url)
        client.replicaof("127.0.0.1", primary.port)
        deadline = time.monotonic() + 10
        while client.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica never synced"
            time.sleep(0.05)
        yield primary, replica


def test_a_confirmed_increment_is_on_the_replica_when_incr_returns(
    primary_and_replica: tuple[EmbeddedRedis, EmbeddedRedis],
) -> None:
    primary, replica = primary_and_replica
    views = Counter("wait:views", replicas=1, replica_timeout=2.0)
    with override_settings(CACHES=caches_from_url(primary.url, key_prefix="wait", sessions=False)):
        batches = RedisBatches(get_store(), views)  # type: ignore[arg-type]
        live = batches.live + batches.run()
        on_replica = redis.Redis.from_url(replica.url)
        for n in range(1, 51):
            assert views.incr(7) == n
            assert int(on_replica.hget(live, "7") or 0) == n, "replicated before incr returned"
        assert views.incr_many({1: 2, 3: 4}) == {1: 2, 3: 4}
        assert on_replica.hmget(live, ["1", "3"]) == [b"2", b"4"]


def test_an_increment_no_replica_confirms_in_time_is_reported_and_counted_once(
    primary_and_replica: tuple[EmbeddedRedis, EmbeddedRedis],
) -> None:
    primary, replica = primary_and_replica
    views = Counter("wait:stalled", replicas=1, replica_timeout=0.1)
    assert replica.process is not None
    with override_settings(CACHES=caches_from_url(primary.url, key_prefix="wait", sessions=False)):
        os.kill(replica.process.pid, signal.SIGSTOP)  # the replica stops acknowledging
        try:
            started = time.monotonic()
            with pytest.raises(UnconfirmedWriteError, match="0 of 1 replicas") as raised:
                views.incr(1)
            assert not isinstance(raised.value, CacheUnavailableError), (
                "a down-cache fallback must not catch it"
            )
            assert time.monotonic() - started < 2
        finally:
            os.kill(replica.process.pid, signal.SIGCONT)
        assert views.get(1) == 1, "the primary has it once: the caller must not retry"
