"""Django settings for the demo blog.

The cache is ``caches_from_url()`` on ``REDIS_URL`` when the user set it, else on the embedded
server the demo started (its URL arrives in ``CACHEWISE_DEMO_REDIS_URL``, also in the Gunicorn
workers). The database is ``DATABASE_URL`` (PostgreSQL) when set, else a SQLite file under demo/
(``CACHEWISE_DEMO_SQLITE`` overrides its path, for tests).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

import django

from cachewise import caches_from_url

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "cachewise-demo-only-not-a-secret"
DEBUG = os.environ.get("CACHEWISE_DEMO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "cachewise",
    "demo.blog",
]

MIDDLEWARE = [
    # Records the uncached phase for `manage.py cachewise advise` (first: it times everything).
    "cachewise.monitoring.advisor.middleware.AdvisorMiddleware",
    "demo.instrument.DemoInstrumentMiddleware",
    "cachewise.middleware.CacheUnavailableMiddleware",  # a 503, not a 500, for logins in an outage
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL", "").strip() or os.environ.get("CACHEWISE_DEMO_REDIS_URL", "").strip()
    if not url:
        raise RuntimeError("run the demo with `python -m demo`: it starts Redis and sets the URL")
    return url


SQLITE_PRAGMAS = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
# BEGIN IMMEDIATE avoids SQLITE_BUSY lock upgrades under Gunicorn threads.
SQLITE_TUNING = {"init_command": SQLITE_PRAGMAS, "transaction_mode": "IMMEDIATE"}


def _database() -> dict[str, object]:
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url:
        path = os.environ.get("CACHEWISE_DEMO_SQLITE") or str(BASE_DIR / "demo.sqlite3")
        # WAL + IMMEDIATE transactions: concurrent Gunicorn workers write (the uncached view
        # counter) without "database is locked" errors.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            # Django < 5.1 has neither option: demo.blog.apps runs the PRAGMAs on connect instead.
            "OPTIONS": {"timeout": 30, **(SQLITE_TUNING if django.VERSION >= (5, 1) else {})},
        }
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise RuntimeError(f"DATABASE_URL must be postgres://..., got scheme {parts.scheme!r}")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or "postgres"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
    }


DATABASES = {"default": _database()}
CACHES = caches_from_url(_redis_url(), key_prefix=os.environ.get("CACHEWISE_DEMO_PREFIX", "cwdemo"))
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
SESSION_CACHE_ALIAS = "sessions"
LOGIN_URL = "/admin/login/"
#: Workers send their hit/miss counters to Redis every second, so the report can read the totals
#: of the load runs right after them (the default is 10 s).
CACHEWISE_METRICS_FLUSH_INTERVAL = 1.0
#: The advisor records the uncached twins only: what a team would see before adding any cache.
CACHEWISE_ADVISOR_INCLUDE = [r"^/plain/"]
#: Quick runs send ~150 requests per view: record every one and hash a quarter of the bodies
#: (a production default records a tenth of the requests).
CACHEWISE_ADVISOR_SAMPLE_RATE = 1.0
CACHEWISE_ADVISOR_DIGEST_RATE = 0.25
#: Drained by ``manage.py cachewise flush-counters``.
CACHEWISE_COUNTERS = ["demo.blog.counters.article_views"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    # Degradation messages (Redis down) are rate-limited by cachewise; show them as they happen.
    "loggers": {
        "cachewise": {"handlers": ["console"], "level": "WARNING"},
        # A failed request is a finding: print its traceback even with DEBUG off.
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
    },
}
