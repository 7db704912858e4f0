"""The advisor: which views and queries are worth caching, measured from real traffic.

* :mod:`.middleware` — ``AdvisorMiddleware``: the opt-in recording, one observation per request.
* :mod:`.recorder` — bounded in-process counters per route, URL reuse and sampled body digests.
* :mod:`.queries` — the query wrapper: database time, tables read, kinds of statement, repeats.
* :mod:`.changes` — committed writes per table, counted where the ORM bumps its versions.
* :mod:`.store` — every process's counters aggregated in Redis; predictions kept for checking.
* :mod:`.estimate` — from counters to a strategy, a TTL, an expected hit rate and warnings.
* :mod:`.advice` — the ranking ``manage.py cachewise advise`` and the dashboard show.

See docs/advisor.md. Importing this package imports none of its modules.
"""
