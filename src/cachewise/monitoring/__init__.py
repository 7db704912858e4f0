"""Monitoring: what the cache does, whole-site, where people already look.

* :mod:`.metrics` — ``record()``: in-process counters per alias and namespace (the hit path).
* :mod:`.aggregate` — exactly-once flushes of every process's deltas into Redis; totals, series.
* :mod:`.health` — Redis INFO numbers, a PING latency probe, a bounded big-key scan.
* :mod:`.alerts` — alert thresholds for hit rate, memory and errors; :mod:`.report` — one report per alias.
* :mod:`.prometheus`, :mod:`.views`, :mod:`.urls` — ``/metrics`` and the staff dashboard.
* :mod:`.console` — rich tables for ``manage.py cachewise stats`` and ``bigkeys``.

See docs/monitoring.md. Importing this package imports none of its modules.
"""
