"""Failure signals that say what the caller got, and logs that do not drown an outage.

The ORM's reads answer from the database when Redis is down (``cache_degraded`` action
``"fallback"``, never ``"raised"``); each save's invalidation is recorded for later
(``"deferred"``), logged once per kind and interval with the count of lines suppressed.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest
from django.test import override_settings

from cachewise.caches_url import caches_from_url
from cachewise.embedded import EmbeddedRedis
from cachewise.orm import invalidation
from cachewise.resilience import RateLimitedLog
from cachewise.signals import cache_degraded
from tests.testapp.models import Article, Author


def test_rate_limited_log_counts_the_lines_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(0.2, logging.getLogger("cachewise.test"))
    with caplog.at_level(logging.WARNING, logger="cachewise.test"):
        for _ in range(5):
            log.log(logging.WARNING, "kind", "failed %s", "x")
        log.log(logging.WARNING, "other", "failed %s", "y")
        time.sleep(0.25)
        log.log(logging.WARNING, "kind", "failed %s", "z")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["failed x", "failed y", "failed z (4 similar lines suppressed in the last 0.2s)"]


@pytest.mark.django_db(transaction=True)
def test_orm_reads_and_saves_in_an_outage_report_what_the_caller_got(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh limiter: an earlier test's outage may have logged this kind within the interval.
    monkeypatch.setattr(invalidation, "_failure_log", RateLimitedLog(10.0, invalidation.logger))
    server = EmbeddedRedis().start()
    actions: list[tuple[str, str]] = []

    def receiver(operation: str, action: str, **kwargs: Any) -> None:
        actions.append((operation, action))

    cache_degraded.connect(receiver)
    try:
        configured = caches_from_url(server.url, key_prefix=f"sig{uuid.uuid4().hex[:8]}")
        with override_settings(CACHES=configured):
            author = Author.objects.create(name="a")
            article = Article.objects.create(title="old", author=author)
            assert Article.cached.get_many([article.pk])[article.pk]["title"] == "old"
            server.kill()
            for _ in range(3):  # the reads answer from the database
                assert Article.cached.get_many([article.pk])[article.pk]["title"] == "old"
            with caplog.at_level(logging.ERROR, logger="cachewise.orm"):
                for n in range(20):
                    Article.objects.filter(pk=article.pk).update(title=f"t{n}")
                    assert Article.cached.get_many([article.pk])[article.pk]["title"] == f"t{n}"
    finally:
        cache_degraded.disconnect(receiver)
        server.stop()
    invalidations = [r for r in caplog.records if "could not invalidate" in r.getMessage()]
    assert len(invalidations) == 1, [r.getMessage() for r in invalidations]
    assert ("invalidate", "deferred") in actions
    assert not [a for a in actions if a[1] == "raised"], actions
    # The reads answered from the database: reported as a miss of the cache (or "fallback")
    assert {action for operation, action in actions if operation == "get_many"} <= {"miss", "fallback"}
    assert any(operation == "get_many" for operation, _ in actions)
