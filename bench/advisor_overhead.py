"""The advisor's recording cost on a trivial view: Django's whole request path, with and without it.

Two WSGI handlers in one process, built from the same settings (Django's default middleware:
security, sessions, common, CSRF, auth, messages, clickjacking), one of them with
``AdvisorMiddleware`` first; each answers a GET of a trivial view (``HttpResponse("ok")``, no
database) called straight with a WSGI environ, so no HTTP client or server time dilutes the
ratio: over HTTP (Gunicorn) the same absolute cost is a smaller share. Rounds are interleaved
(both handlers in every round, order alternating); each round times ``--requests`` requests in
process CPU time; the report gives the median per request and the ratio. Every request of the
recorded variant goes to a different URL among ``--urls``, so the URL table is full and evicting,
and the body digest runs on ``CACHEWISE_ADVISOR_DIGEST_RATE`` (default 0.1) of them.

Then memory: ``--flood`` requests to as many distinct URLs over 500 routes' worth of names
(capped at ``CACHEWISE_ADVISOR_MAX_ROUTES``), and the peak RSS before and after. Target: <= 3%.

    .venv/bin/python bench/advisor_overhead.py [--rounds 21] [--requests 2000] [--flood 200000]
        [--sample-rate 1.0]   # every request recorded in full (the default records a tenth)
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import peak_rss_mb, redis_url

ADVISOR = "cachewise.monitoring.advisor.middleware.AdvisorMiddleware"
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


def trivial(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse("ok")


def _urls() -> list[Any]:
    from django.urls import path

    return [path("trivial/", trivial, name="trivial"), path("r/<int:n>/", trivial)]


urlpatterns: list[Any] = []


def _setup(url: str, sample_rate: float | None) -> None:
    import django
    from django.conf import settings

    from cachewise.caches_url import caches_from_url

    settings.configure(
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "cachewise",
        ],
        MIDDLEWARE=MIDDLEWARE,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        CACHES=caches_from_url(url, key_prefix="bench-advisor"),
        CACHEWISE_METRICS_FLUSH_INTERVAL=0,
        CACHEWISE_ADVISOR_RECORD=True,
        **({} if sample_rate is None else {"CACHEWISE_ADVISOR_SAMPLE_RATE": sample_rate}),
    )
    django.setup()
    urlpatterns.extend(_urls())


def _handler(middleware: list[str]) -> Any:
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    settings.MIDDLEWARE = middleware
    return WSGIHandler()


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
    }


def _time(handler: Any, paths: list[str]) -> float:
    def start_response(status: str, headers: Any) -> None:
        pass

    started = time.process_time()
    for path in paths:
        handler(_environ(path), start_response)
    return (time.process_time() - started) / len(paths)


def _rounds(
    variants: dict[str, tuple[Any, Callable[[int], list[str]]]], rounds: int, requests: int
) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for index in range(rounds):
        for name in names if index % 2 == 0 else reversed(names):
            handler, paths = variants[name]
            samples[name].append(_time(handler, paths(index)))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--urls", type=int, default=20000)
    parser.add_argument("--flood", type=int, default=200_000)
    parser.add_argument("--sample-rate", type=float, help="CACHEWISE_ADVISOR_SAMPLE_RATE (default 0.1)")
    args = parser.parse_args()
    with redis_url() as url:
        _setup(url, args.sample_rate)
        from cachewise.monitoring.advisor import store
        from cachewise.monitoring.advisor.recorder import recorder

        plain = _handler(MIDDLEWARE)
        recorded = _handler([ADVISOR, *MIDDLEWARE])
        same = ["/trivial/"] * args.requests

        def spread(index: int) -> list[str]:
            base = index * args.requests
            return [f"/trivial/?page={(base + i) % args.urls}" for i in range(args.requests)]

        variants = {
            "one URL, without": (plain, lambda index: same),
            "one URL, advisor": (recorded, lambda index: same),
            "distinct URLs, without": (plain, spread),
            "distinct URLs, advisor": (recorded, spread),
        }
        _time(plain, same[:200]), _time(recorded, same[:200])  # warm both
        medians = _rounds(variants, args.rounds, args.requests)
        print(f"advisor_overhead: {args.rounds} rounds x {args.requests} requests, trivial view")
        print("  CPU per request (median of rounds); ratio = advisor / without, same paths")
        for name, value in medians.items():
            base = medians[name.replace("advisor", "without")]
            print(
                f"  {name:<24} {value * 1e6:8.1f} us   {value / base:.3f}x   ({(value - base) * 1e6:+.1f} us)"
            )
        before = peak_rss_mb()
        routes = [f"/r/{n}/" for n in range(500)]
        flood = [f"{routes[i % 500]}?q={i}" for i in range(args.flood)]
        _time(recorded, flood)
        store.flush()
        rss = f"peak RSS {before:.1f} -> {peak_rss_mb():.1f} MiB"
        print(
            f"  flood: {args.flood} requests to {args.flood} URLs: {rss}; "
            f"{len(recorder.snapshot())} routes, {len(recorder.urls.entries)} URLs remembered"
        )


if __name__ == "__main__":
    main()
