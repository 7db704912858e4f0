"""What cachewise's own monitoring saw during the run, read the way ``cachewise stats`` does.

Gunicorn's workers count hits, misses and recomputes in memory and flush them into one Redis hash
per alias (``cachewise.monitoring.aggregate``); after the workers have exited, this process reads
the totals. They are a cross-check on the demo's per-request headers, counted by the library.
"""

from __future__ import annotations

from typing import Any

__all__ = ["cachewise_stats", "dashboard_status"]


def cachewise_stats(alias: str = "default") -> dict[str, Any] | None:
    """``cachewise stats --json``'s document for ``alias``, or None without the monitoring module."""
    try:
        from cachewise.monitoring.report import build_report
    except ImportError:
        return None
    return build_report(alias, pings=5).as_dict()


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
