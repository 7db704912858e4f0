"""ORM saves, cached reads and counter increments in the failover load (:mod:`tests.failover_load`).

Each worker process owns one ``Article`` row (pk ``index + 1``) and one counter id (its index).
Once per pass it saves the row with the pass number as its title (a committed save), reads it
back through ``CachedRows`` (``Article.cached``) and increments its counter id. A read that
returns a title older than the last committed save is *stale*.

Increments are tallied by what the caller saw: ``acked`` (``incr`` returned), ``unconfirmed``
(:class:`~cachewise.exceptions.UnconfirmedWriteError`: on the primary, no replica confirmed it),
``unavailable`` (raised after it may have reached the server: applied if the server ran it before
the connection broke), ``refused`` (the breaker was open: never sent). "Exact" is then
``acked <= applied <= acked + unconfirmed + unavailable``: no acknowledged increment lost, none
applied twice. After the run a fresh process flushes the counter into ``PageViews`` and reads
every row through the cache (:func:`check`). A counter event is "stored" when the increment was
acknowledged and "answered" when the server ran it (acknowledged or unconfirmed).

On Sentinel the master has one replica: once it is promoted there is none left to confirm, so
from then on confirmed writes wait ``replica_timeout`` and come back unconfirmed (saves report
it, increments raise it) until a replica is back: the cost the docs state.

The workers share a SQLite file in WAL mode (``IMMEDIATE`` transactions, 30 s busy timeout) so the
test runs without a database server; ORM data and counters live in the cache alias ``"shared"``
(one key prefix for every process); on Sentinel ORM saves wait for a replica
(``CACHEWISE_ORM_REPLICAS=1``) and the counter has ``replicas=1`` (``WAIT`` is refused on Cluster).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import django

#: Event tuple, as in tests.failover_load: (time, group, stored, answered, stale, raised).
Event = tuple[float, str, bool, bool, bool, bool]

TALLY_KINDS = ("acked", "unconfirmed", "unavailable", "refused", "other")


@dataclass(frozen=True)
class OrmSetup:
    """What a child process needs to join the ORM part of the load."""

    database: str  # the SQLite file
    topology: str
    counter: str  # the counter's name (on Cluster, one whose slot the killed master serves)
    processes: int


def databases(path: str) -> dict[str, Any]:
    options: dict[str, Any] = {"timeout": 30}
    if django.VERSION >= (5, 1):  # both options are new in 5.1; before, each write is one statement
        options["transaction_mode"] = "IMMEDIATE"  # writers wait for the lock, never fail an upgrade
        options["init_command"] = "PRAGMA journal_mode=WAL;"
    return {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": path, "OPTIONS": options}}


def settings_for(setup: OrmSetup, location: str, options: dict[str, Any]) -> dict[str, Any]:
    """Settings added to a worker's: the apps, the database, the shared alias, WAIT where it runs."""
    sentinel = setup.topology == "sentinel"
    return {
        "INSTALLED_APPS": ["django.contrib.contenttypes", "cachewise", "tests.testapp"],
        "DATABASES": databases(setup.database),
        "DEFAULT_AUTO_FIELD": "django.db.models.AutoField",
        "CACHEWISE_ORM_CACHE": "shared",
        "CACHEWISE_ORM_REPLICAS": 1 if sentinel else 0,
        "CACHEWISE_ORM_REPLICA_TIMEOUT": 0.2,  # below socket_timeout (0.5 s): WAIT blocks the socket
        "CACHEWISE_METRICS_FLUSH_INTERVAL": 0,
        "CACHES_EXTRA": {
            "shared": {
                "BACKEND": "cachewise.backends.redis.RedisCache",
                "LOCATION": location,
                "KEY_PREFIX": "fo-shared",
                "OPTIONS": options,
            }
        },
    }


def counter_name(hot: tuple[int, int] | None) -> str:
    """``fo:views``, or on a cluster a name whose hash slot is in ``hot`` (the killed master's)."""
    if hot is None:
        return "fo:views"
    from tests.ha_topology import key_slot

    n = 0
    while not hot[0] <= key_slot(f"{{fo:views{n}}}") <= hot[1]:
        n += 1
    return f"fo:views{n}"


def _counter(setup: OrmSetup) -> Any:
    from cachewise import Counter

    replicas = 1 if setup.topology == "sentinel" else 0
    return Counter(setup.counter, alias="shared", replicas=replicas, replica_timeout=0.2)


def prepare(setup: OrmSetup, settings: dict[str, Any]) -> None:
    """Spawned before the workers: create the tables, the workers' rows and counter rows."""
    configure(settings)
    from django.core.management import call_command
    from django.db import connection

    from tests.testapp.models import Article, Author, PageViews

    with connection.cursor() as cursor:  # readers never wait for a writer; kept in the file
        cursor.execute("PRAGMA journal_mode=WAL;")
    call_command("migrate", run_syncdb=True, verbosity=0)
    author = Author.objects.create(name="failover")
    for index in range(setup.processes):
        Article.objects.create(pk=index + 1, title="0", author=author)
        PageViews.objects.create(page=index, views=0)


def configure(settings: dict[str, Any]) -> None:
    """``settings.configure`` with these settings (``CACHES_EXTRA`` merged into ``CACHES``)."""
    import django
    from django.conf import settings as django_settings

    settings = dict(settings)
    caches = {**settings.pop("CACHES", {}), **settings.pop("CACHES_EXTRA", {})}
    django_settings.configure(CACHES=caches, **settings)
    django.setup()


class OrmLoad:
    """One worker's ORM and counter operations (call :meth:`step` once per pass)."""

    def __init__(self, setup: OrmSetup, index: int) -> None:
        from tests.testapp.models import Article

        self.index = index
        self.article = Article.objects.get(pk=index + 1)
        self.counter = _counter(setup)
        self.seq = self.committed = 0
        self.tally = dict.fromkeys(TALLY_KINDS, 0)

    def step(self) -> list[Event]:
        """Save the row, read it through the cache, increment the counter: their two events."""
        from tests.testapp.models import Article

        self.seq += 1
        self.article.title = str(self.seq)
        try:
            self.article.save(update_fields=["title", "updated_at"])
            saved = True
            self.committed = self.seq
        except Exception:  # a save that raised did not commit (counted as not stored)
            saved = False
        raised = False
        try:
            row = Article.cached.get(self.article.pk)
        except Exception:  # reads must never raise: counted, and the test fails on it
            row, raised = None, True
        got = int(row["title"]) if row else None
        stale = got is not None and got < self.committed
        return [(time.monotonic(), "orm", saved, saved and got == self.seq, stale, raised), self._increment()]

    def _increment(self) -> Event:
        """Increment the counter; the event says whether the increment was acknowledged."""
        from cachewise.exceptions import CacheUnavailableError, CircuitOpenError, UnconfirmedWriteError

        try:
            self.counter.incr(self.index)
            kind = "acked"
        except UnconfirmedWriteError:
            kind = "unconfirmed"
        except CircuitOpenError:
            kind = "refused"
        except CacheUnavailableError:
            kind = "unavailable"
        except Exception:
            kind = "other"
        self.tally[kind] += 1
        ran = kind in ("acked", "unconfirmed")  # the server ran it (unconfirmed: no replica has it)
        return (time.monotonic(), "counter", kind == "acked", ran, False, False)


def check(setup: OrmSetup, settings: dict[str, Any], queue: Any) -> None:
    """Spawned after the run: flush the counter into ``PageViews``; read each row through the cache."""
    configure(settings)
    from django.db.models import F

    from tests.testapp.models import Article, PageViews

    def apply(page: Any, delta: int) -> None:
        PageViews.objects.filter(page=int(page)).update(views=F("views") + delta)

    _counter(setup).flush(apply)
    applied = dict(PageViews.objects.values_list("page", "views"))
    titles = {}
    for index in range(setup.processes):
        row = Article.cached.get(index + 1)
        titles[index] = int(row["title"]) if row else None
    queue.put(("checked", applied, titles))


@dataclass
class OrmFigures:
    """The ORM and counter side of a failover run, summed over processes."""

    tally: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TALLY_KINDS, 0))
    committed: dict[int, int] = field(default_factory=dict)  # process -> last committed title
    applied: dict[int, int] = field(default_factory=dict)  # process -> views in the database
    sent: dict[int, dict[str, int]] = field(default_factory=dict)  # process -> its tally
    final: dict[int, int | None] = field(default_factory=dict)  # process -> title a fresh process read

    def add(self, index: int, tally: dict[str, int], committed: int) -> None:
        self.sent[index] = tally
        self.committed[index] = committed
        for kind, count in tally.items():
            self.tally[kind] += count

    def counters_exact(self) -> bool:
        """No acknowledged increment lost, none counted twice, in every process."""
        for index, tally in self.sent.items():
            applied = self.applied.get(index, 0)
            if not tally["acked"] <= applied <= tally["acked"] + tally["unconfirmed"] + tally["unavailable"]:
                return False
        return True

    def lost(self) -> int:
        return sum(max(0, t["acked"] - self.applied.get(i, 0)) for i, t in self.sent.items())

    def stale_final(self) -> list[int]:
        """Processes whose row a fresh process read older than its last committed save."""
        return [i for i, title in self.final.items() if title is None or title < self.committed.get(i, 0)]
