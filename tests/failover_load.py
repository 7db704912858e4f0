"""Kill the hot master of a Sentinel or Cluster deployment under load from several processes.

:func:`run_failover` starts the topology (:mod:`tests.ha_topology`), ``processes`` worker
processes doing set+get round trips on keys of their own (on a cluster, keys on every master),
SIGKILLs the master holding the hot keys, watches for the promotion, keeps the load on for
``after`` seconds, and returns what each process saw. Used by ``tests/backends/test_ha_failover.py``
(assertions) and ``bench/failover.py`` (figures).

A round trip is ``set(key, (process, seq))`` then ``get(key)``; it succeeds when the set was
stored and the get returned that value. After each pass over its keys a worker also reads them
all with one ``get_many``: each key of a healthy master must come back with its last value.
A get that returns an older value of this process than its last acknowledged set is *stale*;
a get that raises is counted apart (it must never happen).

With ``orm=True`` (the default) each pass also saves the process's ORM row, reads it back through
``CachedRows`` and increments a counter, and a fresh process flushes the counter and reads every
row through the cache after the run (:mod:`tests.failover_orm`): stale rows and counter totals.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from tests import failover_orm
from tests.failover_orm import OrmFigures, OrmSetup
from tests.ha_topology import SLOTS, ClusterSetup, SentinelSetup, key_slot, wait_for

#: Event tuple recorded by a worker: (time, group, set stored, get answered the value, stale, raised).
Event = tuple[float, str, bool, bool, bool, bool]


def _settings(index: int, location: str, options: dict[str, Any], orm: OrmSetup | None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "CACHES": {
            "default": {
                "BACKEND": "cachewise.backends.redis.RedisCache",
                "LOCATION": location,
                "KEY_PREFIX": f"fo{index}",
                "OPTIONS": options,
            }
        },
        "INSTALLED_APPS": [],
        "SECRET_KEY": "failover-load",
        "USE_TZ": True,
        "LOGGING_CONFIG": None,
    }
    if orm is not None:
        settings.update(failover_orm.settings_for(orm, location, options))
    return settings


def _worker(
    aware: bool,
    index: int,
    location: str,
    options: dict[str, Any],
    keys: dict[str, str],
    queue: Any,
    stop: Any,
    orm: OrmSetup | None = None,
) -> None:
    failover_orm.configure(_settings(index, location, options, orm))
    if not aware:  # the baseline: one breaker per alias, closed only by its cooldown probe
        import cachewise.backends.redis as backend

        setattr(backend, "attach_topology", lambda *args: None)  # noqa: B010 - a test seam
    from django.core.cache import caches

    cache = caches["default"]
    acked: dict[str, int] = {}
    events: list[Event] = []
    load = None if orm is None else failover_orm.OrmLoad(orm, index)
    seq = 0
    queue.put(("ready", index))
    while not stop.is_set():
        for key, group in keys.items():
            seq += 1
            stored = bool(cache.set(key, (index, seq), timeout=120))  # type: ignore[func-returns-value]
            raised = stale = False
            try:
                got = cache.get(key)
            except Exception:  # reads must never raise: counted, and the test fails on it
                got, raised = None, True
            if stored:
                acked[key] = seq
            answered = stored and got == (index, seq)
            if got is not None and not answered and got[1] < acked.get(key, 0):
                stale = True
            events.append((time.monotonic(), group, stored, answered, stale, raised))
        # get_many of every key: the healthy masters' keys are answered whatever the dead one does
        try:
            found, raised = cache.get_many(list(keys)), False
        except Exception:
            found, raised = {}, True
        for key, group in keys.items():
            if group == "healthy" and key in acked:
                answered = found.get(key) == (index, acked[key])
                events.append((time.monotonic(), "healthy", True, answered, False, raised))
        if load is not None:  # a committed save read back through CachedRows, an increment
            events.extend(load.step())
    tally, committed = (None, 0) if load is None else (load.tally, load.committed)
    queue.put(("events", index, events, tally, committed))


@dataclass
class ProcessResult:
    """What one worker process saw."""

    index: int
    events: list[Event]

    def failures(self, group: str | None = None, since: float = 0.0) -> list[Event]:
        return [e for e in self.events if e[0] >= since and not e[3] and (group is None or e[1] == group)]

    def recovered_at(self, promoted: float, group: str = "hot") -> float | None:
        """The end of the last failed round trip on ``group`` keys after the kill, or ``promoted``
        if none failed after it; None if this process had no success on them afterwards."""
        hot = [e for e in self.events if e[1] == group]
        last_failure = max((e[0] for e in hot if not e[3]), default=None)
        if not any(e[3] for e in hot if last_failure is None or e[0] > last_failure):
            return None
        return promoted if last_failure is None or last_failure < promoted else last_failure


@dataclass
class FailoverRun:
    """The figures of one failover under load."""

    topology: str
    killed: float
    promoted: float
    processes: list[ProcessResult] = field(default_factory=list)
    orm: OrmFigures | None = None

    @property
    def promotion_s(self) -> float:
        return self.promoted - self.killed

    def recovery_s(self) -> list[float | None]:
        """Per process: seconds from the promotion until its last failed round trip on hot keys."""
        out: list[float | None] = []
        for process in self.processes:
            at = process.recovered_at(self.promoted)
            out.append(None if at is None else max(0.0, at - self.promoted))
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Round trips by group (``hot``: keys of the killed master, ``healthy``: the others) and
        kind of failure (``set``: not stored, ``get``: not answered, ``stale``, ``raised``)."""
        out: dict[str, dict[str, int]] = {}
        for process in self.processes:
            for _, group, stored, answered, stale, raised in process.events:
                row = out.setdefault(
                    group, {"round trips": 0, "failed": 0, "set": 0, "get": 0, "stale": 0, "raised": 0}
                )
                row["round trips"] += 1
                row["failed"] += not answered
                row["set"] += not stored
                row["get"] += stored and not answered
                row["stale"] += stale
                row["raised"] += raised
        return out


def _cluster_keys(setup: ClusterSetup, index: int, per_master: int) -> dict[str, str]:
    """Keys of process ``index`` (full keys are ``fo<index>:1:<key>``), ``per_master`` per master."""
    hot_port = setup.masters[0].port
    ranges = [(0, 5460), (5461, 10922), (10923, 16383)]
    wanted = dict.fromkeys(range(3), per_master)
    keys: dict[str, str] = {}
    n = 0
    while any(wanted.values()):
        n += 1
        slot = key_slot(f"fo{index}:1:k{n}")
        master = next(i for i, (lo, hi) in enumerate(ranges) if lo <= slot <= hi)
        if wanted[master]:
            wanted[master] -= 1
            keys[f"k{n}"] = "hot" if setup.masters[master].port == hot_port else "healthy"
    return keys


def _receive(queue: Any, workers: list[Any], timeout: float = 60.0) -> Any:
    """The next message of a worker; raise at once if a worker died instead of sending it."""
    import queue as queues

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return queue.get(timeout=0.5)
        except queues.Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"a failover worker died (exit codes {dead})") from None
    raise RuntimeError("no message from the failover workers")


def run_failover(
    topology: str,
    processes: int = 4,
    warmup: float = 1.0,
    after: float = 3.0,
    options: dict[str, Any] | None = None,
    aware: bool = True,
    orm: bool = True,
) -> FailoverRun:
    """Kill the hot master of a ``"sentinel"`` or ``"cluster"`` topology under load; see module doc.

    ``aware=False`` runs the baseline: the workers' caches without topology-aware failure domains
    (one breaker per alias, closed by its cooldown probe only), as before issue 20. ``orm``: the
    workers also save and read ORM rows and increment a counter (:mod:`tests.failover_orm`).
    """
    setup: SentinelSetup | ClusterSetup
    setup = SentinelSetup() if topology == "sentinel" else ClusterSetup(full_coverage=False)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    stop = context.Event()
    workers: list[Any] = []
    opts = {"socket_timeout": 0.5, "socket_connect_timeout": 0.3, **(options or {})}
    with tempfile.TemporaryDirectory(prefix="cw-failover-") as data:
        try:
            orm_setup = None
            if orm:
                hot = (0, SLOTS // 3 - 1) if isinstance(setup, ClusterSetup) else None
                counter = failover_orm.counter_name(hot)
                orm_setup = OrmSetup(os.path.join(data, "db.sqlite3"), topology, counter, processes)
                _child(context, failover_orm.prepare, orm_setup, _settings(0, setup.url(), opts, orm_setup))
            for index in range(processes):
                if isinstance(setup, ClusterSetup):
                    keys = _cluster_keys(setup, index, per_master=4)
                else:
                    keys = {f"k{n}": "hot" for n in range(8)}
                args = (aware, index, setup.url(), opts, keys, queue, stop, orm_setup)
                worker = context.Process(target=_worker, args=args)
                worker.start()
                workers.append(worker)
            for _ in workers:
                assert _receive(queue, workers)[0] == "ready"
            time.sleep(warmup)
            killed, promoted = _kill_hot_master(setup)
            time.sleep(after)
            stop.set()
            results, figures = [], OrmFigures()
            for _ in workers:
                message = _receive(queue, workers)
                results.append(ProcessResult(message[1], message[2]))
                if message[3] is not None:
                    figures.add(message[1], message[3], message[4])
            run = FailoverRun(topology, killed, promoted, sorted(results, key=lambda r: r.index))
            if orm_setup is not None:
                url = setup.url(1) if isinstance(setup, ClusterSetup) else setup.url()  # a live node
                settings = _settings(0, url, opts, orm_setup)
                checker = context.Process(target=failover_orm.check, args=(orm_setup, settings, queue))
                checker.start()
                _, figures.applied, figures.final = _receive(queue, [checker])
                checker.join(10)
                run.orm = figures
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
            setup.stop()
    return run


def _child(context: Any, target: Any, *args: Any) -> None:
    """Run ``target(*args)`` in a spawned process; raise if it failed."""
    process = context.Process(target=target, args=args)
    process.start()
    process.join(120)
    if process.exitcode != 0:
        raise RuntimeError(f"{target.__name__} failed (exit code {process.exitcode})")


def _kill_hot_master(setup: SentinelSetup | ClusterSetup) -> tuple[float, float]:
    """SIGKILL the master of the hot keys; return when, and when the replica was promoted."""
    if isinstance(setup, SentinelSetup):
        victim, promoted_when = setup.master, setup.failover_done
    else:
        victim = setup.masters[0]
        hot_port = victim.port

        def promoted_when() -> bool:
            owner = setup.owner_port(0)
            return owner is not None and owner != hot_port

    killed = time.monotonic()
    victim.kill()
    wait_for(promoted_when, 20, "the promotion", step=0.01)
    return killed, time.monotonic()


if __name__ == "__main__":  # pragma: no cover - a quick look by hand
    os.environ.setdefault("PYTHONPATH", ".")
    for kind in ("sentinel", "cluster"):
        result = run_failover(kind)
        print(kind, f"promotion {result.promotion_s:.2f}s", result.recovery_s(), result.counts())
