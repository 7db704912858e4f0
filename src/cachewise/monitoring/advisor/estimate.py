"""From one route's counters to advice: a strategy, a TTL, an expected hit rate, warnings.

Pure functions of the counters (see docs/advisor.md, "How the numbers are derived"):

* **TTL**: the mean time between committed writes to the tables the route reads (tables read by
  at least :data:`TABLE_SHARE` of its requests), rounded down to a usual value and clamped to
  [:data:`MIN_TTL`, :data:`MAX_TTL`]. Data that changes every 40 s gets 30 s; data nobody wrote
  gets the maximum. With ``cache_page``'s automatic dependencies a write invalidates the page
  anyway; the TTL is then how long caching can pay off before the next write, not a staleness bound.
* **Expected hit rate** of a page cache: the share of requests it may store (anonymous GETs the
  page cache's rules accept) x the share of GETs that repeat a URL x the chance the answer is still
  the same (the smaller of the share of sampled identical bodies and ``exp(-writes/s x gap)``,
  the chance no write lands between two requests of a URL) x the chance the entry has not expired
  (``1 - exp(-ttl / gap)``; gap = mean time between requests of a URL).
* For data strategies the share of database time spent on SELECTs that repeated a statement
  with the same parameters replaces the URL and body terms.
* **Saved database time per hour** = requests per hour x database seconds per request x hit rate.
  Data strategies are credited net of one cache read per cached query
  (``CACHEWISE_ADVISOR_LOOKUP_SECONDS``): a query faster than a cache read saves nothing by being
  cached. A page hit replaces the whole response with one read, so that read is charged to the
  response time it saves (``seconds_saved_per_hour``), and the database time is saved whole.
* Repeated queries count only when another visitor (or any anonymous one) ran the same statement
  with the same parameters: one visitor re-reading their own session is not shared data.

A route is never advised ``cache_page`` when any GET response set a cookie, any anonymous
response was refused by the page cache for a per-visitor reason (CSRF token, session, messages,
credential header, ``Cache-Control: private``), no identical bodies were observed, or fewer than
half the sampled bodies matched their URL's previous one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["MAX_TTL", "MIN_TTL", "Advice", "Verification", "advise_route", "suggest_ttl", "verify"]

MIN_TTL = 5
MAX_TTL = 3600
_TTLS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
#: A table counts as read by a route when at least this share of its requests read it.
TABLE_SHARE = 0.1
#: Sampled body pairs needed before body reuse is judged.
MIN_PAIRS = 3
LOW_REUSE = 0.2
PERSONALISED = 0.5
_DATA_STRATEGY = {"row": "CachedRows", "list": "cached_list", "aggregate": "@cached", "other": "@cached"}


def suggest_ttl(writes_per_second: float) -> int:
    """The TTL for data written ``writes_per_second`` times a second (see the module docstring)."""
    if writes_per_second <= 0:
        return MAX_TTL
    mean_interval = 1.0 / writes_per_second
    return max((ttl for ttl in _TTLS if ttl <= mean_interval), default=MIN_TTL)


@dataclass
class Verification:
    """What a route measured since its prediction was stored, next to that prediction."""

    strategy: str
    ttl: int
    predicted_hit_rate: float
    predicted_db_seconds_saved_per_hour: float
    requests_since: int
    measured_hit_rate: float | None
    measured_db_seconds_saved_per_hour: float | None
    measured_seconds_saved_per_hour: float | None


@dataclass
class Advice:
    """One route: what it costs, what to do about it and why."""

    route: str
    requests: int
    requests_per_hour: float
    mean_ms: float
    db_ms: float
    queries_per_request: float
    anonymous_share: float
    storable_share: float
    url_reuse: float
    identical_bodies: float | None
    mean_bytes: float
    tables: list[str]
    writes_per_minute: float
    strategy: str
    ttl: int
    expected_hit_rate: float
    db_seconds_saved_per_hour: float
    seconds_saved_per_hour: float
    page_safe: bool
    warnings: list[str] = field(default_factory=list)
    verification: Verification | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``advise --json``)."""
        return asdict(self)


def _share(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


@dataclass(frozen=True)
class _Reuse:
    url: float  # share of GETs repeating a URL
    gap: float | None  # mean seconds between requests of one URL
    identical: float | None  # share of sampled bodies equal to their URL's previous one


def _reuse(row: dict[str, float]) -> _Reuse:
    repeats = row.get("url_repeats", 0.0)
    pairs = row.get("digest_pairs", 0.0)
    return _Reuse(
        _share(repeats, row.get("gets", 0.0)),
        row.get("url_gap_seconds", 0.0) / repeats if repeats else None,
        row.get("digest_same", 0.0) / pairs if pairs >= MIN_PAIRS else None,
    )


def _tables(row: dict[str, float]) -> list[str]:
    requests = row.get("requests", 0.0)
    read = (name[2:] for name, count in row.items() if name.startswith("t:") and count)
    return sorted(label for label in read if _share(row[f"t:{label}"], requests) >= TABLE_SHARE)


def _kept(reuse: _Reuse, rate: float, ttl: int) -> float:
    """The chance a stored answer is still there and still true at the URL's next request."""
    if reuse.gap is None or reuse.gap <= 0:
        return 1.0
    return math.exp(-rate * reuse.gap) * (1.0 - math.exp(-ttl / reuse.gap))


def _page_safe(row: dict[str, float], reuse: _Reuse) -> bool:
    if row.get("set_cookie", 0.0) or row.get("personal", 0.0) or not row.get("storable", 0.0):
        return False
    return reuse.identical is not None and reuse.identical >= PERSONALISED


def _page_hit(row: dict[str, float], reuse: _Reuse, rate: float, ttl: int) -> float:
    storable = _share(row.get("storable", 0.0), row.get("requests", 0.0))
    fresh = math.exp(-rate * reuse.gap) if reuse.gap else 1.0
    same = min(reuse.identical if reuse.identical is not None else 0.0, fresh)
    ttl_factor = 1.0 - math.exp(-ttl / reuse.gap) if reuse.gap else 1.0
    return storable * reuse.url * same * ttl_factor


def _data(
    row: dict[str, float], reuse: _Reuse, rate: float, ttl: int, html: bool, lookup: float
) -> tuple[str, float, float]:
    """``(strategy, hit rate, saved database seconds per request)`` of caching the data."""
    select = row.get("db_seconds", 0.0) - row.get("db_write_seconds", 0.0)
    if select <= 0:
        return "none", 0.0, 0.0
    kept = _kept(reuse, rate, ttl)
    repeated = row.get("db_repeat_seconds", 0.0)
    hit = _share(repeated, select) * kept
    # Each cached read still costs a lookup: a query faster than that saves nothing.
    saved = max(0.0, repeated - row.get("repeat_queries", 0.0) * lookup) * kept / row["requests"]
    kinds = {kind: row.get(f"db_{kind}_seconds", 0.0) for kind in _DATA_STRATEGY}
    strategy = _DATA_STRATEGY[max(kinds, key=lambda kind: kinds[kind])]
    anonymous = _share(row.get("anonymous", 0.0), row.get("requests", 0.0))
    if html and (row.get("personal", 0.0) or anonymous < 0.5):
        strategy = "fragment"  # one visitor's page: cache the shared part of the template
    return strategy, hit, saved


def _warnings(row: dict[str, float], reuse: _Reuse, ttl: int, large: int) -> list[str]:
    requests, gets = row.get("requests", 0.0), row.get("gets", 0.0)
    out: list[str] = []
    if row.get("set_cookie"):
        out.append(f"sets cookies ({_share(row['set_cookie'], gets):.0%} of GETs): never page-cached")
    if row.get("personal"):
        share = _share(row["personal"], gets)
        out.append(f"personal responses ({share:.0%} of GETs: CSRF token, session, messages or private)")
    if reuse.identical is not None and reuse.identical < PERSONALISED:
        out.append(
            f"personalised output: only {reuse.identical:.0%} of sampled bodies matched their URL's last one"
        )
    if row.get("vary_cookie"):
        out.append("varies on Cookie: one cached copy per visitor")
    if requests and _share(row.get("anonymous", 0.0), requests) < 0.5:
        out.append(f"{1 - _share(row.get('anonymous', 0.0), requests):.0%} of requests carry credentials")
    if gets and reuse.url < LOW_REUSE:
        out.append(f"low reuse: {reuse.url:.0%} of GETs repeat a URL")
    if requests and row.get("bytes", 0.0) / requests >= large:
        out.append(f"very large responses ({row['bytes'] / requests / 1e6:.1f} MB on average)")
    if row.get("db_write_seconds"):
        out.append("writes to the database")
    if ttl <= 10:
        out.append(f"the data it reads changes about every {ttl} s")
    return out


def advise_route(
    route: str,
    row: dict[str, float],
    writes_per_second: dict[str, float],
    seconds: float,
    *,
    min_requests: int,
    large: int,
    lookup: float = 0.00015,
) -> Advice:
    """The advice for one route from its counters and the fleet's table write rates."""
    requests = row.get("requests", 0.0)
    per_hour = requests / max(seconds, 1.0) * 3600
    tables = _tables(row)
    rate = sum(writes_per_second.get(label, 0.0) for label in tables)
    ttl = suggest_ttl(rate)
    reuse = _reuse(row)
    safe = _page_safe(row, reuse)
    html = _share(row.get("html", 0.0), requests) >= 0.5
    strategy, hit, saved = _data(row, reuse, rate, ttl, html, lookup)
    mean = _share(row.get("seconds", 0.0), requests)
    seconds_saved = saved * per_hour
    page_hit = _page_hit(row, reuse, rate, ttl) if safe else 0.0
    select_per_request = _share(row.get("db_seconds", 0.0) - row.get("db_write_seconds", 0.0), requests)
    # A page hit replaces the whole response (database and render) with one cache read: its cost
    # is charged to the response time saved, not to the database time, which is saved whole.
    page_saved = page_hit * select_per_request
    if safe and page_saved > 0 and page_saved >= saved:
        strategy, hit, saved = "cache_page", page_hit, page_saved
        seconds_saved = max(0.0, page_hit * mean - lookup) * per_hour
    warnings = _warnings(row, reuse, ttl, large)
    if requests < min_requests:
        warnings.insert(0, f"only {requests:.0f} requests recorded (advice from {min_requests})")
        strategy, hit, saved, seconds_saved = "none", 0.0, 0.0, 0.0
    elif saved <= 0:
        strategy, hit = "none", 0.0
    return Advice(
        route=route,
        requests=int(requests),
        requests_per_hour=per_hour,
        mean_ms=mean * 1000,
        db_ms=_share(row.get("db_seconds", 0.0), requests) * 1000,
        queries_per_request=_share(row.get("queries", 0.0), requests),
        anonymous_share=_share(row.get("anonymous", 0.0), requests),
        storable_share=_share(row.get("storable", 0.0), requests),
        url_reuse=reuse.url,
        identical_bodies=reuse.identical,
        mean_bytes=_share(row.get("bytes", 0.0), requests),
        tables=tables,
        writes_per_minute=rate * 60,
        strategy=strategy,
        ttl=ttl,
        expected_hit_rate=hit,
        db_seconds_saved_per_hour=saved * per_hour,
        seconds_saved_per_hour=seconds_saved,
        page_safe=safe,
        warnings=warnings,
    )


def baseline(advice: Advice, row: dict[str, float], at: float) -> dict[str, Any]:
    """The prediction to store for ``advice``: what it expects and the counters it started from."""
    keep = ("requests", "seconds", "db_seconds", "hit_requests", "miss_requests")
    return {
        "at": at,
        "strategy": advice.strategy,
        "ttl": advice.ttl,
        "hit_rate": advice.expected_hit_rate,
        "db_seconds_saved_per_hour": advice.db_seconds_saved_per_hour,
        "counters": {name: row.get(name, 0.0) for name in keep},
    }


def verify(prediction: dict[str, Any], row: dict[str, float], now: float) -> Verification:
    """What the route measured since ``prediction`` was stored, next to it."""
    before: dict[str, float] = prediction["counters"]
    since = row.get("requests", 0.0) - before["requests"]
    measured_hit = saved_db = saved = None
    elapsed = max(now - float(prediction["at"]), 1.0)
    if since > 0 and before["requests"] > 0:
        per_hour = since / elapsed * 3600
        measured_hit = (row.get("hit_requests", 0.0) - before["hit_requests"]) / since
        db_after = (row.get("db_seconds", 0.0) - before["db_seconds"]) / since
        time_after = (row.get("seconds", 0.0) - before["seconds"]) / since
        saved_db = (before["db_seconds"] / before["requests"] - db_after) * per_hour
        saved = (before["seconds"] / before["requests"] - time_after) * per_hour
    return Verification(
        strategy=str(prediction["strategy"]),
        ttl=int(prediction["ttl"]),
        predicted_hit_rate=float(prediction["hit_rate"]),
        predicted_db_seconds_saved_per_hour=float(prediction["db_seconds_saved_per_hour"]),
        requests_since=int(since),
        measured_hit_rate=measured_hit,
        measured_db_seconds_saved_per_hour=saved_db,
        measured_seconds_saved_per_hour=saved,
    )
