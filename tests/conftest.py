"""Shared fixtures: every test gets real Redis caches under its own key prefix.

The ``redis_server``, ``cachewise_caches``, ``redis_client`` and ``disposable_redis`` fixtures come
from cachewise's own pytest plugin (``cachewise.testing``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from cachewise.monitoring.aggregate import aggregator
from cachewise.testing import RedisServerInfo

from ._backends import BACKENDS, configured

# The same commit gives the same result on every run: property tests draw a fixed sequence of
# examples (derandomize). HYPOTHESIS_PROFILE=explore searches new examples on purpose, locally.
hypothesis_settings.register_profile("reproducible", derandomize=True, print_blob=True)
hypothesis_settings.register_profile("explore", max_examples=1000, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))


@pytest.fixture(autouse=True)
def _isolated_redis_caches(cachewise_caches: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Run every test against the real Redis, never the LocMem placeholder in settings."""
    return cachewise_caches


@pytest.fixture(autouse=True)
def _no_counts_from_earlier_tests() -> None:
    """Start each test with no in-process hit/miss counts: stats and alerts see this test's only."""
    aggregator.reset()


@pytest.fixture(scope="session", autouse=True)
def _no_session_left_on_the_test_database(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Close every session on the PostgreSQL test database before pytest-django drops it.

    A thread or child process a test could not join still holds a connection; DROP DATABASE then
    fails with "is being accessed by other users", which pytest reports as an error on whichever
    test ran last. The sessions are named in the output so the leaking test can be found.
    """
    yield
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        return
    if not str(connection.settings_dict["NAME"]).startswith("test_"):
        return  # never on a database the suite did not create
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, state, left(query, 120) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            for pid, state, query in cursor.fetchall():
                print(f"leftover PostgreSQL session {pid} ({state}): {query}")
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        connections.close_all()


@pytest.fixture(params=BACKENDS)
def backend(
    request: pytest.FixtureRequest, redis_server: RedisServerInfo, cachewise_caches: dict[str, Any]
) -> Iterator[str]:
    """The ``default`` alias on each store path in turn: ours, Django's, django-redis, LocMem."""
    with configured(request.param, redis_server, cachewise_caches) as kind:
        yield kind


#: django-redis' own suite runs in processes of its own (tests/django_redis_suite/run_suite.py).
collect_ignore = ["django_redis_suite"]

#: Fixtures through which a test reaches the database (pytest-django's, and the live server's).
_DATABASE_FIXTURES = frozenset(
    {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback", "live_server"}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use the database (the PostgreSQL pass of .ci/run: a test "
        "pytest-django does not let near the database gives the same result on any database)",
    )


def uses_database(item: pytest.Item) -> bool:
    """True when pytest-django lets ``item`` use the database (its mark, or a database fixture)."""
    if item.get_closest_marker("django_db") is not None:
        return True
    return bool(_DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ())))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        (selected if uses_database(item) else deselected).append(item)
    config.hook.pytest_deselected(items=deselected)
    items[:] = selected
