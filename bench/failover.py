"""What a failover costs, on Sentinel and on Cluster: the hot master SIGKILLed under load.

Each run starts the topology on loopback (3 sentinels watching a master and a replica,
``down-after-milliseconds 400``; or 3 masters + 3 replicas, ``cluster-node-timeout 500``,
``cluster-require-full-coverage no``), 4 worker processes doing set+get round trips (on a cluster,
keys on every master), kills the master of the hot keys and keeps the load on for ``--after``
seconds after the promotion (see ``tests/failover_load.py``). Reported per topology, median over
``--trials``, for cachewise as it is ("aware": per-node breakers on Cluster, breakers closed by the
topology watchers) and for the baseline in the same run ("alias breaker": one breaker per alias
that only its cooldown probe closes, as before issue 20), both with the default 5 s cooldown:

* kill -> promotion: until the sentinels (or the cluster) name the replica as master;
* promotion -> every process recovered: until the last failed round trip on the hot keys in the
  slowest process;
* failed round trips by kind (set not stored / get not answered), on the keys of the dead master
  and on the keys of the masters that stayed up; stale reads and reads that raised;
* ORM saves (each read back through ``CachedRows``): saves that raised, rows read older than the
  last committed save (during the run, and by a fresh process after it), reads that raised;
* counter increments by outcome (acknowledged, unconfirmed by a replica, raised as unavailable,
  refused by the open breaker), the totals a flush applied to the database after recovery, and
  acknowledged increments lost or applied twice; promotion -> every process's counter answering.

On Sentinel, ORM bumps and increments wait for the replica (``CACHEWISE_ORM_REPLICAS=1``,
``Counter(replicas=1)``, 200 ms); on Cluster they do not (``WAIT`` is refused there).

    .venv/bin/python bench/failover.py [--trials 3] [--after 4] [--topologies sentinel,cluster]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from tests.failover_load import FailoverRun, run_failover


def _summary(runs: list[FailoverRun]) -> str:
    promotion = statistics.median(run.promotion_s for run in runs)
    slowest = []
    for run in runs:
        recovery = run.recovery_s()
        slowest.append(float("inf") if None in recovery else max(r for r in recovery if r is not None))
    recovered = statistics.median(slowest)
    totals: dict[str, dict[str, int]] = {}
    for run in runs:
        for group, row in run.counts().items():
            into = totals.setdefault(group, dict.fromkeys(row, 0))
            for name, value in row.items():
                into[name] += value
    parts = [f"kill->promotion {promotion:.2f} s", f"promotion->all recovered {recovered:.2f} s"]
    for group in ("hot", "healthy"):
        if group in totals:
            row = totals[group]
            parts.append(
                f"{'dead master' if group == 'hot' else 'healthy masters'}: {row['failed']:,}/"
                f"{row['round trips']:,} failed (set {row['set']:,}, get {row['get']:,}), "
                f"stale {row['stale']}, raised {row['raised']}"
            )
    parts += _orm_summary(runs)
    return "; ".join(parts)


def _orm_summary(runs: list[FailoverRun]) -> list[str]:
    figures = [run.orm for run in runs if run.orm is not None]
    if not figures:
        return []
    orm: dict[str, int] = {}
    for run in runs:
        for name, value in run.counts().get("orm", {}).items():
            orm[name] = orm.get(name, 0) + value
    tally = {kind: sum(f.tally[kind] for f in figures) for kind in figures[0].tally}
    applied = sum(sum(f.applied.values()) for f in figures)
    extra = sum(max(0, f.applied.get(i, 0) - t["acked"]) for f in figures for i, t in f.sent.items())
    counter = []
    for run in runs:
        ats = [p.recovered_at(run.promoted, "counter") for p in run.processes]
        counter.append(float("inf") if None in ats else max(a for a in ats if a is not None) - run.promoted)
    return [
        f"ORM saves {orm.get('round trips', 0):,} (raised {orm.get('set', 0)}), stale rows "
        f"{orm.get('stale', 0)} + {sum(len(f.stale_final()) for f in figures)} after recovery, "
        f"reads raised {orm.get('raised', 0)}",
        f"increments acked {tally['acked']:,}, unconfirmed {tally['unconfirmed']}, unavailable "
        f"{tally['unavailable']}, refused {tally['refused']:,}, other {tally['other']}; applied "
        f"{applied:,} (acked lost {sum(f.lost() for f in figures)}, beyond acked {extra}, exact "
        f"{all(f.counters_exact() for f in figures)}); promotion->counters answer "
        f"{statistics.median(counter):.2f} s",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--after", type=float, default=4.0)
    parser.add_argument("--topologies", default="sentinel,cluster")
    args = parser.parse_args()
    for topology in args.topologies.split(","):
        for aware, label in ((False, "alias breaker (baseline)"), (True, "aware (cachewise)")):
            runs = [run_failover(topology, after=args.after, aware=aware) for _ in range(args.trials)]
            print(f"{topology:8} {label:25} {_summary(runs)}", flush=True)


if __name__ == "__main__":
    main()
