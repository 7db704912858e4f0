"""The staff dashboard in a real headless Chromium against a live server.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); the test fails, not skips, without
it. Set ``CACHEWISE_DOCS_SCREENSHOT=1`` to refresh ``docs/img/dashboard.png`` from this run.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.cache import caches

from cachewise.monitoring import aggregate
from cachewise.monitoring.aggregate import aggregator

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.urls_monitoring")]


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "the dashboard browser test needs Chromium: install it with `apt-get install -y chromium` "
            "(Debian/Ubuntu), then run the tests again"
        )
    return path


def _browse(chromium: str, tmp_path: Path, url: str, *extra: str) -> str:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,900",
        *extra,
        url,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _traffic_with_history() -> None:
    """Known counts now (through the cache) plus an hour of per-minute history for the chart."""
    cache = caches["default"]
    cache.set("article:hot", "value", 300)
    aggregator.reset()
    for _ in range(30):
        cache.get("article:hot")
    for index in range(10):
        cache.get(f"article:missing:{index}")
    client = aggregate.redis_client_for("default")
    now = int(time.time() // 60)
    for age in range(59, 0, -1):  # an older batch per minute: hit rate dipping then recovering
        hits = 80 + (age * 7) % 20 - (25 if 20 <= age <= 26 else 0)
        aggregator._seq += 1
        deltas = {("hit", "article"): float(hits), ("miss", "article"): float(100 - hits)}
        aggregator._send(client, "default", aggregator._seq, deltas, now - age)
    aggregate.flush("default")


def test_staff_sees_the_dashboard_and_anonymous_users_do_not(
    chromium: str, live_server: Any, django_user_model: Any, tmp_path: Path
) -> None:
    django_user_model.objects.create_user("staff", password="unused", is_staff=True)
    _traffic_with_history()
    dashboard = f"{live_server.url}/cache/dashboard/"
    login = f"{live_server.url}/test-login/?next=/cache/dashboard/"

    dom = _browse(chromium, tmp_path, login, "--dump-dom")
    assert "Cache “default”" in dom
    assert '<tr data-namespace="article">' in dom
    assert 'data-field="chart"' in dom
    assert "counts from every worker process" in dom

    screenshot = tmp_path / "dashboard.png"
    _browse(chromium, tmp_path, login, f"--screenshot={screenshot}")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000
    if os.environ.get("CACHEWISE_DOCS_SCREENSHOT"):
        target = ROOT / "docs" / "img" / "dashboard.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, target)

    anonymous_profile = tmp_path / "anonymous"
    anonymous_dom = _browse(chromium, anonymous_profile, dashboard, "--dump-dom")
    assert "Cache “default”" not in anonymous_dom
    parts = urlsplit(dashboard)
    connection = http.client.HTTPConnection(parts.hostname or "localhost", parts.port, timeout=10)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    assert response.status == 302
    assert response.getheader("Location", "").startswith("/accounts/login/?next=/cache/dashboard/")
    connection.close()
