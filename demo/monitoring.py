"""What cachewise's own monitoring saw during the run, read the way ``cachewise stats`` does.

Gunicorn's workers count hits, misses and recomputes in memory and flush them into one Redis hash
per alias (``cachewise.monitoring.aggregate``); this process reads the totals. They are a
cross-check on the demo's per-request headers, counted by the library. They are read before the
outage scenario: the embedded Redis keeps nothing on disk, so its restart starts the totals again
(what the workers counted while it was down is flushed after it, and read at the end).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["cachewise_stats", "dashboard_status", "settled_stats"]


def cachewise_stats(alias: str = "default") -> dict[str, Any] | None:
    """``cachewise stats --json``'s document for ``alias``, or None without the monitoring module."""
    try:
        from cachewise.monitoring.report import build_report
    except ImportError:
        return None
    return build_report(alias, pings=5).as_dict()


def settled_stats(alias: str = "default") -> dict[str, Any] | None:
    """``cachewise_stats`` once every worker has flushed what it counted so far.

    Workers flush every ``CACHEWISE_METRICS_FLUSH_INTERVAL`` seconds: wait one and a half of those.
    """
    from cachewise.conf import conf

    time.sleep(min(conf.METRICS_FLUSH_INTERVAL, 10.0) * 1.5)
    return cachewise_stats(alias)


def dashboard_status() -> str:
    """Render the staff dashboard once as the seeded staff user; say how it went."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    from demo.blog.features import feature

    if feature("dashboard") is None:
        return "dashboard: not in this checkout"
    client = Client()
    client.force_login(get_user_model().objects.get(username="admin"))
    response = client.get("/cachewise/dashboard/")
    return f"dashboard /cachewise/dashboard/: HTTP {response.status_code}, {len(response.content):,} bytes"
