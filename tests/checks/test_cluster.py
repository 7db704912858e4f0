"""``check --deploy`` reports a cache cluster that would stop whole when one node dies (W080);
``check`` reports CACHEWISE_ORM_REPLICAS where WAIT cannot run (E082) or would trip the breaker (W083)."""

from __future__ import annotations

import redis
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.checks.cluster import check_cluster_coverage, check_orm_replicas
from tests.ha_topology import ClusterSetup


def test_full_coverage_on_any_node_is_reported_and_unreachable_is_w081() -> None:
    setup = ClusterSetup(full_coverage=False)
    try:
        configured = caches_from_url(setup.url(), key_prefix="cov")
        with override_settings(CACHES=configured):
            assert check_cluster_coverage() == []
            with redis.Redis(port=setup.masters[2].port) as node:
                node.config_set("cluster-require-full-coverage", "yes")
            messages = check_cluster_coverage()
            assert [m.id for m in messages] == ["cachewise.W080"]  # one per cluster, not per alias
            assert f"127.0.0.1:{setup.masters[2].port}" in messages[0].msg
            assert "cluster-require-full-coverage no" in str(messages[0].hint)
    finally:
        setup.stop()
    with override_settings(CACHES=configured):
        assert [m.id for m in check_cluster_coverage()] == ["cachewise.W081"]


_CLUSTER = {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": "redis+cluster://127.0.0.1:7000/0"}
_SINGLE = {"BACKEND": "cachewise.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:6379/0"}
_LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def test_e082_orm_replicas_on_a_cache_that_cannot_wait() -> None:
    for entry in (_CLUSTER, _LOCMEM):
        with override_settings(CACHES={"default": entry}, CACHEWISE_ORM_REPLICAS=1):
            assert [m.id for m in check_orm_replicas()] == ["cachewise.E082"]
        with override_settings(CACHES={"default": entry}, CACHEWISE_ORM_REPLICAS=0):
            assert check_orm_replicas() == []
    with override_settings(CACHES={"default": _SINGLE}, CACHEWISE_ORM_REPLICAS=1):
        assert check_orm_replicas() == []


def test_w083_replica_timeout_not_below_the_socket_timeout() -> None:
    with override_settings(
        CACHES={"default": _SINGLE}, CACHEWISE_ORM_REPLICAS=1, CACHEWISE_ORM_REPLICA_TIMEOUT=0.5
    ):
        assert [m.id for m in check_orm_replicas()] == ["cachewise.W083"]
    slow = {**_SINGLE, "OPTIONS": {"socket_timeout": 2.0}}
    with override_settings(
        CACHES={"default": slow}, CACHEWISE_ORM_REPLICAS=1, CACHEWISE_ORM_REPLICA_TIMEOUT=0.5
    ):
        assert check_orm_replicas() == []
