"""Child process for the monitoring tests: drive known cache traffic, then exit normally.

Run as ``python -m tests.monitoring_traffic '<json>'`` with the JSON holding ``caches`` (the
test's CACHES), optional ``settings`` (more settings to apply) and ``traffic``:
``{namespace: [hits, misses]}``. Hits read ``<namespace>:hot`` (set by the parent), misses read
keys that do not exist. The counts reach Redis through the
interpreter-exit flush, which is what a Gunicorn worker relies on too.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    spec = json.loads(argv[1])
    from django.conf import settings

    settings.CACHES = spec["caches"]
    for name, value in spec.get("settings", {}).items():
        setattr(settings, name, value)
    import django

    django.setup()
    from django.core.cache import caches

    cache = caches[spec.get("alias", "default")]
    for namespace, (hits, misses) in spec["traffic"].items():
        for _ in range(hits):
            assert cache.get(f"{namespace}:hot") is not None
        for index in range(misses):
            assert cache.get(f"{namespace}:missing-{os.getpid()}-{index}") is None
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
