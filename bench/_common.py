"""What every bench script shares: where its Redis is, and the peak-memory line its report ends with.

Scripts run as ``python bench/<name>.py``, so this module is imported as ``_common``.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def redis_url() -> Iterator[str]:
    """``REDIS_URL`` when set, else the URL of a private EmbeddedRedis stopped on exit."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    from cachewise.embedded import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident memory of this process (or ``RUSAGE_CHILDREN``) in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024
